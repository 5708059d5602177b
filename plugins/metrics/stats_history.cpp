// SPDX-License-Identifier: Apache-2.0
#include "stats_history.hpp"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

namespace streamrelay::plugins {

void StatsHistory::record(std::int64_t unixMs, const std::string& statsJson) {
  Poco::JSON::Parser parser;
  Poco::JSON::Object::Ptr stats = parser.parse(statsJson).extract<Poco::JSON::Object::Ptr>();
  samples_.push_back({unixMs, stats->getValue<std::uint64_t>("frames_received"),
                      stats->getValue<std::uint64_t>("bytes_received")});
  while (samples_.size() > capacity_) samples_.pop_front();
}

std::string StatsHistory::json(std::int64_t intervalMs, std::int64_t afterUnixMs) const {
  std::string out = "{\"interval_ms\":" + std::to_string(intervalMs) + ",\"samples\":[";
  bool first = true;
  for (const Sample& s : samples_) {
    if (s.unixMs <= afterUnixMs) continue;
    out += first ? "[" : ",[";
    out += std::to_string(s.unixMs) + "," + std::to_string(s.frames) + "," + std::to_string(s.bytes) + "]";
    first = false;
  }
  return out + "]}";
}

}  // namespace streamrelay::plugins
