#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# durable-bench.sh - what a stream's log (streams.NAME.log,
# docs/durable-streams.md) costs and how it compares, in one run on one disk:
#
# 1. Ingest: frames/s durably accepted.
#    - relay: durable_ingest_bench.cpp sends FRAMES frames of each size, as
#      fast as the socket takes them, into a `listen` source whose stream has
#      a log (fsync {every_ms: 100} and always); a frame counts once the log's
#      fsynced_seq (/stats streams[].log, from the metrics plugin, asked every
#      2 ms) has reached it. Beside it, when the log's last_seq reached it
#      (written: in the page cache, not yet forced to the disk).
#    - jetstream: nats-server with JetStream, a stream with file storage and
#      1 replica, fed the same frames by the same tool with cnats'
#      js_PublishAsync, at most JS_WINDOW acks outstanding (4096 was the
#      fastest of 1024 to 65536 here), until every ack is in; no message ids.
#      nats-server 2.9 (Debian 12) has no sync_interval: it acks once a
#      message is in its own buffer, writes it soon after and fsyncs every
#      60 s, so its ack promises less than the relay's fsynced_seq (about
#      what the "written" column promises, or less).
#    - disk: dd writes the same bytes into DIR in 64 KiB blocks and one
#      fdatasync at the end, as frames/s: a yardstick for the disk at that
#      moment (on a shared VM it varies several-fold from run to run).
#    Each run is relay every_ms, relay always, jetstream, disk back to back (the
#    load drifts less within a run than between runs); a cell is the median
#    of the runs, a ratio the median of the runs' ratios.
#    Aim: relay >= 2x jetstream with each fsync policy.
# 2. Live fan-out with the log on vs off: run-bench.sh's max-rate cells
#    (FANOUT_SUBS x FANOUT_SIZES, shipped listener defaults), its profile
#    "defaults" beside its profile "log" (the same with
#    streams.upstream.log, fsync {every_ms: 100}), interleaved cell by cell,
#    FANOUT_RUNS times. Aim: log on >= 90% of log off in each cell.
#
# Prints Markdown tables with the ratios and the verdicts, and the load
# average (the machine may be shared). About 4 minutes with the defaults.
# Needs a build (bash .ci/build), nats-server, libnats (pkg-config), python3
# and the shared fan-out harness (BENCH_DIR). Not run by CI.
#
#   tests/bench/durable-bench.sh
#   PARTS=ingest SIZES=128 RUNS=1 tests/bench/durable-bench.sh          # a quick look, about 20 s
#   PARTS=fanout FANOUT_SUBS=16 FANOUT_RUNS=1 tests/bench/durable-bench.sh
#
# Knobs: PARTS ["ingest fanout"], SIZES ["128 4096"] (ingest), FRAMES [per size:
# 1,000,000 or 400 MiB worth, whichever is fewer], RUNS [3], MODES ["every_ms
# always"] (also: never, counted at last_seq), JS_WINDOW [4096], DIR
# [build/durable-bench: the disk of both the relay's log and JetStream's store,
# emptied as it goes],
# FANOUT_SUBS ["16 1000"], FANOUT_SIZES ["128 4096"], FANOUT_SECS [5],
# FANOUT_RUNS [3], BENCH_DIR [../shared/bench beside the repo], BUILD [build].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PARTS=${PARTS:-"ingest fanout"}
SIZES=${SIZES:-"128 4096"}
RUNS=${RUNS:-3}
MODES=${MODES:-"every_ms always"}
JS_WINDOW=${JS_WINDOW:-4096}
DIR=${DIR:-$ROOT/build/durable-bench}
FANOUT_SUBS=${FANOUT_SUBS:-"16 1000"}
FANOUT_SIZES=${FANOUT_SIZES:-"128 4096"}
FANOUT_SECS=${FANOUT_SECS:-5}
FANOUT_RUNS=${FANOUT_RUNS:-3}
export BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
FEED_PORT=17431 STATS_PORT=17432 NATS_PORT=17433
NATS_URL=nats://127.0.0.1:$NATS_PORT
TOOL=$BUILD/durable_ingest_bench
WORK=$(mktemp -d /tmp/streamrelay-durable-bench.XXXXXX)

[ -x "$BUILD/core/streamrelay" ] && [ -f "$BUILD/plugins/metrics.so" ] || { echo "build the relay first: bash .ci/build" >&2; exit 1; }
g++ -O2 -std=c++17 -pthread -o "$TOOL" "$ROOT/tests/bench/durable_ingest_bench.cpp" $(pkg-config --cflags --libs libnats) || exit 1
mkdir -p "$DIR" "$WORK/plugins"
echo "logs: $WORK" >&2
cp "$BUILD/plugins/metrics.so" "$WORK/plugins/"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR/log" "$DIR/nats"; }
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
frames_for() { echo "${FRAMES:-$(( $1 * 1000000 < 419430400 ? 1000000 : 419430400 / $1 ))}"; }
wait_port() {  # wait_port PORT: until something listens (bounded)
  local i
  for ((i = 0; i < 200; i++)); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2
  return 1
}
stop() {  # stop PID: TERM, then wait (bounded), then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
fsync_yaml() { case $1 in every_ms) echo "{every_ms: 100}" ;; *) echo "$1" ;; esac; }

# One relay run: a fresh relay on an empty log; appends "SIZE relay-MODE
# FSYNCED WRITTEN SERVER_NS_PER_FRAME" to $WORK/ingest.
relay_run() {  # relay_run SIZE MODE
  local size=$1 mode=$2 frames; frames=$(frames_for "$1")
  rm -rf "$DIR/log"
  cat >"$WORK/relay.yaml" <<YAML
sources:
  feed: {type: listen, bind: "127.0.0.1:$FEED_PORT"}
streams:
  feed:
    log: {dir: "$DIR/log", fsync: $(fsync_yaml "$mode")}
plugins:
  directory: $WORK/plugins
  instances:
    - {name: stats, type: metrics, config: {bind: "127.0.0.1:$STATS_PORT"}}
log: {level: warning}
YAML
  "$BUILD/core/streamrelay" --config "$WORK/relay.yaml" 2>>"$WORK/relay.log" &
  local relay=$!
  wait_port $STATS_PORT && wait_port $FEED_PORT || { stop $relay; return 1; }
  local cpu0; cpu0=$(cpu_ticks $relay)
  local until=fsynced; [ "$mode" = never ] && until=written  # never: nothing is forced to the disk
  local out; out=$("$TOOL" relay $FEED_PORT $STATS_PORT "$frames" "$size" $until)
  local rc=$? cpu1; cpu1=$(cpu_ticks $relay)
  stop $relay
  [ $rc -eq 0 ] || { echo "relay $mode $size B: run failed" >&2; return 1; }
  set -- $out
  [ "$mode" = never ] && set -- "$2" "$2"
  echo "$size relay-$mode $1 $2 $(( (cpu1 - cpu0) * 1000000000 / $(getconf CLK_TCK) / frames ))" >>"$WORK/ingest"
}

# One JetStream run: an empty stream; appends "SIZE jetstream ACKED - SERVER_NS_PER_FRAME".
jetstream_run() {  # jetstream_run SIZE NATS_PID
  local size=$1 nats=$2 frames; frames=$(frames_for "$1")
  "$TOOL" reset $NATS_URL BENCH 'bench.>' || { echo "cannot create the JetStream stream" >&2; return 1; }
  local cpu0; cpu0=$(cpu_ticks "$nats")
  local out; out=$("$TOOL" jetstream $NATS_URL bench.feed "$frames" "$size" "$JS_WINDOW")
  local rc=$? cpu1; cpu1=$(cpu_ticks "$nats")
  [ $rc -eq 0 ] || { echo "jetstream $size B: run failed" >&2; return 1; }
  echo "$size jetstream $out - $(( (cpu1 - cpu0) * 1000000000 / $(getconf CLK_TCK) / frames ))" >>"$WORK/ingest"
}

# One dd run: the same bytes in 64 KiB writes, one fdatasync; appends "SIZE disk FRAMES_PER_S - -".
disk_run() {  # disk_run SIZE
  local size=$1 frames; frames=$(frames_for "$1")
  local bytes=$(( frames * size )) start end
  start=$(date +%s%N)
  dd if=/dev/zero of="$DIR/dd" bs=64K count=$(( (bytes + 65535) / 65536 )) conv=fdatasync status=none || return 1
  end=$(date +%s%N)
  rm -f "$DIR/dd"
  echo "$size disk $(( frames * 1000000000 / (end - start) )) - -" >>"$WORK/ingest"
}

ingest() {
  : >"$WORK/ingest"
  echo "ingest: load average $(load) at the start" >"$WORK/ingest-load"
  local size run mode
  for size in $SIZES; do
    echo "ingest: $(frames_for "$size") frames of $size B x $RUNS runs" >&2
    rm -rf "$DIR/nats"
    nats-server -a 127.0.0.1 -p $NATS_PORT -js -sd "$DIR/nats" >"$WORK/nats.log" 2>&1 &
    local nats=$!
    PIDS+=($nats)
    wait_port $NATS_PORT || exit 1
    for ((run = 1; run <= RUNS; run++)); do
      for mode in $MODES; do relay_run "$size" "$mode"; done
      jetstream_run "$size" $nats
      disk_run "$size"
    done
    stop $nats
  done
  echo "ingest: load average $(load) at the end" >>"$WORK/ingest-load"
  python3 - "$WORK/ingest" "$MODES" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
modes = sys.argv[2].split()
def med(xs): return statistics.median(xs) if xs else None
print("| size | target | durably accepted frames/s | MB/s | written frames/s | vs JetStream (median of runs) | server CPU µs/frame | runs (frames/s) | aim: >= 2x |")
print("|---:|---|---:|---:|---:|---:|---:|---|---|")
for size in sorted({int(r[0]) for r in rows}):
    cell = [r for r in rows if int(r[0]) == size]
    js = [float(r[2]) for r in cell if r[1] == "jetstream"]
    for target in ["relay-" + m for m in modes] + ["jetstream", "disk"]:
        runs = [r for r in cell if r[1] == target]
        if not runs:
            print(f"| {size} | {target} | every run failed |")
            continue
        rates = [float(r[2]) for r in runs]
        written = [float(r[3]) for r in runs if r[3] != "-"]
        cpus = [float(r[4]) / 1000 for r in runs if r[4] != "-"]
        cpu = f"{med(cpus):.2f}" if cpus else ""
        ratio, verdict = "", ""
        if target.startswith("relay") and len(js) == len(rates):
            ratio = med([a / b for a, b in zip(rates, js)])
            verdict = "met" if ratio >= 2 else "MISSED"
            ratio = f"{ratio:.2f}x"
        w = f"{med(written):,.0f}" if written else {"jetstream": "(ack)", "disk": "(dd)"}[target]
        print(f"| {size} | {target} | {med(rates):,.0f} | {med(rates) * size / 1e6:,.1f} | {w} | {ratio} | {cpu} | "
              f"{' '.join(f'{x:,.0f}' for x in rates)} | {verdict} |")
PY
  cat "$WORK/ingest-load"
}

fanout() {
  echo "fanout: load average $(load) at the start" >"$WORK/fanout-load"
  local run
  for ((run = 1; run <= FANOUT_RUNS; run++)); do
    echo "fanout: run $run of $FANOUT_RUNS" >&2
    SECS=$FANOUT_SECS SUBS=$FANOUT_SUBS SIZES=$FANOUT_SIZES PROFILES="defaults log" ANCHORS="" LAT_RATES="" LAT_MANY="" \
      LOG_DIR="$DIR/log" RESULTS="$WORK/fanout.jsonl.$run" "$ROOT/tests/bench/run-bench.sh" >"$WORK/fanout-table.$run" || exit 1
  done
  echo "fanout: load average $(load) at the end" >>"$WORK/fanout-load"
  cat "$WORK"/fanout.jsonl.* >"$WORK/fanout.jsonl"
  python3 - "$WORK/fanout.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cells = sorted({(r["size"], r["subscribers"]) for r in rows if "delivered_msgs_per_s" in r})
print("| cell | log off: delivered msg/s | log on | on / off (median of runs) | runs off | runs on | lost off / on | peak RSS MB off / on | aim: >= 90% |")
print("|---|---:|---:|---:|---|---|---|---|---|")
for size, subs in cells:
    def runs(label):
        return [r for r in rows if r.get("label") == label and r["size"] == size and r["subscribers"] == subs]
    off, on = runs("streamrelay-defaults"), runs("streamrelay-log")
    if not off or not on:
        print(f"| {subs} subs x {size} B | a run failed |")
        continue
    rate = lambda rs: [r.get("delivered_msgs_per_s", 0) for r in rs]
    ratio = statistics.median([b / a for a, b in zip(rate(off), rate(on)) if a])
    lost = lambda rs: sum(r.get("lost", 0) for r in rs)
    rss = lambda rs: max(r.get("server_rss_peak_kb", 0) for r in rs) / 1024
    fmt = lambda xs: " ".join(f"{x / 1e6:.2f}M" for x in xs)
    print(f"| {subs} subs x {size} B | {statistics.median(rate(off)) / 1e6:.2f} M | {statistics.median(rate(on)) / 1e6:.2f} M | "
          f"{100 * ratio:.0f}% | {fmt(rate(off))} | {fmt(rate(on))} | {lost(off)} / {lost(on)} | {rss(off):.0f} / {rss(on):.0f} | "
          f"{'met' if ratio >= 0.9 else 'MISSED'} |")
PY
  cat "$WORK/fanout-load"
  echo
  echo "The fan-out runs' raw tables (run-bench.sh):"
  cat "$WORK"/fanout-table.*
}

echo "# durable-bench $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(nats-server --version), disk of $DIR: $(df --output=source "$DIR" | tail -1)"
for part in $PARTS; do
  echo
  case $part in
    ingest) echo "## Ingest"; echo; ingest ;;
    fanout) echo "## Live fan-out, log on vs off"; echo; fanout ;;
    *) echo "unknown part $part (ingest, fanout)" >&2; exit 2 ;;
  esac
done
