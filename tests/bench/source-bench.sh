#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# source-bench.sh - how fast each connecting source takes frames in: a
# provider at full speed (tests/bench/source_feed.py: a pre-built buffer, so
# Python is not the limit) speaks tcp, tls, http (chunked NDJSON), ws or wss;
# the relay relays to 16 subscribers (streamrelay-sub, lossless `block`
# queues); the clock runs from the first byte sent to the last subscriber
# having all N frames. Prints frames/s and MB/s of payload per source and size,
# and the CPU seconds the relay used (user + system): on a shared, loaded
# machine that compares two builds far better than the wall clock.
#   bash .ci/build && tests/bench/source-bench.sh        # MODES="tcp tls http ws wss" SIZES="128 4096"
#   RELAY=/tmp/old/streamrelay tests/bench/source-bench.sh   # another build of the relay
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODES=${MODES:-"tcp tls http ws wss"}
SIZES=${SIZES:-"128 4096"}
SUBS=${SUBS:-16}
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
SUB=$ROOT/build/tools/streamrelay-sub
work=$(mktemp -d /tmp/source-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# A CA and a certificate for 127.0.0.1, for tls and wss.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=bench-ca \
  -addext basicConstraints=critical,CA:TRUE -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null

wait_for() {  # wait_for FILE PATTERN [COUNT]: bounded
  local i n
  for ((i = 0; i < 300; i++)); do
    n=$(grep -c -E "$2" "$1" 2>/dev/null)
    [ "${n:-0}" -ge "${3:-1}" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

printf "| source | size B | frames | seconds | frames/s | MB/s | relay CPU s |\n|---|---:|---:|---:|---:|---:|---:|\n"
for size in $SIZES; do
  frames=$(( size <= 128 ? 2000000 : 200000 ))
  for mode in $MODES; do
    /usr/bin/python3 "$ROOT/tests/bench/source_feed.py" --mode "$mode" --size "$size" --frames "$frames" \
      --cert "$work/server.pem" --key "$work/server.key" 2>"$work/feed.log" &
    feed=$!
    wait_for "$work/feed.log" "listening on" || continue
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\)$/\1/p' "$work/feed.log")
    case $mode in
      tcp) source="{type: tcp, host: 127.0.0.1, port: $port}" ;;
      tls) source="{type: tcp, host: 127.0.0.1, port: $port, tls: {enabled: true, ca_file: '$work/ca.pem'}}" ;;
      http) source="{type: http, url: 'http://127.0.0.1:$port/'}" ;;
      ws) source="{type: websocket, url: 'ws://127.0.0.1:$port/'}" ;;
      wss) source="{type: websocket, url: 'wss://127.0.0.1:$port/', tls: {ca_file: '$work/ca.pem'}}" ;;
    esac
    cat >"$work/relay.yaml" <<YAML
upstream: $source
listeners:
  - {name: bench, bind: "127.0.0.1:0", queue: {max_frames: 0, max_bytes: 268435456, on_full: block}}
log: {level: information}
YAML
    "$RELAY" --config "$work/relay.yaml" 2>"$work/relay.log" &
    relay=$!
    wait_for "$work/relay.log" "listener bench: listening" || { kill $relay $feed; continue; }
    lport=$(sed -n 's/.*listener bench: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/relay.log")
    subs=()
    for ((i = 0; i < SUBS; i++)); do
      "$SUB" "127.0.0.1:$lport" --format raw --count "$frames" >/dev/null 2>&1 &
      subs+=($!)
    done
    wait_for "$work/relay.log" "subscriber .* connected" "$SUBS" || { kill $relay $feed "${subs[@]}"; continue; }
    wait_for "$work/relay.log" "upstream .*connected" || { kill $relay $feed "${subs[@]}"; continue; }
    start=$(date +%s.%N)
    kill -USR1 $feed
    wait "${subs[@]}"
    end=$(date +%s.%N)
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$relay/stat")
    kill -TERM $relay; wait $relay 2>/dev/null
    kill $feed 2>/dev/null; wait $feed 2>/dev/null
    /usr/bin/python3 -c "
import sys; f, s, t = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
print(f'| {sys.argv[5]} | {s} | {f:,} | {t:.2f} | {f / t:,.0f} | {f * s / t / 1e6:,.1f} | {sys.argv[6]} |')" \
      "$frames" "$size" "$start" "$end" "$mode" "$cpu"
  done
done
