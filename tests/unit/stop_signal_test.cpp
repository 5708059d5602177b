// SPDX-License-Identifier: Apache-2.0
#include "stop_signal.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

using namespace streamrelay;
using namespace std::chrono_literals;

// Defect: waitFor truncated what was left to whole milliseconds, so a wait
// of 1 ms became poll(0) and returned at once: the generator source, pacing
// itself with 1 ms waits, spun a core at 1,000 frames/s.
TEST_CASE("StopSignal: waitFor waits the whole timeout when no stop comes, however short", "[stop_signal]") {
  StopSignal stop;
  for (auto timeout : {1ms, 2ms, 15ms}) {
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(stop.waitFor(timeout));
    CHECK(std::chrono::steady_clock::now() - start >= timeout);
  }
}

TEST_CASE("StopSignal: a request ends a wait at once, and stays requested", "[stop_signal]") {
  StopSignal stop;
  std::thread requester([&] { stop.request(); });
  CHECK(stop.waitFor(60s));
  requester.join();
  CHECK(stop.requested());
  CHECK(stop.waitFor(0ms));
}
