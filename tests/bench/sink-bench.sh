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
# clients run on the same clock (started by this script, stopped by the same
# condition), with the plugin's acknowledgement discipline: redis-benchmark
# reads every reply, the JetStream loop awaits every ack (with the plugin's
# ack deadline and expected stream), core NATS flushes at the end.
#
# Each run times the plugin and then the native client back to back, and
# reports their ratio: on a shared machine the load drifts between runs, less
# within one pair. The completion is asked for on one connection (redis-cli
# -r, nats_publish_bench wait), not by a process per question, which would
# take the CPU being measured. Beside the rate, the CPU the path used per
# frame (user + system of the feed, the relay and the server; of the client
# and the server), which the other jobs on the machine disturb far less.
#
#   tests/bench/sink-bench.sh                 # 200,000 frames of 128 B and 4 KiB, 3 runs each
#
# Knobs: FRAMES [200000], SIZES ["128 4096"], RUNS [3], TARGETS ["redis nats-core
# nats-r1 nats-r3"], BATCH [1000] (the redis plugin's batch_frames and
# redis-benchmark's -P), BUILD [build] (a directory with core/streamrelay,
# tools/streamrelay-feed and plugins/*.so: point it at another build's plugins
# to compare before and after a change).
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
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
# CPU time (user + system, clock ticks) of the running processes PIDS.
cpu_ticks() {  # cpu_ticks PID...
  local total=0 pid
  for pid in "$@"; do total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) )); done
  echo $total
}
# The CPU, in ticks, of a process run under /usr/bin/time -o FILE -f '%U %S'.
timed_ticks() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d\n", ($1 + $2) * hz + 0.5}' "$1"; }
# Runs COMMAND under /usr/bin/time; its CPU ticks are in $WORK/NAME.cpu.
run_timed() {  # run_timed NAME COMMAND...
  local name=$1; shift
  /usr/bin/time -o "$WORK/$name.time" -f '%U %S' "$@"
  local rc=$?
  timed_ticks "$WORK/$name.time" >"$WORK/$name.cpu"
  return $rc
}
load() { cut -d' ' -f1 /proc/loadavg; }

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

# Runs the relay and the feed; RATE is the frames/s until DONE_COMMAND
# returns, CPU the nanoseconds of CPU per frame of the feed, the relay and
# the servers, DONE its exit status (not 0: frames are missing, e.g. a core
# NATS subscriber that the server cut as a slow consumer).
time_plugin() {  # time_plugin SIZE DONE_COMMAND...
  local size=$1; shift
  "$BUILD/core/streamrelay" --config "$WORK/relay.yaml" 2>"$WORK/relay.log" &
  local relay=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PUB_PORT) 2>/dev/null && break; sleep 0.05; done
  local server0; server0=$(cpu_ticks "${SERVERS[@]}")
  local start; start=$(now_ms)
  run_timed feed "$BUILD/tools/streamrelay-feed" --connect 127.0.0.1:$PUB_PORT --generate --rate 0 --size "$size" \
    --count "$FRAMES" >/dev/null 2>&1
  "$@"
  DONE=$?
  local end; end=$(now_ms)
  local ticks=$(( $(cpu_ticks $relay) + $(cat "$WORK/feed.cpu") + $(cpu_ticks "${SERVERS[@]}") - server0 ))
  kill $relay; wait $relay 2>/dev/null
  RATE=$(( FRAMES * 1000 / (end - start) ))
  CPU=$(( ticks * 1000000000 / $(getconf CLK_TCK) / FRAMES ))
}

# Runs the native client COMMAND; RATE, CPU and DONE as time_plugin's, once
# COMMAND and then DONE_COMMAND returned.
time_native() {  # time_native "COMMAND..." DONE_COMMAND...
  local command=$1; shift
  local server0; server0=$(cpu_ticks "${SERVERS[@]}")
  local start; start=$(now_ms)
  eval "run_timed native $command" >/dev/null
  local ran=$?
  "$@"
  DONE=$(( $? | ran ))
  local end; end=$(now_ms)
  local ticks=$(( $(cat "$WORK/native.cpu") + $(cpu_ticks "${SERVERS[@]}") - server0 ))
  RATE=$(( FRAMES * 1000 / (end - start) ))
  CPU=$(( ticks * 1000000000 / $(getconf CLK_TCK) / FRAMES ))
}

# The completions: each fails (non-zero) if not every frame arrived.
# Returns once the redis stream `bench` holds FRAMES entries (two minutes at most).
redis_done() {
  timeout 120 redis-cli -p $REDIS_PORT -r -1 -i 0.005 XLEN bench |
    { while read -r n; do [ "${n:-0}" -ge "$FRAMES" ] && exit 0; done; exit 1; }
}
jetstream_done() { "$TOOL" wait $NATS_URL BENCH "$FRAMES"; }
receiver_done() { wait "$RECEIVER"; }
nothing() { :; }
start_receiver() {
  "$TOOL" receive $NATS_URL 'relay.>' "$FRAMES" >"$WORK/receiver.out" &
  RECEIVER=$!
  for _ in $(seq 200); do grep -q ready "$WORK/receiver.out" 2>/dev/null && break; sleep 0.01; done
}

# A side of a run: its rate and CPU, or nothing if not every frame arrived.
record() {  # record plugin|native
  if [ "$DONE" -ne 0 ]; then RATE="" CPU=""; fi
  if [ "$1" = plugin ]; then prate=$RATE pticks=$CPU; else nrate=$RATE nticks=$CPU; fi
}

echo "| size | target | plugin frames/s | native frames/s | plugin/native (median of the runs' ratios) | plugin CPU ns/frame | native CPU ns/frame | plugin runs | native runs | load (1 min) | |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|---|---|"
for target in $TARGETS; do
  case $target in
    redis) start_redis ;;
    nats-core|nats-r1) start_nats 1 ;;
    nats-r3) start_nats 3 ;;
  esac
  for size in $SIZES; do
    plugin=() native=() ratios=() pcpu=() ncpu=() loads=() incomplete=0
    for _ in $(seq "$RUNS"); do
      loads+=("$(load)")
      case $target in
        redis)
          relay_config "{url: \"redis://127.0.0.1:$REDIS_PORT\", key: bench, batch_frames: $BATCH, flush_ms: 20}" redis
          redis-cli -p $REDIS_PORT DEL bench >/dev/null
          time_plugin "$size" redis_done
          record plugin
          redis-cli -p $REDIS_PORT DEL bench >/dev/null
          # The plugin's command, word for word in length: seq, a 10-digit
          # epoch, a 19-digit receive time, the payload.
          payload=$(head -c "$size" /dev/zero | tr '\0' x)
          time_native "redis-benchmark -p $REDIS_PORT -c 1 -P $BATCH -n $FRAMES -q XADD bench '*' seq 1 epoch 1764740000 \
                         received_ns 1764740000000000000 payload \"\$payload\"" redis_done
          record native
          ;;
        nats-core)
          relay_config "{servers: [\"$NATS_URL\"], subject: \"relay.{stream}\"}" nats
          start_receiver
          time_plugin "$size" receiver_done
          record plugin
          start_receiver
          time_native "'$TOOL' publish $NATS_URL relay.native $FRAMES $size core" receiver_done
          record native
          ;;
        nats-r1|nats-r3)
          replicas=1; [ $target = nats-r3 ] && replicas=3
          urls="\"$NATS_URL\""; [ $replicas = 3 ] && urls="\"$NATS_URL\", \"nats://127.0.0.1:${NATS_PORTS[1]}\", \"nats://127.0.0.1:${NATS_PORTS[2]}\""
          relay_config "{servers: [$urls], subject: \"relay.{stream}\", jetstream: {stream: BENCH}}" nats
          "$TOOL" reset $NATS_URL BENCH 'relay.>' $replicas || { echo "cannot create the stream" >&2; exit 1; }
          time_plugin "$size" jetstream_done
          record plugin
          "$TOOL" reset $NATS_URL BENCH 'relay.>' $replicas
          time_native "'$TOOL' publish $NATS_URL relay.native $FRAMES $size jetstream 4096 BENCH" jetstream_done
          record native
          ;;
      esac
      if [ -n "$prate" ] && [ -n "$nrate" ]; then
        plugin+=("$prate") pcpu+=("$pticks") native+=("$nrate") ncpu+=("$nticks") ratios+=("$(( 100 * prate / nrate ))")
      else
        incomplete=$(( incomplete + 1 ))
      fi
    done
    [ ${#plugin[@]} -eq 0 ] && { echo "| $size | $target | every run incomplete |"; continue; }
    echo "| $size | $target | $(median "${plugin[@]}") | $(median "${native[@]}") | $(median "${ratios[@]}")% |" \
         "$(median "${pcpu[@]}") | $(median "${ncpu[@]}") | ${plugin[*]} | ${native[*]} | ${loads[*]} |" \
         "$([ $incomplete -gt 0 ] && echo "$incomplete run(s) left out: frames missing")"
  done
  stop_servers
done
