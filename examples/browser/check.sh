#!/usr/bin/env bash
# Headless Chromium talks to a server through fastway: the page in this
# folder, on the uniway-client package (clients/js, built here with npm
# from its lockfile), connects over WebSocket (plain, then WSS), dials
# examples/script_server, checks 20 numbered echoes, sizes across the
# WebSocket length forms up to MaxPacket, a dial from the server, a
# refusal and a close, and reports PASS or FAIL to a local HTTP server,
# whose log this script reads. Everything runs on 127.0.0.1 and stops by
# itself. Installs Debian's chromium if it is missing.
#   bash examples/browser/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
fi

if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

cargo build -q --bin fastway --example script_server --example testcert
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
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
    if grep -q "$1" "$2" 2>/dev/null; then grep -m1 "$1" "$2"; return 0; fi
    sleep 0.1
  done
  echo "no line with '$1' in $2:" >&2; cat "$2" >&2; return 1
}
port_of() { sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/'; }

"$BIN/examples/testcert" "$WORK/certs" >/dev/null

(cd "$WORK" && RUST_LOG=info exec "$BIN/fastway" -ClientAddr=127.0.0.1:0 -ServerAddr=127.0.0.1:0 \
  -ServerAuthKey=browser-check -ClientWsAddr=127.0.0.1:0 -ClientWsPath=/play \
  2>"$WORK/fastway.log") &
PIDS+=($!)
SERVER_PORT=$(wait_for "server listener at" "$WORK/fastway.log" | port_of)
WS_PORT=$(wait_for "(WebSocket)" "$WORK/fastway.log" | port_of)

(cd "$WORK/certs" && RUST_LOG=info exec "$BIN/fastway" -ClientAddr=127.0.0.1:0 -ServerAddr=127.0.0.1:0 \
  -ServerAuthKey=browser-check -ClientWsAddr=127.0.0.1:0 -ClientWsPath=/play \
  -ClientWsTlsCert="$WORK/certs/cert.pem" -ClientWsTlsKey="$WORK/certs/key.pem" \
  2>"$WORK/fastway-tls.log") &
PIDS+=($!)
TLS_SERVER_PORT=$(wait_for "server listener at" "$WORK/fastway-tls.log" | port_of)
WSS_PORT=$(wait_for "(WebSocket over TLS)" "$WORK/fastway-tls.log" | port_of)

"$BIN/examples/script_server" "127.0.0.1:$SERVER_PORT" 1 browser-check >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
"$BIN/examples/script_server" "127.0.0.1:$TLS_SERVER_PORT" 1 browser-check >"$WORK/echo-tls.log" 2>&1 &
PIDS+=($!)
wait_for "registered" "$WORK/echo.log" >/dev/null
wait_for "registered" "$WORK/echo-tls.log" >/dev/null

HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The repository root, so the page finds the package where it is built.
(cd "$ROOT" && exec python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 2>"$WORK/http.log" >/dev/null) &
PIDS+=($!)
sleep 0.5

run_page() { # name, ws url
  local name=$1 url=$2 profile
  profile=$(mktemp -d -p "$WORK")
  local page="http://127.0.0.1:$HTTP_PORT/examples/browser/index.html?ws=$url&server=1&count=20&script=1&report=/result-$name"
  # The test CA is in no browser's trust store: certificate errors are
  # ignored for this throwaway profile only.
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --ignore-certificate-errors --user-data-dir="$profile" "$page" >"$WORK/chromium-$name.log" 2>&1 &
  local chrome=$!
  PIDS+=($chrome)
  if ! wait_for "GET /result-$name?status=" "$WORK/http.log" >/dev/null; then
    echo "browser check ($name): the page reported nothing"; tail -20 "$WORK/chromium-$name.log"; return 1
  fi
  kill "$chrome" 2>/dev/null || true
  local line
  line=$(grep -m1 "GET /result-$name?status=" "$WORK/http.log")
  echo "browser check ($name): ${line#*status=}" | sed 's/ HTTP.*//; s/%20/ /g; s/%2C/,/g'
  grep -q "status=PASS" <<<"$line"
}

run_page ws "ws://127.0.0.1:$WS_PORT/play"
run_page wss "wss://127.0.0.1:$WSS_PORT/play"
echo "browser check passed"
