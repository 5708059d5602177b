#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang and runs each for SECONDS (default
# 60) from its seed corpus. CI runs the 60-second smoke; a longer run:
#   tests/fuzz/run.sh 3600
# New inputs go to build-fuzz/corpus/TARGET (the seeds in the tree stay as they
# are); a crash leaves crash-* in build-fuzz/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
targets=(fuzz_decoder fuzz_delimiter_roundtrip fuzz_config fuzz_hello fuzz_jwt_claims fuzz_http_response fuzz_http_request fuzz_websocket_frames fuzz_key_extractor fuzz_log_segment)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTREAMRELAY_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
for target in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$target
  mkdir -p "$corpus"
  echo "== $target: ${seconds}s"
  # -malloc_limit_mb: one allocation larger than this is a finding (a length
  # prefix believed); -rss_limit_mb: memory must stay bounded.
  log=build-fuzz/$target.log
  if ! (cd build-fuzz && "./tests/fuzz/$target" -max_total_time="$seconds" -malloc_limit_mb=128 -rss_limit_mb=1024 \
          -print_final_stats=1 "corpus/$target" "../tests/fuzz/corpus/$target" >"$target.log" 2>&1); then
    tail -n 40 "$log"
    echo "$target: finding, see build-fuzz/crash-* and $log"
    exit 1
  fi
  grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || tail -n 5 "$log"
done
echo "fuzz: every target ran ${seconds}s without a finding"
