#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# takeover-bench.sh - how long a standby takes to hold the provider after the
# holder of the lease dies (docs/fleet.md "Standby for the one provider
# connection"). Two relays A and B share a `lease` in a redis-server and follow
# each other; the provider is tests/support/account_feed.py --exclusive (one
# connection at a time) at RATE frames/s. N times: kill -9 the holder, time
# from the kill to the standby's provider connection (its log line
# "connected" after "took the lease"), start the killed relay again (it
# follows). Prints the median and p99 of the takeover times, and whether the
# provider ever refused a second connection.
#
#   tests/bench/takeover-bench.sh                 # N=20 TTL_MS=1000 RATE=20000
#   N=50 TTL_MS=500 tests/bench/takeover-bench.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
N=${N:-20}
TTL_MS=${TTL_MS:-1000}
RATE=${RATE:-20000}
BASE=${BASE_PORT:-17900}
DIR=$(mktemp -d /tmp/takeover-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT
REDIS_PORT=$BASE A_PORT=$((BASE + 1)) B_PORT=$((BASE + 2))

wait_count() {  # FILE REGEX COUNT: waits (30 s at most) until the log has COUNT such lines
  for _ in $(seq 1 3000); do
    local have
    have=$(grep -c "$2" "$1" 2>/dev/null)
    [ "${have:-0}" -ge "$3" ] && return 0
    sleep 0.01
  done
  echo "timed out waiting for $3 lines '$2' in $1" >&2
  return 1
}
stamp_ms() {  # the time of a relay log line ("YYYY-MM-DD HH:MM:SS.mmm ...") in ms since the epoch
  date -d "$(cut -c1-23 <<<"$1")" +%s%3N
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --logfile "$DIR/redis.log" &
wait_count "$DIR/redis.log" "Ready to accept" 1 || exit 1
python3 "$ROOT/tests/support/account_feed.py" --protocol tcp --ports 1 --rate "$RATE" --exclusive \
  --max-seconds 100000 </dev/null 2>"$DIR/feed.log" &
wait_count "$DIR/feed.log" "listening on" 1 || exit 1
FEED_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$DIR/feed.log")

config() {  # NAME MYPORT OTHERPORT
  cat >"$DIR/$1.yaml" <<YAML
upstream: {type: tcp, endpoints: ["127.0.0.1:$FEED_PORT"], reconnect: {initial_delay_ms: 50, max_delay_ms: 200},
           lease: {url: "redis://127.0.0.1:$REDIS_PORT", key: bench-lease, ttl_ms: $TTL_MS},
           follow: {endpoints: ["127.0.0.1:$3"]}}
streams: {upstream: {replay: {frames: 100000}}}
listeners:
  - {name: main, bind: "127.0.0.1:$2", protocol: streamrelay, replay: {frames: 100000}}
YAML
}
config a "$A_PORT" "$B_PORT"
config b "$B_PORT" "$A_PORT"
declare -A PID PORT=([a]=$A_PORT [b]=$B_PORT)
start() { "$RELAY" --config "$DIR/$1.yaml" >>"$DIR/$1.log" 2>&1 & PID[$1]=$!; }

start a
wait_count "$DIR/a.log" "took the lease" 1 || exit 1
start b
wait_count "$DIR/b.log" "127.0.0.1:$A_PORT.*connected" 1 || exit 1  # following a
holder=a standby=b
provider="127.0.0.1:$FEED_PORT.*connected"
times=()
for i in $(seq 1 "$N"); do
  before=$(grep -c "$provider" "$DIR/$standby.log")
  sleep 1  # the standby follows for a while (the benchmark's pace, not a synchronisation)
  killed=$(date +%s%3N)
  kill -9 "${PID[$holder]}"
  wait "${PID[$holder]}" 2>/dev/null
  wait_count "$DIR/$standby.log" "$provider" $((before + 1)) || exit 1
  times+=($(($(stamp_ms "$(grep "$provider" "$DIR/$standby.log" | tail -1)") - killed)))
  echo "kill $i: $holder killed, $standby connected to the provider after ${times[-1]} ms" >&2
  followed=$(grep -c "127.0.0.1:${PORT[$standby]}.*connected" "$DIR/$holder.log")
  start "$holder"  # comes back and follows the new holder
  wait_count "$DIR/$holder.log" "127.0.0.1:${PORT[$standby]}.*connected" $((followed + 1)) || exit 1
  tmp=$holder holder=$standby standby=$tmp
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
count=${#sorted[@]}
median=${sorted[$((count / 2))]}
p99=${sorted[$(((count * 99 + 99) / 100 - 1))]}
echo "| kills | ttl_ms | rate f/s | median ms | p99 ms | max ms | second connections refused |"
echo "|---|---|---|---|---|---|---|"
echo "| $count | $TTL_MS | $RATE | $median | $p99 | ${sorted[-1]} | $(grep -c 'second connection refused' "$DIR/feed.log") |"
