#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# isolation-bench.sh - a plugin in process vs isolated (isolation: process):
# sqlite_writer and the filter, each alone on the relay's `listen` upstream
# with on_full: block (nothing lost, so the feed goes as fast as the plugin
# takes the frames). A feed pushes N frames of SIZE bytes as fast as it can;
# then SIGTERM, and the relay exits once every frame was handed to the plugin
# (and, for sqlite_writer, committed). Prints frames/s over the whole run
# (feed start to relay exit) and CPU per frame: user + system time of the
# relay and of its children (the isolated plugin's), from the relay's rusage.
# For sqlite_writer it prints the row count too (must be N).
#   bash .ci/build && tests/bench/isolation-bench.sh        # N=1000000 SIZE=128 RUNS=3
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-1000000}
SIZE=${SIZE:-128}
RUNS=${RUNS:-3}
work=$(mktemp -d /tmp/isolation-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -m 755 "$work/plugins"
cp "$ROOT/build/plugins/sqlite_writer.so" "$ROOT/build/plugins/filter.so" "$work/plugins/"

# One run: $1 plugin (sqlite_writer | filter), $2 isolation. Prints one line.
run() {
  local plugin=$1 isolation=$2 config
  rm -f "$work"/bench.db*
  if [ "$plugin" = sqlite_writer ]; then
    config="{path: $work/bench.db, batch_frames: 1000, synchronous: NORMAL}"
  else
    config="{regex: '^feed [0-9]*0[.]'}"  # keeps every 10th frame
  fi
  cat >"$work/relay.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:0"}
plugins:
  directory: $work/plugins
  instances:
    - {name: p, type: $plugin, isolation: $isolation, queue: {max_frames: 100000, on_full: block}, config: $config}
log: {level: information}
YAML
  : >"$work/relay.log"
  /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$ROOT/build/core/streamrelay" --config "$work/relay.yaml" \
    2>"$work/relay.log" &
  local relay=$!
  for _ in $(seq 200); do grep -q "relay started" "$work/relay.log" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/.*listening for publishers on .*:\([0-9]*\)$/\1/p' "$work/relay.log")
  local start fed end
  start=$(date +%s.%N)
  "$ROOT/build/tools/streamrelay-feed" --connect "127.0.0.1:$port" --generate --rate 0 --size "$SIZE" --count "$N" \
    2>/dev/null
  fed=$(date +%s.%N)
  pkill -TERM -P "$relay" -x streamrelay || true   # /usr/bin/time's child: the relay
  wait "$relay"
  end=$(date +%s.%N)
  local check=""
  if [ "$plugin" = sqlite_writer ]; then
    check="rows $(sqlite3 "$work/bench.db" 'select count(*) from frames')"
  fi
  read -r _ user sys <"$work/time.txt"
  /usr/bin/python3 - "$plugin" "$isolation" "$N" "$start" "$end" "$user" "$sys" "$check" <<'PY'
import sys
plugin, isolation, n, start, end, user, system, check = sys.argv[1:]
n = int(n); secs = float(end) - float(start); cpu = float(user) + float(system)
print(f"{plugin:14} {isolation:10} {n / secs:>12,.0f} frames/s   {cpu / n * 1e9:>8,.0f} ns CPU/frame   {check}")
PY
}

echo "N=$N SIZE=$SIZE: frames/s from feed start to relay exit; CPU of the relay and its plugin child per frame"
for plugin in sqlite_writer filter; do
  for isolation in in_process process; do
    for _ in $(seq "$RUNS"); do run "$plugin" "$isolation"; done
  done
done
