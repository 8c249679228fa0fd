#!/usr/bin/env bash
# Instructions per forwarded frame: the gateway under callgrind, a fixed
# workload (100 clients, 64-byte ping-pong, one in flight), run twice with
# different round-trip counts; the difference cancels start-up and
# shutdown, leaving the cost per frame. Counts user-space instructions of
# the gateway process only (not the kernel's), and repeats exactly for the
# same binary and inputs, whatever else the machine is doing.
#   bash bench/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin fastway --example loadgen
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

count() { # round trips -> total Ir of the gateway process
  local n="$1" dir="$WORK/$1"
  mkdir -p "$dir"
  (cd "$dir" && valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
      "$FW" -ClientAddr=127.0.0.1:24200 -ServerAddr=127.0.0.1:24201 2>"$dir/fastway.err" &)
  for _ in $(seq 600); do [ -s "$dir/fastway.pid" ] && grep -q "fastway running" "$dir/fastway.err" && break; sleep 0.1; done
  local pid
  pid=$(cat "$dir/fastway.pid")
  "$LG" --client 127.0.0.1:24200 --server 127.0.0.1:24201 --clients 100 --bytes 64 --inflight 1 \
      --round-trips "$n" >"$dir/loadgen.txt" 2>&1
  kill -TERM "$pid"
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  callgrind_annotate "$dir/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}

small=20000
large=120000
ir_small=$(count $small)
ir_large=$(count $large)
frames=$(( 2 * (large - small) ))
echo "round_trips=$small gateway_Ir=$ir_small"
echo "round_trips=$large gateway_Ir=$ir_large"
echo "instructions_per_forwarded_frame=$(( (ir_large - ir_small) / frames ))"
