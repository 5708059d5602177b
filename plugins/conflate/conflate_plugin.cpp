// SPDX-License-Identifier: Apache-2.0
// conflate: a processor for slow dashboards. Per key (a JSON pointer), only
// the newest frame is kept, and at most one per key per interval_ms is
// emitted on the stream named after the instance (see conflator.hpp).
// Counters: kept, emitted, unparsable, no_key, evicted; gauge: keys.
#include <streamrelay/plugin.hpp>

#include "conflate/conflator.hpp"

namespace {

using streamrelay::plugins::Conflator;

class ConflatePlugin : public streamrelay::Plugin {
 public:
  ConflatePlugin(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), conflator_(streamrelay::plugins::parseConflateConfig(configYaml)) {
    host_.requireEmit();
  }

  void onFrame(const streamrelay::Frame& frame) override {
    switch (conflator_.take(frame.data)) {
      case Conflator::Taken::Kept: host_.addCounter("kept", 1); break;
      case Conflator::Taken::Unparsable: host_.addCounter("unparsable", 1); break;
      case Conflator::Taken::NoKey: host_.addCounter("no_key", 1); break;
    }
  }

  // Called after each drain and about every 100 ms while idle: the release
  // clock (so an interval is honoured to about 100 ms).
  void flush() override {
    std::uint64_t emitted = 0;
    conflator_.release(Conflator::Clock::now(), [&](std::string_view payload) {
      host_.emit(payload);
      ++emitted;
    });
    if (emitted) host_.addCounter("emitted", emitted);
    if (conflator_.evicted() > reportedEvictions_) {
      host_.addCounter("evicted", conflator_.evicted() - reportedEvictions_);
      reportedEvictions_ = conflator_.evicted();
    }
    host_.setGauge("keys", static_cast<double>(conflator_.keys()));
  }

 private:
  streamrelay::Host& host_;
  Conflator conflator_;
  std::uint64_t reportedEvictions_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(ConflatePlugin, "conflate", "keeps the newest frame per key, at most one per key per interval",
                                    0, streamrelay::plugins::conflateConfigKeys())
