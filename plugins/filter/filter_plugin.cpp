// SPDX-License-Identifier: Apache-2.0
// filter: a processor. It reads its inputs and emits, on the stream named
// after its instance, the frames that pass its test (see frame_filter.hpp).
// Counters: passed, dropped, unparsable (a JSON test on a frame that is not
// JSON: dropped, counted, never a failure).
#include <streamrelay/plugin.hpp>

#include "frame_filter.hpp"

namespace {

class FilterPlugin : public streamrelay::Plugin {
 public:
  FilterPlugin(streamrelay::Host& host, const std::string& configYaml) : host_(host), filter_(configYaml) {
    host_.requireEmit();
  }

  void onFrame(const streamrelay::Frame& frame) override {
    switch (filter_.test(frame.data)) {
      case streamrelay::plugins::FrameFilter::Verdict::Keep:
        host_.emit(frame.data);
        host_.addCounter("passed", 1);
        break;
      case streamrelay::plugins::FrameFilter::Verdict::Drop:
        host_.addCounter("dropped", 1);
        break;
      case streamrelay::plugins::FrameFilter::Verdict::Unparsable:
        host_.addCounter("unparsable", 1);
        break;
    }
  }

 private:
  streamrelay::Host& host_;
  streamrelay::plugins::FrameFilter filter_;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(FilterPlugin, "filter", "keeps the frames that pass a test (contains, regex, JSON field)",
                                    0, streamrelay::plugins::filterConfigKeys())
