#include "sqlite_writer_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <iterator>
#include <regex>
#include <stdexcept>

namespace streamrelay::plugins {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw std::invalid_argument("config." + key + ": " + what);
}

template <class T>
T read(const YAML::Node& config, const char* key, T fallback) {
  if (!config[key]) return fallback;
  try {
    return config[key].as<T>();
  } catch (const YAML::Exception&) {
    fail(key, "has the wrong type ('" + config[key].as<std::string>("?") + "')");
  }
}

}  // namespace

SqliteWriterConfig parseSqliteWriterConfig(const std::string& yaml) {
  YAML::Node config = YAML::Load(yaml);
  if (!config.IsMap() && !config.IsNull()) throw std::invalid_argument("config: expected a mapping of keys");
  static const char* known[] = {"path", "table", "batch_frames", "flush_ms", "synchronous", "payload_as", "max_rows",
                                "max_age_s"};
  for (const auto& entry : config) {
    std::string key = entry.first.as<std::string>();
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      fail(key, "unknown key (expected path, table, batch_frames, flush_ms, synchronous, payload_as, max_rows, max_age_s)");
  }
  SqliteWriterConfig c;
  c.path = read<std::string>(config, "path", "");
  if (c.path.empty()) fail("path", "is required (the SQLite database file)");
  c.table = read<std::string>(config, "table", c.table);
  if (!std::regex_match(c.table, std::regex("[A-Za-z_][A-Za-z0-9_]{0,63}")))
    fail("table", "'" + c.table + "' is not an identifier (letters, digits, _; not starting with a digit)");
  long long batch = read<long long>(config, "batch_frames", 1000);
  if (batch < 1 || batch > 1000000) fail("batch_frames", "must be 1..1000000");
  c.batchFrames = static_cast<std::size_t>(batch);
  long long flushMs = read<long long>(config, "flush_ms", 200);
  if (flushMs < 1 || flushMs > 3600000) fail("flush_ms", "must be 1..3600000");
  c.flushInterval = std::chrono::milliseconds(flushMs);
  c.synchronous = read<std::string>(config, "synchronous", c.synchronous);
  if (c.synchronous != "OFF" && c.synchronous != "NORMAL" && c.synchronous != "FULL" && c.synchronous != "EXTRA")
    fail("synchronous", "must be OFF, NORMAL, FULL or EXTRA");
  std::string payloadAs = read<std::string>(config, "payload_as", "blob");
  if (payloadAs != "blob" && payloadAs != "text") fail("payload_as", "must be blob or text");
  c.payloadAsText = payloadAs == "text";
  c.maxRows = read<long long>(config, "max_rows", 0);
  c.maxAgeSeconds = read<long long>(config, "max_age_s", 0);
  if (c.maxRows < 0) fail("max_rows", "must be >= 0");
  if (c.maxAgeSeconds < 0) fail("max_age_s", "must be >= 0");
  return c;
}

}  // namespace streamrelay::plugins
