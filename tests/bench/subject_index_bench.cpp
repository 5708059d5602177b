// SPDX-License-Identifier: Apache-2.0
// subject_index_bench: what SubjectIndex::forEachMatch costs per frame key, and
// that it grows with the subscribers a key goes to, not with all of them.
//
//   g++ -O2 -std=c++17 -Icore/streams -o build/subject_index_bench \
//       tests/bench/subject_index_bench.cpp core/streams/subject.cpp
//   build/subject_index_bench [SUBSCRIBERS] [SYMBOLS]     (defaults 10000 1000)
//
// Each subscriber selects one literal key "md.l2.SYMn"; every 100th also
// "md.*.SYMn" and every 1000th "md.>". Prints ns per forEachMatch over keys
// cycling through the symbols, and the matches per key.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "subject_index.hpp"

int main(int argc, char** argv) {
  int subscribers = argc > 1 ? std::atoi(argv[1]) : 10000;
  int symbols = argc > 2 ? std::atoi(argv[2]) : 1000;
  streamrelay::SubjectIndex<int> index;
  for (int i = 0; i < subscribers; ++i) {
    std::string symbol = "SYM" + std::to_string(i % symbols);
    index.add("md.l2." + symbol, i);
    if (i % 100 == 0) index.add("md.*." + symbol, i);
    if (i % 1000 == 0) index.add("md.>", i);
  }
  std::vector<std::string> keys;
  for (int s = 0; s < symbols; ++s) keys.push_back("md.l2.SYM" + std::to_string(s));

  const int rounds = 2000000;
  long long matched = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) {
    index.forEachMatch(keys[static_cast<std::size_t>(i % symbols)], [&](const int&) { ++matched; });
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d subscribers, %d symbols, %zu entries: %.1f ns per key, %.1f matches per key\n", subscribers,
              symbols, index.size(), static_cast<double>(ns) / rounds, static_cast<double>(matched) / rounds);
  return 0;
}
