// SPDX-License-Identifier: Apache-2.0
// One declaration, two readers: a built-in plugin reads its config with
// plugins/common/config_reader.hpp, the relay (--check-config) reads it with
// the registry through the plugin's config_keys table (PluginConfigKeys).
// They must agree: the same configs accepted, the same words for the rest.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/config_reader.hpp"
#include "config.hpp"
#include "conflate/conflator.hpp"
#include "filter/frame_filter.hpp"
#include "metrics/metrics_config.hpp"
#include "nats/nats_sink_config.hpp"
#include "plugin_config_keys.hpp"
#include "redis/redis_sink_config.hpp"
#include "sqlite_writer/sqlite_writer_config.hpp"
#include "yaml_map.hpp"

using namespace streamrelay;

namespace {

// "" if the reader accepts the text, else its message.
std::string pluginVerdict(const std::string& yaml, const ConfigKeys& keys) {
  try {
    plugins::ConfigReader reader(yaml, keys);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The same from the relay's side, without its "FILE:LINE: " prefix.
std::string hostVerdict(const std::string& yaml, const ConfigKeys& keys) {
  const auto declared = PluginConfigKeys::read(keys.table(), "t");
  try {
    readSettings(YamlMap(YAML::Load(yaml), "config", "t"), declared->schema());
  } catch (const ConfigError& e) {
    const std::string text = e.what();
    return text.substr(text.find(": ") + 2);
  }
  return "";
}

}  // namespace

TEST_CASE("the plugins' config reader and the relay's registry agree on every config, in the same words",
          "[config_keys]") {
  struct Case {
    const ConfigKeys& keys;
    std::vector<const char*> configs;
  };
  const std::vector<Case> cases{
      {plugins::sqliteWriterConfigKeys(),
       {"{path: x}", "{}", "{path: x, batch_frames: 0}", "{path: x, batch_frames: abc}", "{path: x, synchronous: ODD}",
        "{path: [1]}", "{path: x, extra: 1}", "{path: x, max_rows: -1}", "{path: x, payload_as: text, flush_ms: 5}"}},
      {plugins::redisSinkConfigKeys(),
       {"{url: 'redis://h'}", "{url: 'redis://h', mode: x}", "{password: p}", "{url: 'redis://h', maxlen: 1.5}",
        "{url: 'redis://h', timeout_ms: 99}"}},
      {plugins::natsSinkConfigKeys(),
       {"{servers: ['nats://h:1']}", "{servers: 'nats://h:1'}", "{servers: [x], jetstream: {stream: S}}",
        "{servers: [x], jetstream: {stream: S, ack_timeout_ms: 50}}", "{servers: [x], jetstream: {bad: 1}}",
        "{servers: [x], tls: {enabled: maybe}}", "{servers: [x], jetstream: 5}", "{servers: [[x]]}",
        "{servers: [x], tls: {}}"}},
      {plugins::metricsConfigKeys(), {"{}", "{bind: '127.0.0.1:0', max_connections: 0}", "{bind: {a: 1}}"}},
      {plugins::filterConfigKeys(),
       {"{contains: a}", "{json: {pointer: /a, in: x}}", "{invert: yes, contains: a}", "{json: {pointer: /a, nope: 1}}",
        "{json: {pointer: /a, in: [1, {b: 2}]}}"}},
      {plugins::conflateConfigKeys(), {"{key: /k}", "{}", "{key: /k, interval_ms: 0}", "{key: /k, max_keys: x}"}},
  };
  for (const Case& c : cases) {
    for (const char* yaml : c.configs) {
      INFO(yaml);
      CHECK(pluginVerdict(yaml, c.keys) == hostVerdict(yaml, c.keys));
    }
  }
}
