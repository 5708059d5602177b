// SPDX-License-Identifier: Apache-2.0
#pragma once
// A thread joined when it goes out of scope, a failed REQUIRE included: a
// test's reader thread never outlives what it reads. `stopping` is set
// first, so a reader that polls it (readToEnd) ends at once instead of
// reading a feed that still runs until the test's timeout.

#include <atomic>
#include <thread>

namespace streamrelay::test {

struct JoinedThread {
  std::atomic<bool> stopping{false};
  std::thread thread;
  ~JoinedThread() {
    stopping = true;
    if (thread.joinable()) thread.join();
  }
};

}  // namespace streamrelay::test
