#!/usr/bin/env bash
# The client fronts side by side: scenarios a and c with the clients over
# plain TCP, TLS, WebSocket and WSS, alternating, then idle memory per
# client for each. The gateway is pinned to core 0, the load tool to core 1.
#   bash bench/fronts.sh [seconds-per-run] [rounds]   (default 5 s, 2 rounds)
# Output: printed and kept in bench/results/fronts_side_by_side.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-5}"
ROUNDS="${2:-2}"
cargo build --release --bin fastway --example loadgen --example testcert
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
OUT="$PWD/bench/results/fronts_side_by_side.txt"
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/fastway.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$PWD/target/release/examples/testcert" "$WORK/certs" >/dev/null
C=$WORK/certs
declare -A GW=(
  [plain]="-ClientAddr=127.0.0.1:24500"
  [tls]="-ClientAddr=127.0.0.1:24500 -ClientTlsCert=$C/cert.pem -ClientTlsKey=$C/key.pem"
  [ws]="-ClientAddr=127.0.0.1:24509 -ClientWsAddr=127.0.0.1:24500"
  [wss]="-ClientAddr=127.0.0.1:24509 -ClientWsAddr=127.0.0.1:24500 -ClientWsTlsCert=$C/cert.pem -ClientWsTlsKey=$C/key.pem"
)
declare -A LG_ARGS=([plain]="" [tls]="--tls-ca $C/ca.pem" [ws]="--ws /" [wss]="--ws / --tls-ca $C/ca.pem")
declare -A SCENARIO=([a]="--servers 1 --clients 100 --bytes 64 --inflight 1" [c]="--servers 1 --clients 10 --bytes 4096 --inflight 16")

run() { # front, loadgen args...
  local front="$1"; shift
  rm -f "$WORK/fastway.pid"
  # shellcheck disable=SC2086
  (cd "$WORK" && taskset -c 0 "$FW" ${GW[$front]} -ServerAddr=127.0.0.1:24501 2>"$WORK/fastway.err" &)
  for _ in $(seq 100); do [ -s "$WORK/fastway.pid" ] && break; sleep 0.05; done
  sleep 0.3
  local pid
  pid=$(cat "$WORK/fastway.pid")
  # shellcheck disable=SC2086
  taskset -c 1 "$LG" --client 127.0.0.1:24500 --server 127.0.0.1:24501 --gateway-pid "$pid" \
      ${LG_ARGS[$front]} "$@" 2>&1 | grep -E "round_trips|gateway_cpu|idle:|rror" || true
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  sleep 0.5
}

{
  for round in $(seq "$ROUNDS"); do
    for s in a c; do
      for f in plain tls ws wss; do
        echo "== $s $f round $round"
        # shellcheck disable=SC2086
        run "$f" --secs "$SECS" ${SCENARIO[$s]}
      done
    done
  done
  for f in plain tls ws wss; do
    echo "== idle 5000 $f"
    run "$f" --idle 5000
  done
} | tee "$OUT"
