#!/usr/bin/env bash
# A real cluster on loopback: HAProxy (TCP mode, PROXY v2) in front of three
# fastway gateways, game servers 1 and 2 linked to every gateway
# (uniway::endpoint::MultiServer), and 200 game clients through HAProxy
# exchanging sequence-checked messages (examples/cluster_check.rs).
#   1. gateway 2 is killed (SIGKILL): its clients reconnect through HAProxy
#      to the others and work again; the other clients are not disturbed;
#   2. zero-downtime upgrade of gateway 1: a new fastway starts with
#      -ReusePort on the same addresses, the old one gets SIGTERM and
#      drains; no connection attempt is refused meanwhile (its clients,
#      and any that reached it just as it began to drain, reconnect).
# Everything runs on 127.0.0.1 and stops by itself. Installs Debian's
# haproxy if it is missing.
#   bash examples/cluster/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

if ! command -v haproxy >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi

cargo build -q --bin fastway --example cluster_check
BIN=$ROOT/target/debug
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A line of $2 (a log file) matching $1, within 20 s.
wait_for() {
  for _ in $(seq 200); do
    if grep -q "$1" "$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "no line with '$1' in $2:" >&2; cat "$2" >&2; return 1
}
now_ms() { date +%s%3N; }

# Below the kernel's ephemeral ports (32768 and up), so no outgoing
# connection holds one of ours.
BASE=$((20000 + RANDOM % 10000))
BALANCER=127.0.0.1:$BASE
KEY=cluster-key
gw_client() { echo "127.0.0.1:$((BASE + $1))"; }
gw_server() { echo "127.0.0.1:$((BASE + 10 + $1))"; }

start_gateway() { # index, directory
  mkdir -p "$2"
  (cd "$2" && RUST_LOG=info exec "$BIN/fastway" -ClientAddr="$(gw_client "$1")" \
      -ServerAddr="$(gw_server "$1")" -ServerAuthKey=$KEY -ClientProxyProtocol -ReusePort \
      >"$2/log" 2>&1) &
  PIDS+=($!)
  wait_for "fastway running" "$2/log"
}

for i in 1 2 3; do start_gateway $i "$WORK/gw$i"; done

cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend clients
    bind $BALANCER
    default_backend gateways
backend gateways
    balance roundrobin
    server gw1 $(gw_client 1) send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
    server gw2 $(gw_client 2) send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
    server gw3 $(gw_client 3) send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY=$!
PIDS+=($HAPROXY)
sleep 0.5
kill -0 $HAPROXY 2>/dev/null || { echo "haproxy did not start:" >&2; cat "$WORK/haproxy.log" >&2; exit 1; }

"$BIN/examples/cluster_check" servers $KEY "$(gw_server 1),$(gw_server 2),$(gw_server 3)" \
    >"$WORK/servers.log" 2>&1 &
PIDS+=($!)
wait_for "server 1 linked to 3" "$WORK/servers.log"
wait_for "server 2 linked to 3" "$WORK/servers.log"

PHASES=$WORK/phases
: >"$PHASES"
"$BIN/examples/cluster_check" clients $BALANCER 200 16 "$PHASES" >"$WORK/clients.log" 2>&1 &
CLIENTS=$!

sleep 4
echo "kill $(now_ms)" >>"$PHASES"
kill -KILL "$(cat "$WORK/gw2/fastway.pid")"

sleep 4
echo "upgrade_start $(now_ms)" >>"$PHASES"
OLD=$(cat "$WORK/gw1/fastway.pid")
start_gateway 1 "$WORK/gw1-new"
kill -TERM "$OLD"
for _ in $(seq 100); do kill -0 "$OLD" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$OLD" 2>/dev/null; then echo "the old gateway did not drain and exit" >&2; exit 1; fi
echo "upgrade_end $(now_ms)" >>"$PHASES"
grep -q "fastway stopped" "$WORK/gw1/log" || { echo "old gateway: no clean stop" >&2; cat "$WORK/gw1/log" >&2; exit 1; }

if ! wait "$CLIENTS"; then
  cat "$WORK/clients.log" >&2
  echo "== haproxy" >&2; tail -20 "$WORK/haproxy.log" >&2
  exit 1
fi
cat "$WORK/clients.log"
grep "fastway stopped" "$WORK/gw1/log"
echo "cluster check: PASS"
