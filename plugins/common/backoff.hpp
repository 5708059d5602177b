// SPDX-License-Identifier: Apache-2.0
#pragma once
// waitBackoff: the pause between two retries of a failing database or
// server, cut short once the host stops the instance, so that a plugin in
// its backoff never holds up a shutdown, a replace or a removal (the host
// abandons an instance that does not stop in time). Header-only.

#include <streamrelay/plugin.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

namespace streamrelay::plugins {

// Waits `delay`, or less once host.stopping(). Backoff, not synchronisation:
// the stop flag is looked at every 50 ms.
inline void waitBackoff(const streamrelay::Host& host, std::chrono::milliseconds delay) {
  constexpr std::chrono::milliseconds kLook(50);
  const auto end = std::chrono::steady_clock::now() + delay;
  for (auto now = std::chrono::steady_clock::now(); now < end && !host.stopping(); now = std::chrono::steady_clock::now())
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kLook, end - now));
}

}  // namespace streamrelay::plugins
