#include "generator_source.hpp"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <chrono>

namespace streamrelay {

namespace {
// A batch is at most as large as one read of a socket source (see the queue's
// bound in README): 4096 frames or 256 KiB, whichever comes first.
constexpr std::uint64_t kMaxFramesPerBatch = 4096;
constexpr std::uint64_t kMaxBytesPerBatch = 256 * 1024;
}

void GeneratorSource::appendFrame(FrameBatchBuilder& builder, std::uint64_t number, std::string& scratch) const {
  scratch = "frame " + std::to_string(number) + " at " +
            Poco::DateTimeFormatter::format(Poco::Timestamp(), Poco::DateTimeFormat::ISO8601_FRAC_FORMAT);
  scratch.resize(config_.size, '.');
  builder.add(scratch.data(), scratch.size());
}

void GeneratorSource::run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const std::uint64_t limit = config_.count == 0 ? UINT64_MAX : config_.count;
  FrameBatchBuilder builder;
  std::string scratch;
  std::uint64_t made = 0;
  const std::uint64_t perBatch =
      std::clamp<std::uint64_t>(kMaxBytesPerBatch / (config_.size + kWireHeaderBytes), 1, kMaxFramesPerBatch);
  counters_.connected = true;
  while (made < limit) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const auto due = std::min<std::uint64_t>(limit, static_cast<std::uint64_t>(elapsed * config_.rate) + 1);
    if (due > made) {
      const std::uint64_t upTo = std::min(due, made + perBatch);
      while (made < upTo) appendFrame(builder, ++made, scratch);
      bus_.publish(builder.seal(unixNowNs()));
      if (stop_.requested()) break;
      continue;
    }
    // Pacing, not synchronisation: wait for the next frame's time or a stop.
    const auto next = start + std::chrono::duration<double>(static_cast<double>(made) / config_.rate);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    if (stop_.waitFor(std::max(wait, std::chrono::milliseconds(1)))) break;
  }
  counters_.connected = false;
}

}  // namespace streamrelay
