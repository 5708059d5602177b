// SPDX-License-Identifier: Apache-2.0
#pragma once
// The sqlite_writer plugin's configuration, read from its `config:` YAML.

#include <chrono>
#include <cstdint>
#include <string>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

struct SqliteWriterConfig {
  std::string path;                         // required
  std::string table = "frames";             // an SQL identifier
  std::size_t batchFrames = 1000;
  std::chrono::milliseconds flushInterval{200};
  std::string synchronous = "NORMAL";       // OFF | NORMAL | FULL | EXTRA
  bool payloadAsText = false;               // payload_as: blob | text
  std::int64_t maxRows = 0;                 // 0: no limit
  std::int64_t maxAgeSeconds = 0;           // 0: no limit
};

// Its keys (none holds a secret): what the relay checks, prints and lists.
const ConfigKeys& sqliteWriterConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value.
SqliteWriterConfig parseSqliteWriterConfig(const std::string& yaml);

}  // namespace streamrelay::plugins
