// SPDX-License-Identifier: Apache-2.0
// Secrets never printed: `streamrelay --check-config` (the real binary) and
// the lines the redis and nats plugins log when they cannot connect.

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

// Runs `streamrelay --check-config FILE`; returns what it printed (stdout and stderr), and its exit code.
std::string checkConfig(const std::string& yaml, int& code) {
  const std::string path = writeTempFile("check-secrets.yaml", yaml);
  FILE* pipe = ::popen((std::string(STREAMRELAY_BIN) + " --check-config " + path + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  code = ::pclose(pipe);
  return out;
}

}  // namespace

TEST_CASE("streamrelay --check-config prints every secret as (set): plugin configs, source URLs, auth lines", "[secrets]") {
  ::setenv("STREAMRELAY_TEST_LOGIN", "LOGIN alice hunter1", 1);
  int code = -1;
  const std::string out = checkConfig(
      "sources:\n"
      "  feed: {type: http, url: 'https://alice:hunter2@feed.example.com/v1?token=hunter3', "
      "headers: {Authorization: 'Bearer hunter4'}}\n"
      "  raw: {type: tcp, host: feed.example.com, port: 9000, send_on_connect: '${STREAMRELAY_TEST_LOGIN}'}\n"
      "  ws: {type: websocket, endpoints: ['wss://h1/s?api_key=hunter5', 'wss://h2/s']}\n"
      "plugins:\n"
      "  directory: /nonexistent\n"
      "  instances:\n"
      "    - {name: r, type: redis, inputs: [feed], config: {url: 'redis://:hunter6@h:6379', password: hunter7}}\n"
      "    - {name: n, type: nats, inputs: [feed], config: {servers: ['nats://bob:hunter8@n1:4222'], "
      "user: bob, password: hunter9, token: hunter10}}\n",
      code);
  INFO(out);
  REQUIRE(code == 0);
  for (const char* secret : {"hunter1", "hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7", "hunter8",
                             "hunter9", "hunter10"})
    CHECK(out.find(secret) == std::string::npos);
  CHECK(out.find("(set)") != std::string::npos);
  CHECK(out.find("wss://h2/s") != std::string::npos);  // what is not a secret still prints
}

TEST_CASE("the redis and nats plugins log no password: connect errors and config errors", "[secrets][sink]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  dir.drop(builtIn("nats"), "nats.so");
  // Port 1 on loopback: nothing listens, the connect is refused at once.
  RunningRelay relay = startRelay(
      "upstream: {type: generator, rate: 50}\n" +
          pluginsSection(dir, "  instances:\n"
                              "    - {name: r, type: redis, config: {url: 'redis://:hunter2@127.0.0.1:1'}}\n"
                              "    - {name: bad, type: redis, config: {url: 'redis://:hunter3@'}}\n"
                              "    - {name: n, type: nats, config: {servers: ['nats://alice:hunter4@127.0.0.1:1']}}\n"),
      {});
  CHECK(relay.process->waitForLine("plugin r: redis 127.0.0.1:1: .*retrying").size() > 0);
  CHECK(relay.process->waitForLine("plugin bad \\(type redis\\): create failed: config.url: ").size() > 0);
  CHECK(relay.process->waitForLine("plugin n: nats: no server answers yet \\(nats://127.0.0.1:1").size() > 0);
  INFO(relay.process->output());
  CHECK(relay.process->countLines("hunter") == 0);
}
