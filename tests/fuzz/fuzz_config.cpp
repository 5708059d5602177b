// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the config loader and the plugin sidecar parser. Any input
// must give a Config or one ConfigError of one line: another exception, a
// crash or a multi-line error is a bug (a list used as a key once aborted the
// binary).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    streamrelay::Config config = streamrelay::parseConfig(text, "fuzz.yaml");
    // A config that loads prints, and what it prints loads again.
    streamrelay::parseConfig(streamrelay::effectiveConfigYaml(config), "printed.yaml");
  } catch (const streamrelay::ConfigError& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) std::abort();
  }
  try {
    streamrelay::parsePluginSidecar(text, "fuzz-sidecar.yaml", "fuzzed");
  } catch (const streamrelay::ConfigError& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) std::abort();
  }
  return 0;
}
