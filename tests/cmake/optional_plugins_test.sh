#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The optional plugins are optional: configures the project in scratch build
# directories where pkg-config finds neither hiredis, libnats nor LuaJIT, and checks
#  - AUTO (the default): configures, with one line per skipped plugin saying why;
#  - ON: fails, naming the library and the package to install;
#  - OFF: skipped without looking, one line saying so.
# Configure only (no build): a few seconds.
#   optional_plugins_test.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d /tmp/streamrelay-optional.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/no-pkgconfig"
configure() {  # NAME ARGS...: configures into $work/NAME, output in $work/NAME.out; returns cmake's status
  local name=$1
  shift
  PKG_CONFIG_LIBDIR="$work/no-pkgconfig" PKG_CONFIG_PATH="" \
    cmake -S "$src" -B "$work/$name" -DBUILD_TESTING=ON "$@" >"$work/$name.out" 2>&1
}
fail() { echo "FAILED: $*"; cat "$work/$1.out"; exit 1; }

configure auto || fail auto "AUTO without the libraries does not configure"
[ "$(grep -c 'plugin skipped' "$work/auto.out")" -eq 3 ] || fail auto "not one line per skipped plugin"
grep -qx -- '-- redis plugin skipped: hiredis not found (install libhiredis-dev to build it)' "$work/auto.out" || fail auto "no line for redis"
grep -qx -- '-- nats plugin skipped: libnats not found (install libnats-dev to build it)' "$work/auto.out" || fail auto "no line for nats"
grep -qx -- '-- lua plugin skipped: luajit not found (install libluajit-5.1-dev to build it)' "$work/auto.out" || fail auto "no line for lua"
grep -q 'redis_sink_test\|nats_sink_test\|lua_processor_test' "$work/auto/tests/CMakeFiles/integration_tests.dir/build.make" 2>/dev/null &&
  fail auto "the integration tests still build the skipped plugins' tests"
echo "ok: AUTO without hiredis, libnats and LuaJIT configures; one line per skipped plugin"

if configure on -DSTREAMRELAY_PLUGIN_REDIS=ON; then fail on "ON without hiredis configured"; fi
grep -q 'redis plugin: hiredis not found (STREAMRELAY_PLUGIN_REDIS=ON); install' "$work/on.out" || fail on "no error naming hiredis"
echo "ok: ON without hiredis fails, naming it"

configure off -DSTREAMRELAY_PLUGIN_REDIS=OFF -DSTREAMRELAY_PLUGIN_NATS=OFF || fail off "OFF does not configure"
grep -qx -- '-- redis plugin skipped: STREAMRELAY_PLUGIN_REDIS=OFF' "$work/off.out" || fail off "no line for redis"
echo "ok: OFF skips without looking"
