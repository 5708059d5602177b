#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Out-of-tree plugin build: install the project into a fresh prefix, build
# sdk/examples/hello_plugin against that prefix alone with
# find_package(StreamRelaySDK), then run the installed relay with the result
# and wait (bounded) for the plugin's own log line.
#   out_of_tree_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d /tmp/streamrelay-sdk-test.XXXXXX)
relay_pid=
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/sdk/examples/hello_plugin" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
[ -f "$work/example/hello_plugin.so" ] || { echo "FAIL: hello_plugin.so was not built"; exit 1; }

mkdir -m 755 "$work/plugins"
cp "$work/example/hello_plugin.so" "$work/plugins/"
cat >"$work/relay.yaml" <<YAML
upstream: {type: generator, rate: 200}
plugins:
  directory: $work/plugins
  instances:
    - {name: hi, type: hello, config: {every: 10}}
YAML
"$work/prefix/bin/streamrelay" --config "$work/relay.yaml" 2>"$work/relay.log" &
relay_pid=$!
for _ in $(seq 100); do   # up to 10 s, polling the log
  grep -q "plugin hi: hello: 10 frames" "$work/relay.log" && break
  sleep 0.1
done
if ! grep -q "plugin hi: hello: 10 frames" "$work/relay.log"; then
  echo "FAIL: the installed relay did not run the out-of-tree plugin"; cat "$work/relay.log"; exit 1
fi
kill -TERM "$relay_pid"
wait "$relay_pid"
relay_pid=
echo "out-of-tree plugin built against $work/prefix and run by the installed relay"
