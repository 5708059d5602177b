#!/usr/bin/env bash
# sink-bench.sh - frames/s the redis plugin writes into Redis (XADD, one
# connection, pipelined batches) beside Redis' own best client on the same
# machine: redis-benchmark, one connection, pipelined as deep as the plugin's
# batch. Frames come from streamrelay-feed at full speed into a `listen`
# source; the clock runs from the feed's start until XLEN holds them all.
#
#   tests/bench/sink-bench.sh                 # 200,000 frames of 128 B and 4 KiB, 3 runs each
#
# Knobs: FRAMES [200000], SIZES ["128 4096"], RUNS [3], BATCH [1000] (the
# plugin's batch_frames and redis-benchmark's -P), BUILD [build].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FRAMES=${FRAMES:-200000}
SIZES=${SIZES:-"128 4096"}
RUNS=${RUNS:-3}
BATCH=${BATCH:-1000}
WORK=$(mktemp -d /tmp/streamrelay-sink-bench.XXXXXX)
REDIS_PORT=17201 PUB_PORT=17202
[ -x "$BUILD/core/streamrelay" ] || { echo "build the relay first: bash .ci/build" >&2; exit 1; }
mkdir -p "$WORK/plugins" && cp "$BUILD/plugins/redis.so" "$WORK/plugins/"

now_ms() { date +%s%3N; }
xlen() { redis-cli -p $REDIS_PORT XLEN bench 2>/dev/null || echo 0; }

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS=$!
trap 'kill $REDIS 2>/dev/null' EXIT
for _ in $(seq 100); do redis-cli -p $REDIS_PORT PING >/dev/null 2>&1 && break; sleep 0.05; done  # start-up poll

cat >"$WORK/relay.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:$PUB_PORT"}
plugins:
  directory: $WORK/plugins
  instances:
    - name: sink
      type: redis
      queue: {max_frames: 0, max_bytes: 268435456, on_full: block}
      config: {url: "redis://127.0.0.1:$REDIS_PORT", key: bench, batch_frames: $BATCH, flush_ms: 20}
log: {level: warning}
YAML

echo "| size | writer | frames/s (median) | every run |"
echo "|---|---|---:|---|"
for size in $SIZES; do
  plugin=() native=()
  payload=$(head -c "$size" /dev/zero | tr '\0' x)
  for run in $(seq "$RUNS"); do
    # The plugin: relay + feed, timed until Redis holds every frame.
    redis-cli -p $REDIS_PORT DEL bench >/dev/null
    "$BUILD/core/streamrelay" --config "$WORK/relay.yaml" 2>"$WORK/relay.log" &
    relay=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PUB_PORT) 2>/dev/null && break; sleep 0.05; done  # start-up poll
    start=$(now_ms)
    "$BUILD/tools/streamrelay-feed" --connect 127.0.0.1:$PUB_PORT --generate --rate 0 --size "$size" --count "$FRAMES" 2>/dev/null
    deadline=$((start + 120000))
    while [ "$(xlen)" -lt "$FRAMES" ] && [ "$(now_ms)" -lt $deadline ]; do sleep 0.01; done  # poll with a deadline
    end=$(now_ms)
    kill $relay; wait $relay 2>/dev/null
    plugin+=("$(( FRAMES * 1000 / (end - start) ))")
    # redis-benchmark: the same commands, one connection, pipelined.
    redis-cli -p $REDIS_PORT DEL bench >/dev/null
    rate=$(redis-benchmark -p $REDIS_PORT -c 1 -P "$BATCH" -n "$FRAMES" --csv XADD bench '*' seq 1 epoch 1 received_ns 1 payload "$payload" |
           tail -1 | cut -d, -f2 | tr -d '"')
    native+=("${rate%.*}")
  done
  median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
  echo "| $size | redis plugin (XADD, batch $BATCH) | $(median "${plugin[@]}") | ${plugin[*]} |"
  echo "| $size | redis-benchmark -c 1 -P $BATCH (XADD) | $(median "${native[@]}") | ${native[*]} |"
done
