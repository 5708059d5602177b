// SPDX-License-Identifier: Apache-2.0
#pragma once
// The redis plugin's configuration, read from its `config:` YAML.

#include <chrono>
#include <cstdint>
#include <string>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

struct RedisSinkConfig {
  std::string host;                          // from `url` (required)
  int port = 6379;
  int database = 0;
  std::string password;                      // from the url (redis://:PASSWORD@host) or `password`
  enum class Mode { Xadd, Publish } mode = Mode::Xadd;
  std::string key = "streamrelay:{stream}";  // the stream key (xadd) or channel (publish); {stream} is the frame's stream
  long long maxlen = 0;                      // xadd: MAXLEN ~ N (0: no trimming)
  std::size_t batchFrames = 1000;            // frames per pipelined batch
  std::chrono::milliseconds flushInterval{50};
  std::chrono::milliseconds timeout{5000};   // connect, and each batch's replies
};

// Its keys: `password` is a secret, `url` may hold one.
const ConfigKeys& redisSinkConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value
// (never echoing the url or the password).
RedisSinkConfig parseRedisSinkConfig(const std::string& yaml);

// The key for a frame of `stream`: `key` with {stream} replaced.
std::string keyFor(const std::string& keyTemplate, const std::string& stream);

}  // namespace streamrelay::plugins
