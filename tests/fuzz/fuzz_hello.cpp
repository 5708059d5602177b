// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: what a remote subscriber sends (the `streamrelay`
// protocol's hello line, read by the relay) and what the client library
// reads from a relay (the answer's JSON). Any input must give a Hello or one
// HelloError of one line, and a JsonValue or a std::runtime_error: another
// exception or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "streamrelay/mini_json.hpp"
#include "hello.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    streamrelay::protocol::parseHello(text);
  } catch (const streamrelay::protocol::HelloError& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) std::abort();
  }
  try {
    streamrelay::client::JsonValue::parse(text);
  } catch (const std::runtime_error&) {
  } catch (const std::logic_error&) {  // std::stoull/stod of a number out of range
  }
  return 0;
}
