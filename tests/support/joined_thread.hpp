// SPDX-License-Identifier: Apache-2.0
#pragma once
// A thread joined when it goes out of scope, a failed REQUIRE included: a
// test's reader thread never outlives what it reads.

#include <thread>

namespace streamrelay::test {

struct JoinedThread {
  std::thread thread;
  ~JoinedThread() {
    if (thread.joinable()) thread.join();
  }
};

}  // namespace streamrelay::test
