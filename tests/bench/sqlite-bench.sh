#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sqlite-bench.sh - end-to-end sqlite_writer throughput: a feed pushes N frames
# of SIZE bytes as fast as the relay takes them into a `listen` upstream; the
# sqlite_writer instance (on_full: block, so nothing is lost) writes them to a
# WAL database; then SIGTERM, and the relay exits once every frame is
# committed. Prints rows/s over the whole run (feed start to relay exit) and
# checks the row count.
#   bash .ci/build && tests/bench/sqlite-bench.sh            # N=2000000 SIZE=128
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-2000000}
SIZE=${SIZE:-128}
BATCH=${BATCH:-1000}
SYNC=${SYNC:-NORMAL}
work=$(mktemp -d /tmp/sqlite-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -m 755 "$work/plugins"
cp "$ROOT/build/plugins/sqlite_writer.so" "$work/plugins/"
cat >"$work/relay.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:0"}
plugins:
  directory: $work/plugins
  instances:
    - name: db
      type: sqlite_writer
      queue: {max_frames: 100000, on_full: block}
      config: {path: $work/bench.db, batch_frames: $BATCH, synchronous: $SYNC}
log: {level: information}
YAML
"$ROOT/build/core/streamrelay" --config "$work/relay.yaml" 2>"$work/relay.log" &
relay=$!
for _ in $(seq 100); do grep -q "relay started" "$work/relay.log" && break; sleep 0.05; done
port=$(sed -n 's/.*listening for publishers on .*:\([0-9]*\)$/\1/p' "$work/relay.log")
start=$(date +%s.%N)
"$ROOT/build/tools/streamrelay-feed" --connect "127.0.0.1:$port" --generate --rate 0 --size "$SIZE" --count "$N" 2>/dev/null
fed=$(date +%s.%N)
kill -TERM "$relay"
wait "$relay"
end=$(date +%s.%N)
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from frames').fetchone()[0])" "$work/bench.db")
python3 - "$N" "$SIZE" "$start" "$fed" "$end" "$rows" "$BATCH" "$SYNC" <<'PY'
import sys
n, size, start, fed, end, rows, batch, sync = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:6]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
print(f"sqlite_writer: {rows:,} of {n:,} frames of {size} B committed (WAL, synchronous {sync}, batch_frames {batch})")
print(f"  feed done after {fed - start:.2f} s, all committed after {end - start:.2f} s: {rows / (end - start):,.0f} rows/s end to end")
sys.exit(0 if rows == n else 1)
PY
grep "rows written" "$work/relay.log" | sed 's/^.*: /  plugin: /'
