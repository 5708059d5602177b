#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engine-bench.sh - provider -> edge subscriber, end to end on loopback,
# through each way an edge relay can be fed, in one run:
#   tree          root relay (listen source, streamrelay listener) -> edge relay
#                 with a `streamrelay` source (mirror) -> SUBS raw subscribers
#   redis         root relay with the redis sink (XADD, epoch/seq fields) ->
#                 redis-server (appendonly no) -> edge relay with a `redis` source
#                 (from: '0') -> SUBS raw subscribers
#   jetstream-r1  root relay with the nats sink (JetStream, stream of 1 replica)
#                 -> nats-server -js -> edge relay with a `nats` source (JetStream,
#                 deliver: new) -> SUBS raw subscribers
#   jetstream-r3  the same on three clustered nats-servers, stream replicas 3
# A build whose relay has no `nats` source prints "not available in this
# build" on the JetStream rows (its config is written all the same).
#
# Each topology is started afresh (its own engine server in a temp dir, free
# loopback ports) for each of two runs of engine_latency_bench, which is the
# provider (on the root's `listen` source, the default length-prefix framing)
# and the subscribers (on the edge's raw listener):
#   throughput  FRAMES frames of SIZE bytes as fast as the root takes them, every
#               queue lossless (on_full: block): frames/s from the first frame
#               sent to the last subscriber's last frame, and the CPU seconds of
#               the root, the engine server(s) and the edge over that time;
#   latency     RATE frames/s for LATENCY_S seconds, each stamped with its send
#               time (CLOCK_REALTIME): p50, p99, max of receive - send over
#               every frame of every subscriber.
# Both check that every subscriber got every frame, in order.
#
#   tests/bench/engine-bench.sh            # FRAMES=500000 SIZE=128 SUBS=4 RATE=10000 LATENCY_S=10
#   TOPOLOGIES="tree redis" FRAMES=1000000 tests/bench/engine-bench.sh
#
# Knobs: FRAMES, SIZE, SUBS, RATE, LATENCY_S, TOPOLOGIES ["tree redis
# jetstream-r1 jetstream-r3"], BUILD [build] (with core/streamrelay,
# plugins/*.so, tests/bench/engine_latency_bench). Keep the logs: KEEP=1.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
RELAY=$BUILD/core/streamrelay
TOOL=$BUILD/tests/bench/engine_latency_bench
FRAMES=${FRAMES:-500000}
SIZE=${SIZE:-128}
SUBS=${SUBS:-4}
RATE=${RATE:-10000}
LATENCY_S=${LATENCY_S:-10}
TOPOLOGIES=${TOPOLOGIES:-"tree redis jetstream-r1 jetstream-r3"}
STREAM=ENGINEBENCH
for f in "$RELAY" "$TOOL"; do
  [ -x "$f" ] || { echo "missing $f: build first (bash .ci/build build)" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/engine-bench.XXXXXX)
PIDS=()  # every process of the running topology
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  PIDS=()
}
trap 'stop_all; [ -n "${KEEP:-}" ] && echo "logs in $DIR" >&2 || rm -rf "$DIR"' EXIT

wait_line() {  # FILE REGEX PID: waits (20 s at most, while PID lives) for a line of PID's log
  for _ in $(seq 1 400); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "no '$2' in $1 ($(kill -0 "$3" 2>/dev/null && echo "timed out" || echo "the process ended")); its last lines:" >&2
  tail -n 5 "$1" 2>/dev/null | sed 's/^/    /' >&2
  return 1
}

# Does this relay know `type: nats` as a source? --check-config on the edge's
# source (the type comes from nats.so in a plugins directory, as on the edge):
# 0 it does (and takes the config), 1 "'nats' is not a source type", 2 it
# does but refuses the config (the reason in $PROBE_ERROR).
nats_source_probe() {
  mkdir -p "$DIR/probe-plugins"
  cp "$BUILD/plugins/nats.so" "$DIR/probe-plugins/" 2>/dev/null
  printf 'upstream: {type: nats, servers: ["nats://127.0.0.1:4222"], subject: "relay.upstream", jetstream: {stream: %s, deliver: new}}\nplugins: {directory: %s}\n' \
    "$STREAM" "$DIR/probe-plugins" >"$DIR/probe.yaml"
  PROBE_ERROR=$("$RELAY" --check-config "$DIR/probe.yaml" 2>&1 >/dev/null) && return 0
  grep -q "'nats' is not a source type" <<<"$PROBE_ERROR" && return 1
  return 2
}

NATS_TOOL=$BUILD/nats_publish_bench  # creates the JetStream stream (sink-bench.sh builds it the same way)
nats_tool() {
  [ -x "$NATS_TOOL" ] && [ "$NATS_TOOL" -nt "$ROOT/tests/bench/nats_publish_bench.cpp" ] && return 0
  # shellcheck disable=SC2046  # pkg-config's flags, split into words
  g++ -O2 -std=c++17 -o "$NATS_TOOL" "$ROOT/tests/bench/nats_publish_bench.cpp" $(pkg-config --cflags --libs libnats)
}

# Starts TOPOLOGY for one run: sets PROVIDER, EDGE (host:port), ROOT_PID,
# EDGE_PID, ENGINE_PIDS (comma-separated, empty for the tree).
start() {  # start TOPOLOGY RUN
  local topo=$1 work="$DIR/$1-$2"
  mkdir -p "$work/plugins"
  local ports; mapfile -t ports < <("$TOOL" --free-ports 9)
  local pub=${ports[0]} sr=${ports[1]} out=${ports[2]} engine=${ports[3]}
  PROVIDER=127.0.0.1:$pub EDGE=127.0.0.1:$out ENGINE_PIDS=""
  local rootExtra="" edgeSource="" edgeExtra=""
  case $topo in
    tree)
      edgeSource="{type: streamrelay, endpoints: [\"127.0.0.1:$sr\"], mirror: true}"
      ;;
    redis)
      redis-server --port "$engine" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
        >"$work/redis.log" 2>&1 & PIDS+=($!); ENGINE_PIDS=$!
      wait_line "$work/redis.log" "Ready to accept connections" $! || return 1
      cp "$BUILD/plugins/redis.so" "$work/plugins/"
      rootExtra="plugins:
  directory: $work/plugins
  instances:
    - {name: sink, type: redis, inputs: [upstream], queue: {max_frames: 0, max_bytes: 268435456, on_full: block},
       config: {url: 'redis://127.0.0.1:$engine', key: 'relay:{stream}'}}"
      edgeSource="{type: redis, url: 'redis://127.0.0.1:$engine', key: 'relay:upstream', from: '0'}"
      ;;
    jetstream-r1|jetstream-r3)
      local nodes=1 i j servers="" routes
      [ "$topo" = jetstream-r3 ] && nodes=3
      for ((i = 0; i < nodes; i++)); do
        local args=(-a 127.0.0.1 -p "${ports[$((3 + i))]}" -js -sd "$work/nats$i" -n "n$i")
        if [ $nodes -gt 1 ]; then
          routes=""
          for ((j = 0; j < nodes; j++)); do
            [ $j -ne $i ] && routes+="${routes:+,}nats://127.0.0.1:${ports[$((6 + j))]}"
          done
          args+=(--cluster_name enginebench --cluster "nats://127.0.0.1:${ports[$((6 + i))]}" --routes "$routes")
        fi
        nats-server "${args[@]}" >"$work/nats$i.log" 2>&1 & PIDS+=($!)
        ENGINE_PIDS+="${ENGINE_PIDS:+,}$!"
        servers+="${servers:+, }\"nats://127.0.0.1:${ports[$((3 + i))]}\""
      done
      for ((i = 0; i < nodes; i++)); do
        wait_line "$work/nats$i.log" "Server is ready" "${PIDS[$((${#PIDS[@]} - nodes + i))]}" || return 1
      done
      # The stream, empty (the tool retries while a cluster elects its leaders).
      "$NATS_TOOL" reset "nats://127.0.0.1:$engine" "$STREAM" 'relay.>' "$nodes" ||
        { echo "cannot create the JetStream stream" >&2; return 1; }
      cp "$BUILD/plugins/nats.so" "$work/plugins/"
      rootExtra="plugins:
  directory: $work/plugins
  instances:
    - {name: sink, type: nats, inputs: [upstream], queue: {max_frames: 0, max_bytes: 268435456, on_full: block},
       config: {servers: [$servers], subject: 'relay.{stream}', jetstream: {stream: $STREAM}}}"
      edgeSource="{type: nats, servers: [$servers], subject: \"relay.upstream\", jetstream: {stream: $STREAM, deliver: new}}"
      edgeExtra="plugins: {directory: $work/plugins}"  # where the nats source type comes from
      ;;
  esac
  cat >"$work/root.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:$pub"}
listeners:
  - {name: sr, bind: "127.0.0.1:$sr", protocol: streamrelay, queue: {on_full: block}}
$rootExtra
YAML
  cat >"$work/edge.yaml" <<YAML
upstream: $edgeSource
listeners:
  - {name: out, bind: "127.0.0.1:$out", queue: {on_full: block}}
$edgeExtra
YAML
  "$RELAY" --config "$work/root.yaml" >"$work/root.log" 2>&1 & PIDS+=($!); ROOT_PID=$!
  wait_line "$work/root.log" "relay started" $ROOT_PID || return 1
  "$RELAY" --config "$work/edge.yaml" >"$work/edge.log" 2>&1 & PIDS+=($!); EDGE_PID=$!
  wait_line "$work/edge.log" "relay started" $EDGE_PID || return 1
  # The edge's subscription and its subscribers are ready once a warm-up
  # frame went through: engine_latency_bench waits for that itself.
}

# Runs the tool against the started topology; its key=value lines go to FILE.
measure() {  # measure FILE TOOL_ARGS...
  local file=$1; shift
  local cpus=(--cpu "root=$ROOT_PID" --cpu "edge=$EDGE_PID")
  [ -n "$ENGINE_PIDS" ] && cpus+=(--cpu "engine=$ENGINE_PIDS")
  timeout 300 "$TOOL" --provider "$PROVIDER" --subscriber "$EDGE" --subs-each "$SUBS" --size "$SIZE" "${cpus[@]}" "$@" \
    >"$file" 2>"$file.err"
  local rc=$?
  [ -s "$file.err" ] && sed 's/^/    /' "$file.err" >&2
  return $rc
}

get() { sed -n "s/^$2=//p" "$1"; }  # get FILE KEY

# "in order, none lost", or what went wrong.
verdict() {  # verdict FILE STATUS
  local lost order closed
  lost=$(get "$1" lost) order=$(get "$1" out_of_order) closed=$(get "$1" closed_by_relay)
  if [ -z "$lost" ]; then echo "no result (exit $2)"; return; fi
  if [ "$2" -eq 0 ]; then echo "in order, none lost"; return; fi
  echo "LOST $lost of $(( $(get "$1" frames) * $(get "$1" subscribers) )), $order out of order, $closed subscribers closed"
}

load() { cut -d' ' -f1 /proc/loadavg; }
echo "Settings: FRAMES=$FRAMES SIZE=$SIZE SUBS=$SUBS RATE=$RATE LATENCY_S=$LATENCY_S; nproc $(nproc);" \
     "$(date -u '+%Y-%m-%d %H:%M UTC'); load (1 min) $(load) at the start"
echo
echo "| topology | frames/s | seconds | root CPU s | engine CPU s | edge CPU s | throughput run | p50 µs | p99 µs | max µs | latency run |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
for topo in $TOPOLOGIES; do
  case $topo in
    tree|redis) ;;
    jetstream-r1|jetstream-r3)
      nats_source_probe
      case $? in
        1) echo "| $topo | not available in this build (no \`nats\` source) | | | | | | | | | |"; continue ;;
        2) echo "| $topo | the edge's config is refused: ${PROBE_ERROR//|/\\|} | | | | | | | | | |"; continue ;;
      esac
      nats_tool || { echo "| $topo | cannot build nats_publish_bench (libnats) | | | | | | | | | |"; continue; }
      ;;
    *) echo "unknown topology $topo" >&2; continue ;;
  esac
  t="$DIR/$topo-throughput.out" l="$DIR/$topo-latency.out"
  : >"$t"; : >"$l"
  start "$topo" throughput && measure "$t" --frames "$FRAMES"; ts=$?
  stop_all
  start "$topo" latency && measure "$l" --rate "$RATE" --seconds "$LATENCY_S"; ls=$?
  stop_all
  engineCpu=$(get "$t" cpu_engine); [ -z "$engineCpu" ] && engineCpu="–"
  echo "| $topo | $(get "$t" frames_per_s) | $(get "$t" seconds) | $(get "$t" cpu_root) | $engineCpu | $(get "$t" cpu_edge) |" \
       "$(verdict "$t" $ts) | $(get "$l" p50_us) | $(get "$l" p99_us) | $(get "$l" max_us) | $(verdict "$l" $ls) |"
done
echo
echo "load (1 min) $(load) at the end; latency: receive - send (CLOCK_REALTIME) of every frame of every subscriber"
