// SPDX-License-Identifier: Apache-2.0
#include "generator_source.hpp"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <chrono>

#include "keys.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

GeneratorSource::GeneratorSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      rate_(config.settings.number("rate")),
      size_(static_cast<std::size_t>(config.settings.integer("size"))),
      count_(static_cast<std::uint64_t>(config.settings.integer("count"))) {}

namespace {
// A batch is at most as large as one read of a socket source (see the queue's
// bound in docs/configuring.md): 4096 frames or 256 KiB, whichever comes first.
constexpr std::uint64_t kMaxFramesPerBatch = 4096;
constexpr std::uint64_t kMaxBytesPerBatch = 256 * 1024;
}

void GeneratorSource::appendFrame(FrameBatchBuilder& builder, std::uint64_t number, std::string& scratch) const {
  scratch = "frame " + std::to_string(number) + " at " +
            Poco::DateTimeFormatter::format(Poco::Timestamp(), Poco::DateTimeFormat::ISO8601_FRAC_FORMAT);
  scratch.resize(size_, '.');
  builder.add(scratch.data(), scratch.size());
}

void GeneratorSource::run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const std::uint64_t limit = count_ == 0 ? UINT64_MAX : count_;
  FrameBatchBuilder builder;
  std::string scratch;
  std::uint64_t made = 0;
  const std::uint64_t perBatch =
      std::clamp<std::uint64_t>(kMaxBytesPerBatch / (size_ + kWireHeaderBytes), 1, kMaxFramesPerBatch);
  counters_.connected = true;
  while (made < limit) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const auto due = std::min<std::uint64_t>(limit, static_cast<std::uint64_t>(elapsed * rate_) + 1);
    if (due > made) {
      const std::uint64_t upTo = std::min(due, made + perBatch);
      while (made < upTo) appendFrame(builder, ++made, scratch);
      bus_.publish(builder.seal(unixNowNs()));
      if (stop_.requested()) break;
      continue;
    }
    // Pacing, not synchronisation: wait for the next frame's time or a stop.
    const auto next = start + std::chrono::duration<double>(static_cast<double>(made) / rate_);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    if (stop_.waitFor(std::max(wait, std::chrono::milliseconds(1)))) break;
  }
  counters_.connected = false;
}


SourceType generator_source_type() {
  return {{"generator",
           "makes frames itself (works out of the box; load tests)",
           {key("rate", KeyKind::Number).def("5").range(0.001, 10e6).doc("frames per second"),
            key("size", KeyKind::Int).def("64").range(1, kMaxFrameBytesLimit).doc("payload bytes"),
            key("count", KeyKind::Int).def("0").range(0, 1LL << 62).doc("frames in all (0: endless)"),
            groupKey("framing", framingSchema())},
           [](const Settings& s, const YamlMap& m) {
             if (s.integer("size") > s.group("framing").integer("max_frame_bytes"))
               m.fail("size", "is larger than framing.max_frame_bytes");
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<GeneratorSource>(config, bus); }};
}
}  // namespace streamrelay
