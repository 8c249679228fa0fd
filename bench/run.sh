#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md: the gateway pinned to core 0,
# the load tool to core 1, loopback only.
#   bash bench/run.sh [seconds-per-scenario]   (default 10)
# Needs: taskset (util-linux). Results are printed and kept in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
cargo build --release --bin fastway --example loadgen
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
OUT="$PWD/bench/results"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/fastway.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_gateway() {
  (cd "$WORK" && taskset -c 0 "$FW" -ClientAddr=127.0.0.1:24000 -ServerAddr=127.0.0.1:24001 \
      "$@" 2>"$WORK/fastway.err" &)
  for _ in $(seq 100); do [ -s "$WORK/fastway.pid" ] && break; sleep 0.05; done
  sleep 0.2
  PID=$(cat "$WORK/fastway.pid")
}
stop_gateway() {
  kill "$PID"
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
}
run() { # name, loadgen args...
  local name="$1"; shift
  echo "== $name"
  taskset -c 1 "$LG" --client 127.0.0.1:24000 --server 127.0.0.1:24001 --secs "$SECS" "$@" \
    | tee "$OUT/$name.txt"
}

start_gateway
run a_1srv_100cli_64B_1  --servers 1 --clients 100  --bytes 64   --inflight 1  --gateway-pid "$PID"
run b_4srv_1000cli_64B_1 --servers 4 --clients 1000 --bytes 64   --inflight 1  --gateway-pid "$PID"
run c_1srv_10cli_4K_16   --servers 1 --clients 10   --bytes 4096 --inflight 16 --gateway-pid "$PID"
stop_gateway

echo "== d: direct baselines (no gateway; echo server thread and clients share cores 0-1)"
taskset -c 0,1 "$LG" --direct --clients 100 --bytes 64 --inflight 1 --secs "$SECS" | tee "$OUT/d_direct_a.txt"
taskset -c 0,1 "$LG" --direct --clients 10 --bytes 4096 --inflight 16 --secs "$SECS" | tee "$OUT/d_direct_c.txt"

for n in 10000 19000; do
  start_gateway -ClientIdleTimeout=10m -ServerIdleTimeout=10m
  echo "== e: idle $n"
  taskset -c 1 "$LG" --client 127.0.0.1:24000 --server 127.0.0.1:24001 --idle "$n" --sources 200 \
      --gateway-pid "$PID" | tee "$OUT/e_idle_$n.txt"
  stop_gateway
done
