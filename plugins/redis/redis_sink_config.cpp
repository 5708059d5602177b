// SPDX-License-Identifier: Apache-2.0
#include "redis_sink_config.hpp"

#include <regex>

namespace streamrelay::plugins {

const ConfigKeys& redisSinkConfigKeys() {
  static const ConfigKeys keys{
      stringKey("url").needed().url().doc("redis://[:PASSWORD@]HOST[:PORT][/DB]"),
      stringKey("password").secret().env().doc("the password, instead of in url"),
      stringKey("mode").def("xadd").oneOf("xadd|publish").doc("XADD to a stream, or PUBLISH to a channel"),
      stringKey("key").def("streamrelay:{stream}").doc("the stream key or channel; {stream}: the frame's stream"),
      intKey("maxlen", 0, 0, 1LL << 40).doc("xadd: MAXLEN ~ N (0: no trimming)"),
      intKey("batch_frames", 1000, 1, 100000).doc("frames per pipelined write, at most"),
      intKey("flush_ms", 50, 1, 3600000).doc("a partial batch is sent after this long (or once the queue is drained)"),
      intKey("timeout_ms", 5000, 100, 3600000).doc("connect, and each batch's replies"),
  };
  return keys;
}

RedisSinkConfig parseRedisSinkConfig(const std::string& yaml) {
  const ConfigReader config(yaml, redisSinkConfigKeys());
  auto fail = &ConfigReader::fail;
  RedisSinkConfig c;
  // Required: a sink dropped into the plugins directory without a
  // configured instance must not start writing to whatever listens on 6379.
  const std::string url = config.string("url");
  static const std::regex form(R"(redis://(?::([^@]*)@)?([^:/@]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?(?:/(\d+))?)");
  std::smatch m;
  if (!std::regex_match(url, m, form)) fail("url", "is not of the form redis://HOST[:PORT][/DB] (a password goes before HOST, as :PASSWORD@)");
  c.password = m[1];
  c.host = m[2];
  if (c.host.front() == '[') c.host = c.host.substr(1, c.host.size() - 2);
  if (m[3].matched) c.port = std::stoi(m[3]);
  if (c.port < 1 || c.port > 65535) fail("url", "port must be 1..65535");
  if (m[4].matched) c.database = std::stoi(m[4]);
  if (const std::string password = config.string("password"); !password.empty()) c.password = password;
  c.mode = config.string("mode") == "xadd" ? RedisSinkConfig::Mode::Xadd : RedisSinkConfig::Mode::Publish;
  c.key = config.string("key");
  if (c.key.empty()) fail("key", "must not be empty");
  c.maxlen = config.integer("maxlen");
  if (c.maxlen > 0 && c.mode == RedisSinkConfig::Mode::Publish) fail("maxlen", "applies to mode xadd only");
  c.batchFrames = static_cast<std::size_t>(config.integer("batch_frames"));
  c.flushInterval = std::chrono::milliseconds(config.integer("flush_ms"));
  c.timeout = std::chrono::milliseconds(config.integer("timeout_ms"));
  return c;
}

std::string keyFor(const std::string& keyTemplate, const std::string& stream) {
  std::string key = keyTemplate;
  for (std::size_t at = key.find("{stream}"); at != std::string::npos; at = key.find("{stream}", at + stream.size()))
    key.replace(at, 8, stream);
  return key;
}

}  // namespace streamrelay::plugins
