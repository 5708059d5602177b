#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# selection-bench.sh - selection by key, streamrelay against nats-server (one
# subject per key), side by side in one run, driven by
# tests/bench/selection_bench.cpp (see its header for the method):
#   2,000 keys md.rRR.KNNNN, frames spread evenly over them; SUBS subscribers
#   each selecting (one) one key, (ten) 10 keys, (wildcard) md.rRR.>, 5% of
#   the keys. Each case at the highest rate the server takes (deliveries/s),
#   then both servers at half the slower one's rate (p99 latency at the same
#   load). Then "flat": FLAT_SUBS subscribers each selecting one key at
#   FLAT_RATE input frames/s, and the input alone (no subscriber), for the
#   server's CPU per delivered frame.
# A fresh server per run, on free loopback ports, config files in a temp dir;
# every run is bounded (WARMUP + SECS, and deadlines inside the tool).
#
#   tests/bench/selection-bench.sh                 # about 6 minutes
#   tests/bench/selection-bench.sh --no-select     # today's relay: every subscriber gets every frame (NATS: md.>)
#   SECS=3 CASES=one FLAT_SUBS="" tests/bench/selection-bench.sh   # a quick look
#
# Until the relay has `select`, the relay side stops with "relay does not
# support select yet"; --no-select runs the all-frames case instead (and
# the flat case at FLAT_RATE_ALL), to check the harness and see today's
# figures.
#
# Needs nats-server. Builds nothing: bash .ci/build builds the relay and
# build/tests/bench/selection_bench. Knobs: SECS [10], WARMUP [2], SUBS
# [1000], KEYS [2000], SIZE [128], CASES ["one ten wildcard"] (with
# --no-select: "all"), TARGETS ["relay nats"], FLAT_SUBS ["100 10000"],
# FLAT_RATE [20000] (FLAT_RATE_ALL [10] with --no-select), IN_FLIGHT [65536],
# RELAY [build/core/streamrelay], RESULTS [build/selection-bench-<time>.jsonl].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SELECT=1
for arg in "$@"; do
  case $arg in
    --no-select) SELECT=0 ;;
    *) echo "usage: $0 [--no-select]" >&2; exit 2 ;;
  esac
done
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
TOOL=$ROOT/build/tests/bench/selection_bench
SECS=${SECS:-10}
WARMUP=${WARMUP:-2}
SUBS=${SUBS:-1000}
KEYS=${KEYS:-2000}
SIZE=${SIZE:-128}
TARGETS=${TARGETS:-"relay nats"}
FLAT_SUBS=${FLAT_SUBS-"100 10000"}
IN_FLIGHT=${IN_FLIGHT:-65536}
if [ $SELECT = 1 ]; then
  CASES=${CASES:-"one ten wildcard"}
  FLAT_RATE=${FLAT_RATE:-20000}
  FLAT_SELECT=one
else
  CASES=${CASES:-all}
  FLAT_RATE=${FLAT_RATE_ALL:-10}
  FLAT_SELECT=all
fi
RESULTS=${RESULTS:-$ROOT/build/selection-bench-$(date -u +%Y%m%d-%H%M%S).jsonl}

if [ ! -x "$RELAY" ] || [ ! -x "$TOOL" ]; then echo "build the relay and the bench tools first: bash .ci/build" >&2; exit 1; fi
command -v nats-server >/dev/null || { echo "nats-server not found (apt-get install nats-server)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null
most=$SUBS
for n in $FLAT_SUBS; do [ "$n" -gt "$most" ] && most=$n; done
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((most + 256)) ]; then
  echo "open files: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)); $most subscribers need $((most + 256))" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/streamrelay-selection-bench.XXXXXX)
PIDS=()  # what this script started and has not stopped yet
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
: >"$RESULTS"
echo "results: $RESULTS   work: $WORK" >&2

relay_config() {  # relay_config UP_PORT SUB_PORT -> path
  local streams=""
  [ $SELECT = 1 ] && streams="streams: {feed: {key: {json_pointer: /k}}}"
  cat >"$WORK/relay.yaml" <<YAML
sources:
  feed: {type: tcp, host: 127.0.0.1, port: $1, reconnect: {initial_delay_ms: 20, max_delay_ms: 200}}
$streams
listeners:
  - {name: bench, bind: "127.0.0.1:$2", protocol: streamrelay, max_clients: $((most + 100))}
log: {level: warning}
YAML
  echo "$WORK/relay.yaml"
}

# The relay of this build must take the config before anything is measured.
if [[ " $TARGETS " == *" relay "* ]] && ! "$RELAY" --check-config "$(relay_config 1 2)" >"$WORK/check" 2>&1; then
  if [ $SELECT = 1 ] && grep -q key "$WORK/check"; then
    echo "relay does not support select yet: it refuses streams.feed.key ($(grep -m1 key "$WORK/check"))." >&2
    echo "Run with --no-select for today's all-frames figures." >&2
  else
    echo "the relay refuses the bench's config:" >&2
    cat "$WORK/check" >&2
  fi
  exit 2
fi

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null; }

stop() {  # stop PID: SIGTERM, then reap it
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  local p kept=()
  for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && kept+=("$p"); done
  PIDS=("${kept[@]}")
}

run_cell() {  # run_cell TARGET SELECT SUBS RATE PART -> one JSON line appended to RESULTS; 1 if it failed
  local target=$1 select=$2 subs=$3 rate=$4 part=$5 bench server rss code ports
  mapfile -t ports < <("$TOOL" --free-ports 2)
  [ ${#ports[@]} = 2 ] || return 1
  local args=(--target "$target" --select "$select" --subs "$subs" --keys "$KEYS" --size "$SIZE" --rate "$rate"
              --seconds "$SECS" --warmup "$WARMUP" --in-flight "$IN_FLIGHT" --label "$target")
  if [ "$target" = relay ]; then
    "$TOOL" "${args[@]}" --upstream-listen "127.0.0.1:${ports[0]}" --subscribe "127.0.0.1:${ports[1]}" \
      --pid-file "$WORK/server.pid" >"$WORK/out" 2>"$WORK/err" &
    bench=$!
    PIDS+=("$bench")
    "$RELAY" --config "$(relay_config "${ports[0]}" "${ports[1]}")" 2>"$WORK/server.log" &
    server=$!
  else
    printf 'listen: 127.0.0.1:%s\n' "${ports[1]}" >"$WORK/nats.conf"
    nats-server -c "$WORK/nats.conf" 2>"$WORK/server.log" &
    server=$!
    "$TOOL" "${args[@]}" --subscribe "127.0.0.1:${ports[1]}" --pid "$server" >"$WORK/out" 2>"$WORK/err" &
    bench=$!
    PIDS+=("$bench")
  fi
  PIDS+=("$server")
  echo "$server" >"$WORK/server.pid"
  wait -n "$bench" "$server"  # the tool ends the run; a server that ends first failed
  if kill -0 "$bench" 2>/dev/null; then
    stop "$bench"
    echo "$target $select x $subs: the server exited during the run: $(tail -3 "$WORK/server.log")" >&2
    stop "$server"
    return 1
  fi
  wait "$bench"
  code=$?
  stop "$bench"
  rss=$(peak_rss_mb "$server")
  stop "$server"
  if [ $code = 3 ]; then
    cat "$WORK/err" >&2
    echo "relay does not support select yet. Run with --no-select for today's all-frames figures." >&2
    exit 2
  fi
  if [ $code != 0 ] || [ ! -s "$WORK/out" ]; then
    echo "$target $select x $subs at rate $rate: failed: $(cat "$WORK/err")" >&2
    return 1
  fi
  local line
  line=$(cat "$WORK/out")
  echo "${line%\}},\"part\":\"$part\",\"server_peak_rss_mb\":${rss:-0}}" | tee -a "$RESULTS" >&2
}

input_rate_of() {  # input_rate_of TARGET SELECT PART -> input frames/s of that run in RESULTS (0 if none)
  /usr/bin/python3 - "$RESULTS" "$@" <<'PY'
import json, sys
rate = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if (r["label"], r["select"], r["part"]) == tuple(sys.argv[2:5]):
        rate = r["input_per_s"]
print("%.0f" % rate)
PY
}

for select in $CASES; do
  for target in $TARGETS; do run_cell "$target" "$select" "$SUBS" 0 max; done
  # p99 at the same load for both: half the input rate the slower one took
  slowest=""
  for target in $TARGETS; do
    r=$(input_rate_of "$target" "$select" max)
    [ "$r" != 0 ] && { [ -z "$slowest" ] || [ "$r" -lt "$slowest" ]; } && slowest=$r
  done
  if [ -n "$slowest" ]; then
    for target in $TARGETS; do run_cell "$target" "$select" "$SUBS" $((slowest / 2)) paced; done
  fi
done
if [ -n "$FLAT_SUBS" ]; then
  for target in $TARGETS; do
    run_cell "$target" "$FLAT_SELECT" 0 "$FLAT_RATE" flat
    for n in $FLAT_SUBS; do run_cell "$target" "$FLAT_SELECT" "$n" "$FLAT_RATE" flat; done
  done
fi

/usr/bin/python3 - "$RESULTS" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def find(label, select, part, subs=None):
    for r in runs:
        if (r["label"], r["select"], r["part"]) == (label, select, part) and (subs is None or r["subscribers"] == subs):
            return r
    return None
what = {"one": "one key", "ten": "10 keys", "wildcard": "wildcard, 5% of keys", "all": "every frame (no select)"}
sel = [r for r in runs if r["part"] in ("max", "paced")]
if sel:
    print("| case | subscribers | server | rate | input frames/s | deliveries/s | p50 us | p99 us | gaps | server CPU % | server CPU s / M deliveries | bench CPU % | server peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sel:
        print("| %s | %d | %s | %s | %.0f | %.0f | %.0f | %.0f | %d | %.0f | %.2f | %.0f | %d |" % (
            what.get(r["select"], r["select"]), r["subscribers"], r["label"],
            "max" if r["part"] == "max" else "%.0f/s" % r["rate"], r["input_per_s"], r["delivered_per_s"],
            r["p50_us"], r["p99_us"], r["gaps"], r["server_cpu_pct"], r["server_cpu_s_per_m_deliveries"],
            r["bench_cpu_pct"], r["server_peak_rss_mb"]))
    print()
    for select in dict.fromkeys(r["select"] for r in sel):
        rm, nm = find("relay", select, "max"), find("nats", select, "max")
        rp, np_ = find("relay", select, "paced"), find("nats", select, "paced")
        notes = []
        if rm and nm and nm["delivered_per_s"]:
            x = rm["delivered_per_s"] / nm["delivered_per_s"]
            notes.append("deliveries/s %.2fx nats-server (aim >= 3x: %s)" % (x, "met" if x >= 3 else "NOT met"))
        if rp and np_ and rp["p99_us"]:
            x = np_["p99_us"] / rp["p99_us"]
            notes.append("p99 at %.0f frames/s: nats-server's is %.2fx the relay's (aim >= 3x: %s)" % (
                rp["rate"], x, "met" if x >= 3 else "NOT met"))
        if notes:
            print("- %s: %s" % (what.get(select, select), "; ".join(notes)))
flat = [r for r in runs if r["part"] == "flat"]
if flat:
    print()
    print("| server | subscribers | input frames/s | deliveries/s | gaps | server CPU % | CPU s / M deliveries | CPU s / M deliveries, input alone taken off | p99 us |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in flat:
        base = find(r["label"], r["select"], "flat", 0)
        net = "-"
        if r["subscribers"] and base and r["delivered_per_s"]:
            net = "%.2f" % ((r["server_cpu_pct"] - base["server_cpu_pct"]) / 100 / (r["delivered_per_s"] / 1e6))
        per = "%.2f" % r["server_cpu_s_per_m_deliveries"] if r["subscribers"] else "(input alone)"
        print("| %s | %d | %.0f | %.0f | %d | %.1f | %s | %s | %.0f |" % (r["label"], r["subscribers"], r["input_per_s"],
              r["delivered_per_s"], r["gaps"], r["server_cpu_pct"], per, net, r["p99_us"]))
    def net(r):  # the server's CPU per M deliveries beyond what the input alone cost
        base = find(r["label"], r["select"], "flat", 0)
        return (r["server_cpu_pct"] - (base["server_cpu_pct"] if base else 0)) / 100 / (r["delivered_per_s"] / 1e6)
    for label in dict.fromkeys(r["label"] for r in flat):
        rows = sorted((r for r in flat if r["label"] == label and r["subscribers"] and r["delivered_per_s"]),
                      key=lambda r: r["subscribers"])
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            cpu_s = min(r["server_cpu_pct"] / 100 * r["seconds"] for r in (a, b))
            if cpu_s < 0.05:  # the process CPU clock counts ns, but a few ms are mostly noise
                print("- %s: %.3f CPU-seconds is too little to compare: raise FLAT_RATE or SECS" % (label, cpu_s))
                continue
            # The aim bounds growth: a server that scanned its subscribers per
            # frame would cost more per delivery with more of them. Less per
            # delivery with more subscribers is a writer woken once for many
            # sockets instead of once per frame (the wake-up amortised).
            x = b["server_cpu_s_per_m_deliveries"] / max(1e-9, a["server_cpu_s_per_m_deliveries"])
            y = net(b) / max(1e-9, net(a))
            held = all(r["input_per_s"] >= 0.95 * r["rate"] for r in (a, b))
            print("- %s: CPU per delivered frame with %d subscribers is %.2fx that with %d (aim at most 1.5x: %s); "
                  "with the input alone taken off: %.2fx%s" % (
                      label, b["subscribers"], x, a["subscribers"], "met" if x <= 1.5 else "NOT met", y,
                      "" if held else "; the input rate was NOT held (the server fell behind): compare with care"))
PY
