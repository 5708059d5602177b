#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# replay-bench.sh - how fast a relay replays a stream's log (streams.NAME.log)
# to one subscriber from disk. First a relay fills a log with FRAMES frames of
# SIZE bytes (its generator source, as fast as the log takes them; a
# subscriber with a lossless `block` queue counts them in) and stops; then a
# relay started on that log replays it to one `streamrelay-sub --from-seq 1`
# (lossless `block` queue, payloads to /dev/null); the clock runs from the
# subscriber's start to its last frame. Prints frames/s and MB/s of payload,
# and the relay's CPU seconds (user + system) during the replay: on a shared,
# loaded machine that compares two builds better than the wall clock.
# The log is read from the page cache when it fits there (the usual case
# right after writing it); drop the caches first to measure the disk.
#   bash .ci/build && tests/bench/replay-bench.sh      # FRAMES=10000000 SIZE=128 DIR=build/replay-bench
#   RELAY=/tmp/old/streamrelay tests/bench/replay-bench.sh   # another build of the relay
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FRAMES=${FRAMES:-10000000}
SIZE=${SIZE:-128}
DIR=${DIR:-$ROOT/build/replay-bench}
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
SUB=$ROOT/build/tools/streamrelay-sub
work=$(mktemp -d /tmp/replay-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
rm -rf "$DIR"
mkdir -p "$DIR"

wait_for() {  # wait_for FILE PATTERN: bounded
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q -E "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

# start_relay GENERATOR: a relay on the log; sets relay and port.
start_relay() {
  cat >"$work/relay.yaml" <<YAML
upstream: {type: generator, size: $SIZE, $1}
streams:
  upstream:
    log: {dir: '$DIR', fsync: never}
listeners:
  - {name: bench, bind: "127.0.0.1:0", protocol: streamrelay,
     queue: {max_frames: 0, max_bytes: 268435456, on_full: block}}
log: {level: information}
YAML
  : >"$work/relay.log"
  "$RELAY" --config "$work/relay.yaml" 2>"$work/relay.log" &
  relay=$!
  wait_for "$work/relay.log" "listener bench: listening" || exit 1
  port=$(sed -n 's/.*listener bench: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$work/relay.log")
}

# 1. Fill the log: FRAMES frames, counted in by a subscriber from seq 1 (the
#    generator starts before it connects: what it missed comes from the log).
start_relay "rate: 10000000, count: $FRAMES"
fill_start=$(date +%s.%N)
"$SUB" "127.0.0.1:$port" --protocol streamrelay --from-seq 1 --format raw --count "$FRAMES" >/dev/null \
  2>"$work/fill.log" \
  || { cat "$work/fill.log" >&2; exit 1; }
fill_end=$(date +%s.%N)
kill -TERM $relay; wait $relay 2>/dev/null
echo "log filled: $FRAMES frames of $SIZE B in $(du -sh "$DIR" | cut -f1) ($(awk "BEGIN {printf \"%.1f\", $fill_end - $fill_start}") s)"

# 2. Replay it to one subscriber (the relay's own source nearly idle).
start_relay "rate: 1"
cpu_before=$(awk '{print ($14 + $15)}' "/proc/$relay/stat")
start=$(date +%s.%N)
"$SUB" "127.0.0.1:$port" --protocol streamrelay --from-seq 1 --format raw --count "$FRAMES" >/dev/null \
  2>"$work/replay.log" || { cat "$work/replay.log" >&2; exit 1; }
end=$(date +%s.%N)
cpu=$(awk -v b="$cpu_before" '{print ($14 + $15 - b) / 100}' "/proc/$relay/stat")
kill -TERM $relay; wait $relay 2>/dev/null
grep -o '"recovered":[a-z]*' "$work/replay.log" | head -1
printf "| frames | size B | seconds | frames/s | MB/s | relay CPU s | load (1 min) |\n|---:|---:|---:|---:|---:|---:|---:|\n"
/usr/bin/python3 -c "
import sys; f, s, t = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
print(f'| {f:,} | {s} | {t:.2f} | {f / t:,.0f} | {f * s / t / 1e6:,.1f} | {sys.argv[5]} | {sys.argv[6]} |')" \
  "$FRAMES" "$SIZE" "$start" "$end" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
rm -rf "$DIR"
