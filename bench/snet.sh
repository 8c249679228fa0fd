#!/usr/bin/env bash
# snet side by side: scenarios a and c with the clients over plain TCP,
# snet, and snet with encryption, alternating, then idle memory per client.
# The gateway is pinned to core 0, the load tool to core 1, loopback only.
#   bash bench/snet.sh [seconds-per-run] [rounds]   (default 5 s, 3 rounds)
# Output: printed and kept in bench/results/snet_side_by_side.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-5}"
ROUNDS="${2:-3}"
cargo build --release --bin fastway --example loadgen
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
OUT="$PWD/bench/results/snet_side_by_side.txt"
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/fastway.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

declare -A GW=([plain]="" [snet]="-ClientSnetEnable=true" [snet_encrypt]="-ClientSnetEnable=true -ClientSnetEncrypt=true")
declare -A LG_ARGS=([plain]="" [snet]="--snet" [snet_encrypt]="--snet --snet-encrypt")
declare -A SCENARIO=([a]="--servers 1 --clients 100 --bytes 64 --inflight 1" [c]="--servers 1 --clients 10 --bytes 4096 --inflight 16")

run() { # mode, loadgen args...
  local mode="$1"; shift
  rm -f "$WORK/fastway.pid"
  # shellcheck disable=SC2086
  (cd "$WORK" && taskset -c 0 "$FW" -ClientAddr=127.0.0.1:24300 -ServerAddr=127.0.0.1:24301 \
      ${GW[$mode]} 2>"$WORK/fastway.err" &)
  for _ in $(seq 100); do [ -s "$WORK/fastway.pid" ] && break; sleep 0.05; done
  sleep 0.3
  local pid
  pid=$(cat "$WORK/fastway.pid")
  # shellcheck disable=SC2086
  taskset -c 1 "$LG" --client 127.0.0.1:24300 --server 127.0.0.1:24301 --gateway-pid "$pid" \
      ${LG_ARGS[$mode]} "$@" 2>&1 | grep -E "round_trips|gateway_cpu|idle:|rror" || true
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  sleep 0.5
}

{
  for round in $(seq "$ROUNDS"); do
    for s in a c; do
      for m in plain snet snet_encrypt; do
        echo "== $s $m round $round"
        # shellcheck disable=SC2086
        run "$m" --secs "$SECS" ${SCENARIO[$s]}
      done
    done
  done
  for m in plain snet snet_encrypt; do
    echo "== idle 5000 $m"
    run "$m" --idle 5000
  done
} | tee "$OUT"
