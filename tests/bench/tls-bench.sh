#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tls-bench.sh - TLS fan-out side by side: streamrelay (a raw listener with
# tls), nats-server (TLS on its client port) and redis-server (tls-port), all
# from this machine, driven by tests/bench/tls_fanout_bench.cpp (the shared
# harness speaks plain TCP only). Also the plaintext relay on the same tool,
# for the "TLS costs" column. Certificates are made with openssl at start.
# Prints a Markdown table; JSON lines go to RESULTS.
#
#   tests/bench/tls-bench.sh                       # 16 subscribers, 128 B and 4 KiB, 3 runs each, about 8 minutes
#   SUBS=1000 SIZES=128 TARGETS="relay" tests/bench/tls-bench.sh   # the 1000-subscriber run (peak RSS)
#
# Knobs: SECS [5], RUNS [3] (the table shows each cell's median run; the
# machine's run-to-run noise is 15-30%), SUBS ["16"], SIZES ["128 4096"],
# TARGETS ["relay relay-plain nats redis"],
# RELAY [build/core/streamrelay], RESULTS [build/tls-bench-<time>.jsonl].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
SUBS=${SUBS:-"16"}
SIZES=${SIZES:-"128 4096"}
TARGETS=${TARGETS:-"relay relay-plain nats redis"}
RESULTS=${RESULTS:-$ROOT/build/tls-bench-$(date -u +%Y%m%d-%H%M%S).jsonl}
TOOL=$ROOT/build/tests/bench/tls_fanout_bench
WORK=$(mktemp -d /tmp/streamrelay-tls-bench.XXXXXX)
UP_PORT=17101 SUB_PORT=17100 NATS_PORT=17102 REDIS_PORT=17103 REDIS_TLS_PORT=17104

if [ ! -x "$RELAY" ] || [ ! -x "$TOOL" ]; then echo "build the relay and the bench tools first: bash .ci/build" >&2; exit 1; fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
: >"$RESULTS"
echo "results: $RESULTS   work: $WORK" >&2

# A CA and a server certificate for 127.0.0.1, as a user would make them (docs/subscribers.md).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
  -extfile "$WORK/ext" -out "$WORK/server.pem" 2>/dev/null

relay_config() {  # relay_config tls|plain -> path; the shipped listener defaults
  local tls=""
  [ "$1" = tls ] && tls="    tls: {enabled: true, cert_file: $WORK/server.pem, key_file: $WORK/server.key}"
  cat >"$WORK/relay-$1.yaml" <<YAML
upstream: {type: tcp, host: 127.0.0.1, port: $UP_PORT, reconnect: {initial_delay_ms: 20, max_delay_ms: 200}}
listeners:
  - name: bench
    bind: "127.0.0.1:$SUB_PORT"
    max_clients: 2000
$tls
log: {level: warning}
YAML
  echo "$WORK/relay-$1.yaml"
}

cat >"$WORK/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
tls { cert_file: "$WORK/server.pem", key_file: "$WORK/server.key" }
CONF

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null; }

run_cell() {  # run_cell TARGET SUBS SIZE
  local target=$1 subs=$2 size=$3 pid="" line rss=""
  local args=(--subs "$subs" --size "$size" --seconds "$SECS" --label "$target")
  case $target in
    relay|relay-plain)
      local mode=tls; [ "$target" = relay-plain ] && mode=plain && args+=(--plain)
      "$TOOL" --target relay --upstream-listen 127.0.0.1:$UP_PORT --subscribe 127.0.0.1:$SUB_PORT \
        --ca "$WORK/ca.pem" "${args[@]}" >"$WORK/out" 2>"$WORK/err" &
      local bench=$!
      "$RELAY" --config "$(relay_config $mode)" 2>"$WORK/relay.log" &
      pid=$!
      wait $bench
      rss=$(peak_rss_mb $pid)
      ;;
    nats)
      nats-server -c "$WORK/nats.conf" 2>"$WORK/nats.log" &
      pid=$!
      "$TOOL" --target nats --subscribe 127.0.0.1:$NATS_PORT --ca "$WORK/ca.pem" "${args[@]}" >"$WORK/out" 2>"$WORK/err"
      rss=$(peak_rss_mb $pid)
      ;;
    redis)
      redis-server --port $REDIS_PORT --tls-port $REDIS_TLS_PORT --tls-cert-file "$WORK/server.pem" \
        --tls-key-file "$WORK/server.key" --tls-ca-cert-file "$WORK/ca.pem" --tls-auth-clients no \
        --save "" --appendonly no --bind 127.0.0.1 >"$WORK/redis.log" 2>&1 &
      pid=$!
      "$TOOL" --target redis --publish 127.0.0.1:$REDIS_PORT --subscribe 127.0.0.1:$REDIS_TLS_PORT \
        --ca "$WORK/ca.pem" "${args[@]}" >"$WORK/out" 2>"$WORK/err"
      rss=$(peak_rss_mb $pid)
      ;;
  esac
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
rows = []
for key in sorted(cells, key=lambda k: (k[0], k[1])):
    ordered = sorted(cells[key], key=lambda r: r["published_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["gaps"] = sum(r["gaps"] for r in ordered)
    median["runs"] = ", ".join("%.0f" % r["published_per_s"] for r in cells[key])
    rows.append(median)
print("| subscribers | size | target | frames/s (median) | deliveries/s | slowest subscriber f/s | gaps | server peak RSS MB | every run, frames/s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %d | %d | %s%s | %.0f | %.0f | %.0f | %d | %d | %s |" % (r["subscribers"], r["size"], r["label"],
          "" if r["tls"] else " (no TLS)", r["published_per_s"], r["delivered_per_s"], r["slowest_per_s"],
          r["gaps"], r["server_peak_rss_mb"], r["runs"]))
PY
