// SPDX-License-Identifier: Apache-2.0
#pragma once
// LogLimiter: at most one log line per interval for an event that a remote
// peer can cause at will (a flood of refused connections must not flood the
// log); the events in between are counted and reported with the next line.
//
// Thread safe.

#include <chrono>
#include <cstdint>
#include <mutex>

namespace streamrelay {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval = std::chrono::seconds(1)) : interval_(interval) {}

  // True if this event may be logged now; `suppressed` is then the number of
  // events not logged since the previous line.
  bool allow(std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    if (logged_ && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    logged_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  bool logged_ = false;
  std::chrono::steady_clock::time_point last_;
  std::uint64_t suppressed_ = 0;
};

}  // namespace streamrelay
