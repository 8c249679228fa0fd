#!/usr/bin/env bash
# Broadcast to a room, side by side in one run: one server sending 256-byte
# messages to every member of rooms of 100 and 1,000 clients, by unicast
# (one frame per member), by Multicast and by GroupSend
# (docs/protocol.md §10), with 8 and with 32 broadcasts in flight. The gateway is pinned to core 0, the load tool to
# core 1; each case gets a fresh gateway, so memory figures are its own.
#   bash bench/room.sh [seconds-per-case]   (default 5)
# Needs: taskset (util-linux). Results are printed and kept in
# bench/results/room.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-5}"
cargo build --release --bin fastway --example loadgen
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
OUT="$PWD/bench/results"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/fastway.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

: >"$OUT/room.txt"
for inflight in 8 32; do
for clients in 100 1000; do
  for mode in unicast multicast group; do
    (cd "$WORK" && taskset -c 0 "$FW" -ClientAddr=127.0.0.1:24300 -ServerAddr=127.0.0.1:24301 \
        -ClientMaxConn=4 2>"$WORK/fastway.err" &)
    for _ in $(seq 100); do [ -s "$WORK/fastway.pid" ] && break; sleep 0.05; done
    sleep 0.2
    PID=$(cat "$WORK/fastway.pid")
    echo "== room of $clients, $mode, $inflight broadcasts in flight" | tee -a "$OUT/room.txt"
    taskset -c 1 "$LG" --client 127.0.0.1:24300 --server 127.0.0.1:24301 --clients "$clients" \
        --room "$mode" --bytes 256 --inflight "$inflight" --secs "$SECS" --warmup 1 --gateway-pid "$PID" \
        | tee -a "$OUT/room.txt"
    kill "$PID"
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    rm -f "$WORK/fastway.pid"
  done
done
done
