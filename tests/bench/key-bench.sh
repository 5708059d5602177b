#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# key-bench.sh - frames/s of finding a frame's key (streams.NAME.key) on one
# core: simdjson On-Demand vs POCO's JSON DOM, PCRE vs POCO's
# RegularExpression vs std::regex, and the bytes rule, over 128-byte JSON
# frames. Prints a Markdown table. Needs libsimdjson-dev and libpcre3-dev.
#
#   tests/bench/key-bench.sh
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOL=$ROOT/build/key_extraction_bench
mkdir -p "$ROOT/build"
g++ -O2 -std=c++17 -I"$ROOT/core/streams" -o "$TOOL" "$ROOT/tests/bench/key_extraction_bench.cpp" \
  "$ROOT/core/streams/key_extractor.cpp" "$ROOT/core/streams/frame_batch.cpp" \
  -lsimdjson -lpcre -lPocoJSON -lPocoFoundation
"$TOOL"
