// SPDX-License-Identifier: Apache-2.0
#include "sqlite_writer_config.hpp"

#include <regex>

namespace streamrelay::plugins {

// 2^53: "no limit" for a count, exact in the double the key table holds.
constexpr double kNoLimit = 9007199254740992.0;

const ConfigKeys& sqliteWriterConfigKeys() {
  static const ConfigKeys keys{
      stringKey("path").needed().doc("the SQLite database file (created if missing)"),
      stringKey("table").def("frames").doc("the table the frames go into (an SQL identifier)"),
      intKey("batch_frames", 1000, 1, 1000000).doc("frames per transaction"),
      intKey("flush_ms", 200, 1, 3600000).doc("a partial batch is committed after this long"),
      stringKey("synchronous").def("NORMAL").oneOf("OFF|NORMAL|FULL|EXTRA").doc("SQLite's PRAGMA synchronous"),
      stringKey("payload_as").def("blob").oneOf("blob|text").doc("text: payloads that are UTF-8 are stored as TEXT"),
      intKey("max_rows", 0, 0, kNoLimit).doc("the newest rows kept (0: no limit)"),
      intKey("max_age_s", 0, 0, kNoLimit).doc("rows older than this are deleted (0: no limit)"),
  };
  return keys;
}

SqliteWriterConfig parseSqliteWriterConfig(const std::string& yaml) {
  const ConfigReader config(yaml, sqliteWriterConfigKeys());
  SqliteWriterConfig c;
  c.path = config.string("path");
  if (c.path.empty()) ConfigReader::fail("path", "must not be empty (the SQLite database file)");
  c.table = config.string("table");
  if (!std::regex_match(c.table, std::regex("[A-Za-z_][A-Za-z0-9_]{0,63}")))
    ConfigReader::fail("table", "'" + c.table + "' is not an identifier (letters, digits, _; not starting with a digit)");
  c.batchFrames = static_cast<std::size_t>(config.integer("batch_frames"));
  c.flushInterval = std::chrono::milliseconds(config.integer("flush_ms"));
  c.synchronous = config.string("synchronous");
  c.payloadAsText = config.string("payload_as") == "text";
  c.maxRows = config.integer("max_rows");
  c.maxAgeSeconds = config.integer("max_age_s");
  return c;
}

}  // namespace streamrelay::plugins
