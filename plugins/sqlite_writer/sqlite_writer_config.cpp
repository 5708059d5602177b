// SPDX-License-Identifier: Apache-2.0
#include "sqlite_writer_config.hpp"

#include <cstdint>
#include <regex>
#include <stdexcept>


namespace streamrelay::plugins {

const std::vector<ConfigKey>& sqliteWriterConfigKeys() {
  static const std::vector<ConfigKey> keys{"path", "table", "batch_frames", "flush_ms", "synchronous", "payload_as",
                                           "max_rows", "max_age_s"};
  return keys;
}

SqliteWriterConfig parseSqliteWriterConfig(const std::string& yaml) {
  const ConfigReader config(yaml, sqliteWriterConfigKeys());
  auto fail = &ConfigReader::fail;
  SqliteWriterConfig c;
  c.path = config.read<std::string>("path", "");
  if (c.path.empty()) fail("path", "is required (the SQLite database file)");
  c.table = config.read<std::string>("table", c.table);
  if (!std::regex_match(c.table, std::regex("[A-Za-z_][A-Za-z0-9_]{0,63}")))
    fail("table", "'" + c.table + "' is not an identifier (letters, digits, _; not starting with a digit)");
  c.batchFrames = static_cast<std::size_t>(config.readInt("batch_frames", 1000, 1, 1000000));
  c.flushInterval = std::chrono::milliseconds(config.readInt("flush_ms", 200, 1, 3600000));
  c.synchronous = config.read<std::string>("synchronous", c.synchronous);
  if (c.synchronous != "OFF" && c.synchronous != "NORMAL" && c.synchronous != "FULL" && c.synchronous != "EXTRA")
    fail("synchronous", "must be OFF, NORMAL, FULL or EXTRA");
  std::string payloadAs = config.read<std::string>("payload_as", "blob");
  if (payloadAs != "blob" && payloadAs != "text") fail("payload_as", "must be blob or text");
  c.payloadAsText = payloadAs == "text";
  c.maxRows = config.readInt("max_rows", 0, 0, INT64_MAX);
  c.maxAgeSeconds = config.readInt("max_age_s", 0, 0, INT64_MAX);
  return c;
}

}  // namespace streamrelay::plugins
