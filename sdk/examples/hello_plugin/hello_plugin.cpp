// SPDX-License-Identifier: Apache-2.0
// hello_plugin: the smallest useful streamrelay plugin. It counts frames and
// bytes and logs a line every `every` frames.
//
// Config (its instance's `config:` in the relay's YAML): {every: 1000}
// The config arrives as YAML text; this plugin only needs one integer, so it
// reads it by hand: a plugin with more options would use a YAML library and
// reject unknown keys.

#include <streamrelay/plugin.hpp>

#include <stdexcept>
#include <string>

namespace {

std::uint64_t parseEvery(const std::string& yaml) {
  auto at = yaml.find("every:");
  if (at == std::string::npos) return 1000;
  std::uint64_t every = std::stoull(yaml.substr(at + 6));
  if (every == 0) throw std::invalid_argument("every: must be at least 1");
  return every;
}

class HelloPlugin : public streamrelay::Plugin {
 public:
  HelloPlugin(streamrelay::Host& host, const std::string& configYaml) : host_(host), every_(parseEvery(configYaml)) {
    host_.info("hello: logging every " + std::to_string(every_) + " frames");
  }

  void onFrame(const streamrelay::Frame& frame) override {
    ++frames_;
    host_.addCounter("bytes", frame.data.size());
    if (frames_ % every_ == 0) host_.info("hello: " + std::to_string(frames_) + " frames, last seq " + std::to_string(frame.seq));
  }

 private:
  streamrelay::Host& host_;
  std::uint64_t every_;
  std::uint64_t frames_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN(HelloPlugin, "hello", "counts frames and says so every N frames")
