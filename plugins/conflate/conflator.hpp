// SPDX-License-Identifier: Apache-2.0
#pragma once
// Conflator: for slow consumers such as dashboards, keeps only the newest
// frame per key (the value at a JSON pointer) and releases at most one frame
// per key per interval, keys in the order they first arrived. Memory is
// bounded by max_keys: a new key beyond it evicts the oldest key (counted).
//
// Not thread safe (one per instance, on its worker). Time is passed in, so
// that the logic is tested without clocks.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include <streamrelay/plugin.hpp>

#include "json/json_pointer.hpp"

namespace streamrelay::plugins {

struct ConflateConfig {
  std::string key;                            // a JSON pointer, e.g. /sym
  std::chrono::milliseconds interval{1000};   // at most one frame per key per interval
  std::size_t maxKeys = 10000;
};
// Its keys, and the reading: throws std::invalid_argument("config.KEY: what is wrong").
const ConfigKeys& conflateConfigKeys();
ConflateConfig parseConflateConfig(const std::string& yaml);

class Conflator {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Taken { Kept, Unparsable, NoKey };

  explicit Conflator(const ConflateConfig& config);
  // Keeps `payload` as its key's newest frame.
  Taken take(std::string_view payload);
  // Hands every key's pending frame whose interval has passed to `emit`, in
  // key order of arrival.
  void release(Clock::time_point now, const std::function<void(std::string_view)>& emit);

  std::size_t keys() const { return index_.size(); }
  std::uint64_t evicted() const { return evicted_; }

 private:
  struct Entry {
    std::string key;
    std::string latest;
    bool pending = false;
    Clock::time_point lastEmit{};  // epoch: never emitted
  };

  const ConflateConfig config_;
  const JsonPointer pointer_;
  std::list<Entry> entries_;  // in order of the keys' first arrival
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::uint64_t evicted_ = 0;
};

}  // namespace streamrelay::plugins
