#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# filter-bench.sh - the built-in `filter` processor at full speed: the shared
# harness (../shared/bench/fanout_bench.cpp) publishes SIZE-byte frames as the
# relay's tcp upstream; a `filter` instance keeps those whose first payload
# byte (the low byte of the harness's seq) is below 26, i.e. 26/256 = 10.2%;
# SUBS subscribers read the filter's stream. Prints the input rate the filter
# sustained and checks that it kept exactly its share (a filter that fell
# behind would drop frames at its queue: the kept share would fall).
#   bash .ci/build && tests/bench/filter-bench.sh        # SUBS=16 SIZE=128 SECS=5
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
SUBS=${SUBS:-16}
SIZE=${SIZE:-128}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
QUEUE=${QUEUE:-}   # e.g. "{on_full: block}" for the filter's input queue; empty: the default
HARNESS=$ROOT/build/fanout_bench
work=$(mktemp -d /tmp/filter-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
g++ -O2 -pthread -std=c++17 -o "$HARNESS" "$BENCH_DIR/fanout_bench.cpp"
mkdir -m 755 "$work/plugins"
cp "$ROOT/build/plugins/filter.so" "$work/plugins/"
queue=""
[ -n "$QUEUE" ] && queue="queue: $QUEUE,"
cat >"$work/relay.yaml" <<YAML
upstream: {type: tcp, host: 127.0.0.1, port: 17101, reconnect: {initial_delay_ms: 20, max_delay_ms: 200}}
plugins:
  directory: $work/plugins
  instances:
    - {name: kept, type: filter, $queue config: {regex: '^[\x00-\x19]'}}
listeners:
  - {name: bench, bind: "127.0.0.1:17100", inputs: [kept], max_clients: 2000}
log: {level: warning}
YAML
for run in $(seq "$RUNS"); do
  "$ROOT/build/core/streamrelay" --config "$work/relay.yaml" 2>"$work/relay.log" &
  relay=$!
  timeout 120 "$HARNESS" --target relay --label filter --upstream-listen 127.0.0.1:17101 \
    --subscribe 127.0.0.1:17100 --pid "$relay" --subs "$SUBS" --size "$SIZE" --seconds "$SECS" ${WINDOW:+--window "$WINDOW"} \
    2>"$work/harness.log" >"$work/result.json" || { cat "$work/harness.log" >&2; }
  kill -TERM "$relay"
  wait "$relay" || true
  /usr/bin/python3 - "$work/result.json" "$SUBS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
subs = int(sys.argv[2])
share = r["frames_delivered"] / max(1, r["frames_sent"] * subs)
print(f"input {r['published_frames_per_s']:>12,.0f} frames/s   delivered {r['delivered_msgs_per_s']:>12,.0f} msg/s"
      f"   kept {share:.4f} (expected {26/256:.4f})")
PY
done
