// SPDX-License-Identifier: Apache-2.0
// hello_plugin: the smallest useful streamrelay plugin. It counts frames and
// bytes and logs a line every `every` frames.
//
// Config (its instance's `config:` in the relay's YAML): {every: 1000}
// The config arrives as YAML text; this plugin only needs one integer, so it
// reads it by hand: a plugin with more options would use a YAML library and
// reject unknown keys. It declares its one key (ABI 1.2), so that
// `streamrelay --check-config` checks it and `--list-keys` lists it without
// running the plugin. Its byte counter is a handle: looked up once.

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
  HelloPlugin(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), bytes_(host.counter("bytes")), every_(parseEvery(configYaml)) {
    host_.info("hello: logging every " + std::to_string(every_) + " frames");
  }

  void onFrame(const streamrelay::Frame& frame) override {
    ++frames_;
    bytes_.add(frame.data.size());
    if (frames_ % every_ == 0) host_.info("hello: " + std::to_string(frames_) + " frames, last seq " + std::to_string(frame.seq));
  }

 private:
  streamrelay::Host& host_;
  streamrelay::Counter bytes_;
  std::uint64_t every_;
  std::uint64_t frames_ = 0;
};

const streamrelay::ConfigKeys& helloKeys() {
  static const streamrelay::ConfigKeys keys{
      streamrelay::intKey("every", 1000, 1, 1e9).doc("a log line every this many frames")};
  return keys;
}

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(HelloPlugin, "hello", "counts frames and says so every N frames", 0, helloKeys())
