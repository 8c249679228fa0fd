#!/usr/bin/env bash
# Scale-out figures, side by side, on loopback: scenario b (4 servers, 1,000
# clients, 64 B, one message in flight) against
#   - fastway -Workers 1 and -Workers 2 (servers linked to every worker),
#   - fastway directly and through HAProxy (TCP mode, PROXY v2).
# Nothing is pinned: with -Workers 2 the gateway wants both cores, and the
# load tool (one thread) and HAProxy share them; read the figures with that.
#   bash bench/scale.sh [seconds-per-run] [rounds]   (default 10 s, 2 rounds)
# Output: printed and kept in bench/results/scale_side_by_side.txt. Needs
# haproxy (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
ROUNDS="${2:-2}"
cargo build --release --bin fastway --example loadgen
FW="$PWD/target/release/fastway"
LG="$PWD/target/release/examples/loadgen"
OUT="$PWD/bench/results/scale_side_by_side.txt"
WORK=$(mktemp -d)
HAPROXY_PID=
trap 'kill $(cat "$WORK/fastway.pid" 2>/dev/null) $HAPROXY_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
B="--servers 4 --clients 1000 --bytes 64 --inflight 1"

start() { # fastway flags...
  rm -f "$WORK/fastway.pid"
  (cd "$WORK" && "$FW" -ClientAddr=127.0.0.1:24400 -ServerAddr=127.0.0.1:24410 "$@" 2>"$WORK/fastway.err" &)
  for _ in $(seq 100); do [ -s "$WORK/fastway.pid" ] && break; sleep 0.05; done
  sleep 0.3
  PID=$(cat "$WORK/fastway.pid")
}
stop() {
  kill "$PID"
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
  sleep 0.5
}
measure() { # name, loadgen args...
  local name="$1"; shift
  echo "== $name"
  # shellcheck disable=SC2086
  "$LG" --secs "$SECS" --gateway-pid "$PID" $B "$@" 2>&1 | grep -E "round_trips|gateway_cpu|rror" || true
}

cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend clients
    bind 127.0.0.1:24420
    default_backend gateway
backend gateway
    server gw 127.0.0.1:24400 send-proxy-v2
CFG

{
  for round in $(seq "$ROUNDS"); do
    start -Workers=1
    measure "b workers=1 round $round" --client 127.0.0.1:24400 --server 127.0.0.1:24410
    stop
    start -Workers=2
    measure "b workers=2 round $round" --client 127.0.0.1:24400 --server 127.0.0.1:24410,127.0.0.1:24411
    stop
    start -Workers=1 -ClientProxyProtocol
    haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    sleep 0.5
    measure "b through haproxy round $round" --client 127.0.0.1:24420 --server 127.0.0.1:24410
    kill $HAPROXY_PID; wait $HAPROXY_PID 2>/dev/null || true; HAPROXY_PID=
    stop
  done
} | tee "$OUT"
