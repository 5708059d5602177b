#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tree-bench.sh - a two-level relay tree on loopback, one run per mode:
#   mirror: the middle follows the root with a `streamrelay` source (mirror: true)
#           on the root's streamrelay listener;
#   raw:    the middle's `tcp` source reads the root's `raw` listener (renumbers).
# The root's `listen` source gets FRAMES frames of SIZE bytes as fast as
# streamrelay-feed sends them; SUBS raw subscribers of the middle read them
# all. Prints, per mode: frames/s end to end (feed start to the last
# subscriber's last frame) and the CPU seconds of the root and of the middle.
#
#   tests/bench/tree-bench.sh                     # FRAMES=1000000 SIZE=128 SUBS=4
#   FRAMES=200000 SUBS=16 tests/bench/tree-bench.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RELAY=${RELAY:-$ROOT/build/core/streamrelay}
FEED=$ROOT/build/tools/streamrelay-feed
SUB=$ROOT/build/tools/streamrelay-sub
FRAMES=${FRAMES:-1000000}
SIZE=${SIZE:-128}
SUBS=${SUBS:-4}
BASE=${BASE_PORT:-17800}
DIR=$(mktemp -d /tmp/tree-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT

cpu_s() {  # utime + stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

wait_line() {  # FILE REGEX: waits (10 s at most) for a line of a log
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}

run() {
  local mode=$1 pub=$BASE sr=$((BASE + 1)) raw=$((BASE + 2)) mid=$((BASE + 3))
  cat >"$DIR/root.yaml" <<YAML
upstream: {type: listen, bind: "127.0.0.1:$pub"}
listeners:
  - {name: sr, bind: "127.0.0.1:$sr", protocol: streamrelay, queue: {on_full: block}}
  - {name: raw, bind: "127.0.0.1:$raw", queue: {on_full: block}}
YAML
  local source="{type: tcp, host: 127.0.0.1, port: $raw}"
  [ "$mode" = mirror ] && source="{type: streamrelay, endpoints: [\"127.0.0.1:$sr\"]}"
  cat >"$DIR/mid.yaml" <<YAML
upstream: $source
listeners:
  - {name: out, bind: "127.0.0.1:$mid", queue: {on_full: block}}
YAML
  "$RELAY" --config "$DIR/root.yaml" >"$DIR/root-$mode.log" 2>&1 & local rootPid=$!
  wait_line "$DIR/root-$mode.log" "relay started" || return 1
  "$RELAY" --config "$DIR/mid.yaml" >"$DIR/mid-$mode.log" 2>&1 & local midPid=$!
  wait_line "$DIR/mid-$mode.log" "connected" || return 1
  local subs=()
  for i in $(seq 1 "$SUBS"); do
    "$SUB" "127.0.0.1:$mid" --format raw --count "$FRAMES" >/dev/null 2>"$DIR/sub$i.log" & subs+=($!)
  done
  for _ in $(seq 1 200); do
    [ "$(grep -c 'subscriber .* connected' "$DIR/mid-$mode.log")" -ge "$SUBS" ] && break; sleep 0.05
  done
  local rootCpu0 midCpu0 start end
  rootCpu0=$(cpu_s $rootPid); midCpu0=$(cpu_s $midPid)
  start=$(date +%s.%N)
  "$FEED" --connect "127.0.0.1:$pub" --generate --rate 0 --size "$SIZE" --count "$FRAMES" >/dev/null 2>&1
  for p in "${subs[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  local rootCpu midCpu
  rootCpu=$(awk -v a="$(cpu_s $rootPid)" -v b="$rootCpu0" 'BEGIN{printf "%.2f", a - b}')
  midCpu=$(awk -v a="$(cpu_s $midPid)" -v b="$midCpu0" 'BEGIN{printf "%.2f", a - b}')
  awk -v m="$mode" -v n="$FRAMES" -v s="$start" -v e="$end" -v rc="$rootCpu" -v mc="$midCpu" \
    'BEGIN{printf "| %s | %d | %.0f | %.2f | %s | %s |\n", m, n, n / (e - s), e - s, rc, mc}'
  kill "$midPid" "$rootPid"; wait "$midPid" "$rootPid" 2>/dev/null
}

echo "| tree | frames | frames/s | seconds | root CPU s | middle CPU s |"
echo "|---|---|---|---|---|---|"
run raw
run mirror
