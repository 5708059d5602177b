#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sink-bench.sh - frames/s the sink plugins write into each engine, beside
# the engine's own best client on the same machine:
#   redis      the redis plugin (XADD, pipelined batches)   vs redis-benchmark -c 1 -P BATCH XADD
#   nats-core  the nats plugin, core NATS                   vs a cnats publish loop (nats_publish_bench.cpp)
#   nats-r1    the nats plugin, JetStream, 1 replica        vs the cnats loop, JetStream async
#   nats-r3    the same on a 3-node cluster, 3 replicas
# Frames come from streamrelay-feed at full speed into a `listen` source; the
# clock runs from the feed's start until the engine holds every frame (the
# stream's length; for core NATS, a subscriber has them all). The native
# clients are timed the same way where they can be (core NATS: the same
# subscriber) and by their own completion otherwise (redis-benchmark's
# figure; the JetStream loop waits for every ack).
#
#   tests/bench/sink-bench.sh                 # 200,000 frames of 128 B and 4 KiB, 3 runs each
#
# Knobs: FRAMES [200000], SIZES ["128 4096"], RUNS [3], TARGETS ["redis nats-core
# nats-r1 nats-r3"], BATCH [1000] (the redis plugin's batch_frames and
# redis-benchmark's -P), BUILD [build].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FRAMES=${FRAMES:-200000}
SIZES=${SIZES:-"128 4096"}
RUNS=${RUNS:-3}
BATCH=${BATCH:-1000}
TARGETS=${TARGETS:-"redis nats-core nats-r1 nats-r3"}
WORK=$(mktemp -d /tmp/streamrelay-sink-bench.XXXXXX)
REDIS_PORT=17201 PUB_PORT=17202 NATS_PORTS=(17211 17212 17213) ROUTE_PORTS=(17221 17222 17223)
NATS_URL=nats://127.0.0.1:${NATS_PORTS[0]}
TOOL=$BUILD/nats_publish_bench
[ -x "$BUILD/core/streamrelay" ] || { echo "build the relay first: bash .ci/build" >&2; exit 1; }
g++ -O2 -std=c++17 -o "$TOOL" "$ROOT/tests/bench/nats_publish_bench.cpp" $(pkg-config --cflags --libs libnats) || exit 1
mkdir -p "$WORK/plugins"
SERVERS=()
cleanup() { for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

now_ms() { date +%s%3N; }
# Polls (with a deadline) until COMMAND prints a number >= N; the start-up
# and completion polls of this script are waits on a condition, not pacing.
wait_until() {  # wait_until N DEADLINE_MS COMMAND...
  local n=$1 deadline=$2; shift 2
  while [ "$("$@" 2>/dev/null || echo 0)" -lt "$n" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.01; done
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

start_redis() {
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  SERVERS+=($!)
  for _ in $(seq 100); do redis-cli -p $REDIS_PORT PING >/dev/null 2>&1 && break; sleep 0.05; done
}
start_nats() {  # start_nats 1|3
  local nodes=$1 i
  for ((i = 0; i < nodes; i++)); do
    local args=(-a 127.0.0.1 -p "${NATS_PORTS[$i]}" -js -sd "$WORK/nats$i" -n "n$i")
    if [ "$nodes" -gt 1 ]; then
      local routes="" j
      for ((j = 0; j < nodes; j++)); do [ $j -ne $i ] && routes+="${routes:+,}nats://127.0.0.1:${ROUTE_PORTS[$j]}"; done
      args+=(--cluster_name bench --cluster "nats://127.0.0.1:${ROUTE_PORTS[$i]}" --routes "$routes")
    fi
    nats-server "${args[@]}" >"$WORK/nats$i.log" 2>&1 &
    SERVERS+=($!)
  done
  for _ in $(seq 100); do grep -q "Server is ready" "$WORK/nats0.log" 2>/dev/null && break; sleep 0.05; done
}
stop_servers() { cleanup; SERVERS=(); rm -rf "$WORK"/nats*; }

relay_config() {  # relay_config INSTANCE_CONFIG PLUGIN: only that plugin in the directory
  rm -f "$WORK"/plugins/*.so && cp "$BUILD/plugins/$2.so" "$WORK/plugins/"
  cat >"$WORK/relay.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:$PUB_PORT"}
plugins:
  directory: $WORK/plugins
  instances:
    - {name: sink, type: $2, queue: {max_frames: 0, max_bytes: 268435456, on_full: block}, config: $1}
log: {level: warning}
YAML
}

# Runs the relay and the feed; RATE is the frames/s until DONE_COMMAND returns.
time_plugin() {  # time_plugin SIZE DONE_COMMAND...
  local size=$1; shift
  "$BUILD/core/streamrelay" --config "$WORK/relay.yaml" 2>"$WORK/relay.log" &
  local relay=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PUB_PORT) 2>/dev/null && break; sleep 0.05; done
  local start; start=$(now_ms)
  "$BUILD/tools/streamrelay-feed" --connect 127.0.0.1:$PUB_PORT --generate --rate 0 --size "$size" --count "$FRAMES" \
    >/dev/null 2>&1
  "$@"
  local end; end=$(now_ms)
  kill $relay; wait $relay 2>/dev/null
  RATE=$(( FRAMES * 1000 / (end - start) ))
}

receiver_done() { wait "$RECEIVER"; }
start_receiver() {
  "$TOOL" receive $NATS_URL 'relay.>' "$FRAMES" >"$WORK/receiver.out" &
  RECEIVER=$!
  for _ in $(seq 200); do grep -q ready "$WORK/receiver.out" 2>/dev/null && break; sleep 0.01; done
}

echo "| size | target | plugin frames/s (median) | native client frames/s (median) | plugin/native | plugin runs | native runs |"
echo "|---|---|---:|---:|---:|---|---|"
for target in $TARGETS; do
  case $target in
    redis) start_redis ;;
    nats-core|nats-r1) start_nats 1 ;;
    nats-r3) start_nats 3 ;;
  esac
  for size in $SIZES; do
    plugin=() native=()
    payload=$(head -c "$size" /dev/zero | tr '\0' x)
    for _ in $(seq "$RUNS"); do
      case $target in
        redis)
          relay_config "{url: \"redis://127.0.0.1:$REDIS_PORT\", key: bench, batch_frames: $BATCH, flush_ms: 20}" redis
          redis-cli -p $REDIS_PORT DEL bench >/dev/null
          time_plugin "$size" wait_until "$FRAMES" $(( $(now_ms) + 120000 )) redis-cli -p $REDIS_PORT XLEN bench
          plugin+=("$RATE")
          redis-cli -p $REDIS_PORT DEL bench >/dev/null
          rate=$(redis-benchmark -p $REDIS_PORT -c 1 -P "$BATCH" -n "$FRAMES" --csv XADD bench '*' seq 1 epoch 1 \
                   received_ns 1 payload "$payload" | tail -1 | cut -d, -f2 | tr -d '"')
          native+=("${rate%.*}")
          ;;
        nats-core)
          relay_config "{servers: [\"$NATS_URL\"], subject: \"relay.{stream}\"}" nats
          start_receiver
          time_plugin "$size" receiver_done
          plugin+=("$RATE")
          start_receiver
          start=$(now_ms)
          "$TOOL" publish $NATS_URL relay.native "$FRAMES" "$size" core >/dev/null
          wait "$RECEIVER"
          native+=("$(( FRAMES * 1000 / ($(now_ms) - start) ))")
          ;;
        nats-r1|nats-r3)
          replicas=1; [ $target = nats-r3 ] && replicas=3
          urls="\"$NATS_URL\""; [ $replicas = 3 ] && urls="\"$NATS_URL\", \"nats://127.0.0.1:${NATS_PORTS[1]}\", \"nats://127.0.0.1:${NATS_PORTS[2]}\""
          relay_config "{servers: [$urls], subject: \"relay.{stream}\", jetstream: {stream: BENCH}}" nats
          "$TOOL" reset $NATS_URL BENCH 'relay.>' $replicas || { echo "cannot create the stream" >&2; exit 1; }
          time_plugin "$size" wait_until "$FRAMES" $(( $(now_ms) + 120000 )) "$TOOL" count $NATS_URL BENCH
          plugin+=("$RATE")
          "$TOOL" reset $NATS_URL BENCH 'relay.>' $replicas
          native+=("$("$TOOL" publish $NATS_URL relay.native "$FRAMES" "$size" jetstream)")
          ;;
      esac
    done
    p=$(median "${plugin[@]}") n=$(median "${native[@]}")
    echo "| $size | $target | $p | $n | $(( 100 * p / (n > 0 ? n : 1) ))% | ${plugin[*]} | ${native[*]} |"
  done
  stop_servers
done
