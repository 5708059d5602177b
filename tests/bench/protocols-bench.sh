#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# protocols-bench.sh - fan-out to WebSocket and Server-Sent Events subscribers
# side by side, all on this machine, driven by tests/bench/web_fanout_bench.cpp:
#   relay-ws   streamrelay's websocket listener (envelope none, binary)
#   nats-ws    nats-server's websocket listener (the NATS protocol inside it)
#   nchan-ws   nginx with nchan, a websocket subscriber (publisher: a websocket)
#   relay-sse  streamrelay's sse listener (encoding text)
#   nchan-sse  nginx with nchan, an EventSource subscriber
#   relay-raw  streamrelay's raw listener on the same tool (the yardstick the
#              websocket listener is held to)
#   relay-streamrelay  its streamrelay listener (not in TARGETS by default:
#              for before/after runs of a change, with RELAY=another build)
# Every server with its shipped defaults except the client limits. Prints a
# Markdown table; JSON lines go to RESULTS.
#
#   tests/bench/protocols-bench.sh                        # 1000 subscribers, 128 B and 4 KiB, 3 runs each
#   RUNS=1 SECS=3 SUBS=100 SIZES=128 tests/bench/protocols-bench.sh   # a quick look
#
# Needs nats-server and nginx with libnginx-mod-nchan (.ci/install-deps bench).
# Knobs: SECS [5], RUNS [3] (the table shows each cell's median run), SUBS
# ["1000"], SIZES ["128 4096"], TARGETS [all six above], RELAY
# [build/core/streamrelay], RESULTS [build/protocols-bench-<time>.jsonl].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
SUBS=${SUBS:-"1000"}
SIZES=${SIZES:-"128 4096"}
TARGETS=${TARGETS:-"relay-raw relay-ws nats-ws nchan-ws relay-sse nchan-sse"}
RESULTS=${RESULTS:-$ROOT/build/protocols-bench-$(date -u +%Y%m%d-%H%M%S).jsonl}
TOOL=$ROOT/build/tests/bench/web_fanout_bench
WORK=$(mktemp -d /tmp/streamrelay-protocols-bench.XXXXXX)
UP_PORT=17201 SUB_PORT=17200 NATS_PORT=17202 NATS_WS_PORT=17203 NGINX_PORT=17204

if [ ! -x "$RELAY" ] || [ ! -x "$TOOL" ]; then echo "build the relay and the bench tools first: bash .ci/build" >&2; exit 1; fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
: >"$RESULTS"
trap 'rm -rf "$WORK"' EXIT
echo "results: $RESULTS   work: $WORK" >&2

relay_config() {  # relay_config PROTOCOL -> path; the shipped listener defaults but max_clients
  cat >"$WORK/relay-$1.yaml" <<YAML
upstream: {type: tcp, host: 127.0.0.1, port: $UP_PORT, reconnect: {initial_delay_ms: 20, max_delay_ms: 200}}
listeners:
  - {name: bench, bind: "127.0.0.1:$SUB_PORT", protocol: $1, max_clients: 2000}
log: {level: warning}
YAML
  echo "$WORK/relay-$1.yaml"
}

cat >"$WORK/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
websocket { listen: "127.0.0.1:$NATS_WS_PORT", no_tls: true }
CONF

# nginx as packaged (workers: one per core), nchan's channel "bench".
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /pub/bench { nchan_publisher websocket http; nchan_channel_id bench; }
    location = /sub/bench { nchan_subscriber websocket eventsource; nchan_channel_id bench; }
  }
}
CONF

peak_rss_mb() {  # the process and its children (nginx's workers)
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo $((total / 1024))
}

run_cell() {  # run_cell TARGET SUBS SIZE
  local target=$1 subs=$2 size=$3 pid="" line rss="" bench
  local args=(--target "$target" --subs "$subs" --size "$size" --seconds "$SECS")
  case $target in
    relay-*)
      local protocol=raw path=/
      [ "$target" = relay-ws ] && protocol=websocket && path="/?inputs=upstream"
      [ "$target" = relay-sse ] && protocol=sse
      [ "$target" = relay-streamrelay ] && protocol=streamrelay
      "$TOOL" "${args[@]}" --upstream-listen 127.0.0.1:$UP_PORT --subscribe 127.0.0.1:$SUB_PORT --path "$path" \
        --pid-file "$WORK/relay.pid" >"$WORK/out" 2>"$WORK/err" &
      bench=$!
      "$RELAY" --config "$(relay_config $protocol)" 2>"$WORK/relay.log" &
      pid=$!
      echo $pid >"$WORK/relay.pid"
      wait $bench
      ;;
    nats-ws)
      nats-server -c "$WORK/nats.conf" 2>"$WORK/nats.log" &
      pid=$!
      "$TOOL" "${args[@]}" --publish 127.0.0.1:$NATS_PORT --subscribe 127.0.0.1:$NATS_WS_PORT --path / --pid $pid \
        >"$WORK/out" 2>"$WORK/err"
      ;;
    nchan-*)
      nginx -c "$WORK/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.log" &
      pid=$!
      "$TOOL" "${args[@]}" --publish 127.0.0.1:$NGINX_PORT --pub-path /pub/bench \
        --subscribe 127.0.0.1:$NGINX_PORT --path /sub/bench --pid $pid >"$WORK/out" 2>"$WORK/err"
      ;;
  esac
  rss=$(peak_rss_mb $pid)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  line=$(cat "$WORK/out")
  if [ -z "$line" ]; then
    echo "$target $subs x $size: failed: $(cat "$WORK/err")" >&2
    return
  fi
  echo "${line%\}},\"server_peak_rss_mb\":${rss:-0}}" | tee -a "$RESULTS" >&2
}

for subs in $SUBS; do
  for size in $SIZES; do
    for run in $(seq "$RUNS"); do
      for target in $TARGETS; do run_cell "$target" "$subs" "$size"; done  # interleaved: noise hits all alike
    done
  done
done

/usr/bin/python3 - "$RESULTS" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in runs:
    cells.setdefault((r["subscribers"], r["size"], r["label"]), []).append(r)
medians = {}
for key, rs in cells.items():
    ordered = sorted(rs, key=lambda r: r["published_per_s"])
    m = dict(ordered[len(ordered) // 2])
    m["gaps"] = sum(r["gaps"] for r in ordered)
    m["runs"] = ", ".join("%.0f" % r["published_per_s"] for r in rs)
    medians[key] = m
rival = {"relay-ws": ["nats-ws", "nchan-ws"], "relay-sse": ["nchan-sse"]}
print("| subscribers | size B | target | frames/s (median) | deliveries/s | slowest subscriber f/s | gaps | server CPU % | server peak RSS MB | vs | every run, frames/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(medians, key=lambda k: (k[0], k[1])):
    r = medians[key]
    notes = []
    for other in rival.get(r["label"], []):
        o = medians.get((key[0], key[1], other))
        if o and o["published_per_s"]:
            notes.append("%.1fx %s" % (r["published_per_s"] / o["published_per_s"], other))
    raw = medians.get((key[0], key[1], "relay-raw"))
    if r["label"] == "relay-ws" and raw and raw["published_per_s"]:
        notes.append("%.0f%% of relay-raw" % (100 * r["published_per_s"] / raw["published_per_s"]))
    print("| %d | %d | %s | %.0f | %.0f | %.0f | %d | %.0f | %d | %s | %s |" % (
        r["subscribers"], r["size"], r["label"], r["published_per_s"], r["delivered_per_s"], r["slowest_per_s"],
        r["gaps"], r["server_cpu_pct"], r["server_peak_rss_mb"], "; ".join(notes), r["runs"]))
PY
