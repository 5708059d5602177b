// SPDX-License-Identifier: Apache-2.0
#include "redis_sink_config.hpp"

#include <cstdlib>
#include <regex>


namespace streamrelay::plugins {

namespace {

// "${NAME}" from the environment (the password), as the relay's own keys do.
std::string expandEnv(const std::string& key, const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    const std::size_t end = text.find('}', i);
    if (end == std::string::npos) ConfigReader::fail(key, "an unclosed ${");
    const std::string name = text.substr(i + 2, end - i - 2);
    const char* value = std::getenv(name.c_str());
    if (!value) ConfigReader::fail(key, "${" + name + "} is not set in the environment");
    out += value;
    i = end + 1;
  }
  return out;
}

}  // namespace

const std::vector<ConfigKey>& redisSinkConfigKeys() {
  static const std::vector<ConfigKey> keys{urlKey("url"), secretKey("password"), "mode", "key", "maxlen",
                                           "batch_frames", "flush_ms", "timeout_ms"};
  return keys;
}

RedisSinkConfig parseRedisSinkConfig(const std::string& yaml) {
  const ConfigReader config(yaml, redisSinkConfigKeys());
  auto fail = &ConfigReader::fail;
  RedisSinkConfig c;
  // redis://[:PASSWORD@]HOST[:PORT][/DB]
  // Required: a sink dropped into the plugins directory without a
  // configured instance must not start writing to whatever listens on 6379.
  const std::string url = config.read<std::string>("url", "");
  if (url.empty()) fail("url", "is required: redis://HOST[:PORT][/DB] (a password goes before HOST, as :PASSWORD@)");
  static const std::regex form(R"(redis://(?::([^@]*)@)?([^:/@]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?(?:/(\d+))?)");
  std::smatch m;
  if (!std::regex_match(url, m, form)) fail("url", "is not of the form redis://HOST[:PORT][/DB] (a password goes before HOST, as :PASSWORD@)");
  c.password = m[1];
  c.host = m[2];
  if (c.host.front() == '[') c.host = c.host.substr(1, c.host.size() - 2);
  if (m[3].matched) c.port = std::stoi(m[3]);
  if (c.port < 1 || c.port > 65535) fail("url", "port must be 1..65535");
  if (m[4].matched) c.database = std::stoi(m[4]);
  if (const std::string password = config.read<std::string>("password", ""); !password.empty())
    c.password = expandEnv("password", password);
  const std::string mode = config.read<std::string>("mode", "xadd");
  if (mode != "xadd" && mode != "publish") fail("mode", "must be xadd or publish");
  c.mode = mode == "xadd" ? RedisSinkConfig::Mode::Xadd : RedisSinkConfig::Mode::Publish;
  c.key = config.read<std::string>("key", c.key);
  if (c.key.empty()) fail("key", "must not be empty");
  c.maxlen = config.readInt("maxlen", 0, 0, INT64_MAX);
  if (c.maxlen > 0 && c.mode == RedisSinkConfig::Mode::Publish) fail("maxlen", "applies to mode xadd only");
  c.batchFrames = static_cast<std::size_t>(config.readInt("batch_frames", 1000, 1, 100000));
  c.flushInterval = std::chrono::milliseconds(config.readInt("flush_ms", 50, 1, 3600000));
  c.timeout = std::chrono::milliseconds(config.readInt("timeout_ms", 5000, 100, 3600000));
  return c;
}

std::string keyFor(const std::string& keyTemplate, const std::string& stream) {
  std::string key = keyTemplate;
  for (std::size_t at = key.find("{stream}"); at != std::string::npos; at = key.find("{stream}", at + stream.size()))
    key.replace(at, 8, stream);
  return key;
}

}  // namespace streamrelay::plugins
