// SPDX-License-Identifier: Apache-2.0
// The rule by which the relay hides secrets it prints (secret_mask.hpp), and
// that it agrees with the keys the built-in plugins declare secret.
#include <catch2/catch.hpp>

#include <string>

#include "conflate/conflator.hpp"
#include "config.hpp"
#include "filter/frame_filter.hpp"
#include "metrics/metrics_config.hpp"
#include "nats/nats_sink_config.hpp"
#include "redis/redis_sink_config.hpp"
#include "plugin_config_keys.hpp"
#include "secret_mask.hpp"
#include "sqlite_writer/sqlite_writer_config.hpp"

using namespace streamrelay;

namespace {

std::string printed(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

}  // namespace

TEST_CASE("secret keys by name: words of the key, not paths to secrets", "[secrets]") {
  for (const char* key : {"password", "pass", "passwd", "db_password", "token", "auth_token", "apiKey", "api_key",
                          "API-KEY", "client_secret", "secret", "credentials", "creds", "auth", "Authorization",
                          "private_key", "access_key", "bearer"})
    CHECK(isSecretKey(key));
  for (const char* key : {"path", "url", "key", "user", "servers", "passthrough", "creds_file", "tokens_file",
                          "key_file", "password_file", "inputs_claim", "max_keys", "subject", "bind", "monkey"})
    CHECK_FALSE(isSecretKey(key));
}

TEST_CASE("URLs: the userinfo and secret query values are masked wherever the URL is", "[secrets]") {
  CHECK(maskUrlSecrets("redis://:hunter2@127.0.0.1:6379/2") == "redis://(set)@127.0.0.1:6379/2");
  CHECK(maskUrlSecrets("nats://alice:hunter2@n1:4222") == "nats://(set)@n1:4222");
  CHECK(maskUrlSecrets("nats://s3cr3ttoken@n1:4222") == "nats://(set)@n1:4222");
  CHECK(maskUrlSecrets("https://feed.example.com/v1?symbols=BTC&token=abc&x=1#top") ==
        "https://feed.example.com/v1?symbols=BTC&token=(set)&x=1#top");
  CHECK(maskUrlSecrets("wss://u:p@h/path?apiKey=k") == "wss://(set)@h/path?apiKey=(set)");
  CHECK(maskUrlSecrets("connect to redis://:pw@h:1 failed; then nats://n:2 'https://a:b@c/'") ==
        "connect to redis://(set)@h:1 failed; then nats://n:2 'https://(set)@c/'");
  CHECK(maskUrlSecrets("no url here: user@example.com") == "no url here: user@example.com");
  CHECK(maskUrlSecrets("http://host/a@b") == "http://host/a@b");  // an @ in the path is not userinfo
}

TEST_CASE("a plugin's config is masked by key at every depth, and by URL in every string", "[secrets]") {
  const std::string text = printed(maskedPluginConfig(
      "{url: 'redis://:hunter2@h:6379', password: hunter3, key: 'streamrelay:{stream}', "
      "auth: {user: bob, pass: hunter4}, tokens: [hunter5, hunter6], nested: [{api_key: hunter7}], empty_token: ''}"));
  for (const char* secret : {"hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7"}) CHECK(text.find(secret) == std::string::npos);
  CHECK(text.find("redis://(set)@h:6379") != std::string::npos);
  CHECK(text.find("streamrelay:{stream}") != std::string::npos);
  CHECK(text.find("bob") == std::string::npos);  // everything under a secret key
  CHECK(printed(maskedPluginConfig("{not yaml: [")) == "(set)");
}

// A plugin that declares its keys (ABI 1.2 config_keys) says which are
// secret; the rule by name is for plugins that declare none. The built-in
// plugins declare secret exactly the keys the rule would mask, so their
// configs print the same either way.
TEST_CASE("the built-in plugins declare secret exactly the keys the rule masks", "[secrets]") {
  struct Plugin {
    const char* name;
    const streamrelay::ConfigKeys& keys;
  };
  for (const Plugin& plugin : {Plugin{"sqlite_writer", plugins::sqliteWriterConfigKeys()},
                               Plugin{"redis", plugins::redisSinkConfigKeys()},
                               Plugin{"nats", plugins::natsSinkConfigKeys()},
                               Plugin{"metrics", plugins::metricsConfigKeys()},
                               Plugin{"filter", plugins::filterConfigKeys()},
                               Plugin{"conflate", plugins::conflateConfigKeys()}}) {
    for (const streamrelay::ConfigKey& key : plugin.keys.keys()) {
      INFO(plugin.name << " config." << key.name);
      const std::string leaf = key.name.substr(key.name.rfind('.') + 1);
      CHECK(isSecretKey(leaf) == key.has(STREAMRELAY_KEY_SECRET));
    }
  }
}

TEST_CASE("a plugin's declared keys decide what --check-config masks, by kind, not by name", "[secrets]") {
  static const streamrelay::ConfigKeys keys{streamrelay::stringKey("dsn").secret(), streamrelay::stringKey("url").url(),
                                            streamrelay::stringKey("user"), streamrelay::stringKey("note")};
  const auto declared = PluginConfigKeys::read(keys.table(), "custom");
  const Config c = parseConfig(
      "upstream: {type: generator}\n"
      "plugins:\n"
      "  directory: d\n"
      "  instances:\n"
      "    - {name: c, type: custom, config: {dsn: hunter2, url: 'pg://bob:hunter3@h/db', user: bob, note: x}}\n",
      "test.yaml");
  const std::string out = effectiveConfigYaml(c, {{"custom", &declared->schema()}});
  INFO(out);
  CHECK(out.find("hunter") == std::string::npos);
  CHECK(out.find("dsn: \"(set)\"") != std::string::npos);
  CHECK(out.find("pg://(set)@h/db") != std::string::npos);
  CHECK(out.find("user: bob") != std::string::npos);
  // The same config by the rule alone: `dsn` is no secret's name.
  CHECK(effectiveConfigYaml(c).find("hunter2") != std::string::npos);
}

TEST_CASE("the effective config (--check-config) prints no secret: plugin configs, source URLs, hidden core keys", "[secrets]") {
  ::setenv("TEST_AUTH_LINE", "LOGIN alice hunter9", 1);
  const Config c = parseConfig(
      "sources:\n"
      "  feed: {type: http, url: 'https://alice:hunter2@feed.example.com/v1?token=hunter3', "
      "headers: {Authorization: 'Bearer hunter4'}}\n"
      "  raw: {type: tcp, host: feed.example.com, port: 9000, send_on_connect: '${TEST_AUTH_LINE}'}\n"
      "  ws: {type: websocket, endpoints: ['wss://h1/s?api_key=hunter5', 'wss://h2/s']}\n"
      "plugins:\n"
      "  directory: d\n"
      "  instances:\n"
      "    - {name: r, type: redis, inputs: [feed], config: {url: 'redis://:hunter6@h:6379', password: hunter7}}\n"
      "    - {name: n, type: nats, inputs: [feed], config: {servers: ['nats://bob:hunter8@n1:4222'], token: hunter10}}\n",
      "test.yaml");
  const std::string out = effectiveConfigYaml(c);
  INFO(out);
  for (const char* secret : {"hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7", "hunter8", "hunter9",
                             "hunter10"})
    CHECK(out.find(secret) == std::string::npos);
  CHECK(out.find("https://(set)@feed.example.com/v1?token=(set)") != std::string::npos);
  CHECK(out.find("wss://h2/s") != std::string::npos);
}
