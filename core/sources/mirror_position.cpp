// SPDX-License-Identifier: Apache-2.0
#include "mirror_position.hpp"

#include <Poco/Logger.h>

#include "upstream_source.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }

}  // namespace

MirrorPosition::MirrorPosition(SourceCounters& counters, std::string label, std::string writer)
    : counters_(counters), label_(std::move(label)), writer_(std::move(writer)) {}

bool MirrorPosition::take(std::uint64_t epoch, std::uint64_t seq) {
  if (epoch == epoch_ && seq <= seq_) return false;
  if (epoch == epoch_ && seq > seq_ + 1) {
    counters_.gaps.fetch_add(1, std::memory_order_relaxed);
    counters_.framesMissed.fetch_add(seq - seq_ - 1, std::memory_order_relaxed);
    logger().warning("%s: a gap in %s stream: frames %s..%s never came", label_, writer_, std::to_string(seq_ + 1),
                     std::to_string(seq - 1));
  } else if (epoch_ != 0 && epoch != epoch_) {
    counters_.newEpochs.fetch_add(1, std::memory_order_relaxed);
    logger().warning("%s: %s stream has another epoch (%s, was %s): it numbers from seq %s anew", label_, writer_,
                     std::to_string(epoch), std::to_string(epoch_), std::to_string(seq));
  }
  epoch_ = epoch;
  seq_ = seq;
  return true;
}

}  // namespace streamrelay
