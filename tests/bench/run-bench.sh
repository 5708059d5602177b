#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run-bench.sh - measures streamrelay fan-out with the shared load harness
# (../shared/bench/fanout_bench.cpp) and, in the same run, the anchors it is
# compared with: the harness's bare-epoll ceiling ("self"), nats-server and
# redis-server pub/sub. Prints a Markdown table; JSON lines go to RESULTS.
#
#   tests/bench/run-bench.sh                          # full matrix, about 10 minutes
#   SECS=2 SUBS="16" SIZES=128 ANCHORS="" tests/bench/run-bench.sh   # one quick cell
#
# Knobs: SECS [5], SUBS ["1 16 256 1000"], SIZES ["128 4096"], LAT_RATES ["20000"],
# LAT_MANY ["2000"] (1000-subscriber latency cells; either empty: none), PROFILES ["defaults tuned"],
# ANCHORS ["self nats redis"] (needs nats-server and redis-server for those),
# WRITERS [0] writer_threads, SNDBUF [262144] send_buffer_bytes (see docs/subscribers.md),
# BENCH_DIR [../shared/bench beside the repo], RELAY [build/core/streamrelay],
# RESULTS [build/bench-<time>.jsonl].
# The profile "log" (PROFILES="defaults log") is the defaults with a log on the
# relay's stream (streams.upstream.log, docs/durable-streams.md): LOG_DIR
# [build/run-bench-log, emptied before each relay start], LOG_FSYNC
# [{every_ms: 100}], LOG_RETAIN_BYTES [536870912] (bounds the disk a run fills).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
SECS=${SECS:-5}
SUBS=${SUBS:-"1 16 256 1000"}
SIZES=${SIZES:-"128 4096"}
LAT_RATES=${LAT_RATES-"20000"}
ANCHORS=${ANCHORS-"self nats redis"}
RESULTS=${RESULTS:-$ROOT/build/bench-$(date -u +%Y%m%d-%H%M%S).jsonl}
HARNESS=$ROOT/build/fanout_bench
UP_PORT=17001
SUB_PORT=17000
LOGDIR=$(mktemp -d /tmp/streamrelay-bench.XXXXXX)

[ -x "$RELAY" ] || { echo "build the relay first: bash .ci/build" >&2; exit 1; }
[ -f "$BENCH_DIR/fanout_bench.cpp" ] || { echo "no harness at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
g++ -O2 -pthread -std=c++17 -o "$HARNESS" "$BENCH_DIR/fanout_bench.cpp" || exit 1
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
: >"$RESULTS"
echo "results: $RESULTS   logs: $LOGDIR" >&2

# The relay under test, in two profiles (PROFILES):
# - defaults: the shipped listener defaults (queue, send buffer, write
#   deadline); only max_clients is raised so that 1000 subscribers fit;
# - tuned: big per-subscriber queues (the harness's window bounds what is in
#   flight) and a fixed 256 KiB SO_SNDBUF (see docs/benchmarks.md).
# - log: the defaults, and the stream keeps a log (LOG_DIR, LOG_FSYNC).
# All: disconnect on overflow, warnings only.
PROFILES=${PROFILES:-"defaults tuned"}
LOG_DIR=${LOG_DIR:-$ROOT/build/run-bench-log}
write_config() {  # write_config PROFILE -> path
  local config=$LOGDIR/relay-$1.yaml tuning="" streams=""
  [ "$1" = tuned ] && tuning="    send_buffer_bytes: ${SNDBUF:-262144}
    queue: {max_frames: 0, max_bytes: 67108864, on_full: disconnect}"
  [ "$1" = log ] && streams="streams:
  upstream:
    log: {dir: \"$LOG_DIR\", fsync: ${LOG_FSYNC:-"{every_ms: 100}"}, retain: {bytes: ${LOG_RETAIN_BYTES:-536870912}}}"
  cat >"$config" <<YAML
upstream:
  type: tcp
  host: 127.0.0.1
  port: $UP_PORT
  reconnect: {initial_delay_ms: 20, max_delay_ms: 200}
listeners:
  - name: bench
    bind: "127.0.0.1:$SUB_PORT"
    max_clients: 2000
$tuning
$streams
log: {level: warning}
writer_threads: ${WRITERS:-0}
YAML
  echo "$config"
}

stop() {  # stop PID: TERM, then wait (bounded), then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

wait_port() {  # wait_port PORT: until something listens (bounded)
  local i
  for ((i = 0; i < 100; i++)); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  return 1
}

relay_cell() {  # relay_cell SUBS SIZE RATE: once per profile
  local profile
  for profile in $PROFILES; do
    local log=$LOGDIR/relay-$profile-$1-$2-$3.log
    [ "$profile" = log ] && rm -rf "$LOG_DIR"  # each cell starts a fresh log
    "$RELAY" --config "$(write_config "$profile")" 2>"$log" &
    local pid=$!
    timeout 180 "$HARNESS" --target relay --label "streamrelay-$profile" --upstream-listen 127.0.0.1:$UP_PORT \
      --subscribe 127.0.0.1:$SUB_PORT --pid "$pid" --subs "$1" --size "$2" --rate "$3" --seconds "$SECS" \
      2>>"$LOGDIR/harness.log" >>"$RESULTS"
    stop "$pid"
  done
}

anchor_cell() {  # anchor_cell TARGET SUBS SIZE RATE
  local common=(--subs "$2" --size "$3" --rate "$4" --seconds "$SECS") pid
  case $1 in
    self) timeout 180 "$HARNESS" --target self "${common[@]}" 2>>"$LOGDIR/harness.log" >>"$RESULTS" ;;
    nats)
      nats-server -a 127.0.0.1 -p 14222 >"$LOGDIR/nats.log" 2>&1 &
      pid=$!
      wait_port 14222 && timeout 180 "$HARNESS" --target nats --server 127.0.0.1:14222 --pid "$pid" "${common[@]}" \
        2>>"$LOGDIR/harness.log" >>"$RESULTS"
      stop "$pid" ;;
    redis)
      redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000 >"$LOGDIR/redis.log" 2>&1 &
      pid=$!
      wait_port 16379 && timeout 180 "$HARNESS" --target redis --server 127.0.0.1:16379 --pid "$pid" "${common[@]}" \
        2>>"$LOGDIR/harness.log" >>"$RESULTS"
      stop "$pid" ;;
  esac
}

for size in $SIZES; do
  for subs in $SUBS; do
    echo "cell: $subs subscribers x $size B" >&2
    relay_cell "$subs" "$size" 0
    for a in $ANCHORS; do anchor_cell "$a" "$subs" "$size" 0; done
  done
done
for rate in $LAT_RATES; do
  echo "latency cell: 16 subscribers x 128 B at $rate frames/s" >&2
  relay_cell 16 128 "$rate"
  for a in $ANCHORS; do anchor_cell "$a" 16 128 "$rate"; done
done
# Tail latency with many subscribers: 1000 x 2000 frames/s of 128 B is
# 2 M deliveries/s; LAT_MANY="" skips it.
for rate in ${LAT_MANY-2000}; do
  echo "latency cell: 1000 subscribers x 128 B at $rate frames/s" >&2
  relay_cell 1000 128 "$rate"
  for a in $ANCHORS; do anchor_cell "$a" 1000 128 "$rate"; done
done
python3 "$BENCH_DIR/results_table.py" "$RESULTS"
