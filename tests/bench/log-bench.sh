#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# log-bench.sh - frames/s that a stream's log (streams.NAME.log) appends on
# the disk of DIR with each fsync policy (never, every_ms: 100, always), one
# frame per write and 100 per write (the writer thread writes everything
# queued at once: under load its writes hold many frames). Prints a
# Markdown table. What `always` costs is the disk's fdatasync latency.
#
#   tests/bench/log-bench.sh [DIR] [SECONDS] [FRAME_BYTES]
#   (DIR defaults to build/log-bench: the disk the build is on)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOL=$ROOT/build/log_append_bench
mkdir -p "$ROOT/build"
g++ -O2 -std=c++17 -I"$ROOT/core/log" -I"$ROOT/core/streams" -I"$ROOT/core" -o "$TOOL" \
  "$ROOT/tests/bench/log_append_bench.cpp" "$ROOT/core/log/crc32.cpp" "$ROOT/core/log/log_format.cpp" "$ROOT/core/log/log_retention.cpp" \
  "$ROOT/core/log/record_cursor.cpp" "$ROOT/core/log/segment_scan.cpp" "$ROOT/core/log/seq_reservation.cpp" "$ROOT/core/log/log_syncer.cpp" "$ROOT/core/log/stream_log.cpp" \
  "$ROOT/core/streams/frame_batch.cpp" -lPocoFoundation -lz -pthread
"$TOOL" "${1:-$ROOT/build/log-bench}" "${2:-3}" "${3:-128}"
