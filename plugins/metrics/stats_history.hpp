// SPDX-License-Identifier: Apache-2.0
#pragma once
// StatsHistory: the relay's totals sampled at a fixed interval, the newest
// `capacity` kept (a ring: 300 at 1 s is five minutes), so that the status
// page's charts show the recent past the moment it opens.
//
// Not thread safe: the metrics plugin's HTTP server thread samples it and
// serves it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace streamrelay::plugins {

class StatsHistory {
 public:
  explicit StatsHistory(std::size_t capacity) : capacity_(capacity) {}

  // Records the totals of `statsJson` (the relay's stats) as of `unixMs`.
  // Throws Poco::Exception if it is not the relay's stats document.
  void record(std::int64_t unixMs, const std::string& statsJson);
  // {"interval_ms": I, "samples": [[unix_ms, frames_received, bytes_received], ...]},
  // oldest first; only the samples taken after `afterUnixMs`.
  std::string json(std::int64_t intervalMs, std::int64_t afterUnixMs = -1) const;
  std::size_t size() const { return samples_.size(); }

 private:
  struct Sample {
    std::int64_t unixMs;
    std::uint64_t frames, bytes;
  };
  const std::size_t capacity_;
  std::deque<Sample> samples_;
};

}  // namespace streamrelay::plugins
