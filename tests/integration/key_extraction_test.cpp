// SPDX-License-Identifier: Apache-2.0
// streams.NAME.key: the relay finds each frame's key when it is published and
// counts them in /stats (streams[].keys); every frame still reaches every
// subscriber, with a key or without.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "relay_fixture.hpp"

using namespace streamrelay::test;
using namespace std::chrono_literals;

namespace {

long keysFigure(const RelayStats& stats, const std::string& key) {
  Poco::JSON::Object::Ptr s = stats.stream("upstream");
  if (!s || !s->has("keys")) return -1;
  return s->getObject("keys")->getValue<long>(key);
}

}  // namespace

TEST_CASE("a json_pointer key rule: /stats counts frames with a key, without one, and distinct keys",
          "[integration][keys]") {
  RelayStats stats;
  RunningRelay relay = startRelay("upstream: {type: stdin, framing: {type: delimiter}}\n"
                                  "streams:\n  upstream: {key: {json_pointer: /symbol}}\n"
                                  "listeners:\n" + listener("main") + stats.section());
  stats.attach(relay);
  Subscriber sub(relay.address());
  relay.waitForSubscribers(1);
  const std::vector<std::string> frames = {
      R"({"symbol":"md.eu.A","price":1})",  // keyed
      R"({"symbol":"md.eu.B","price":2})",  // keyed
      R"({"symbol":"md.eu.A","price":3})",  // keyed, a key seen before
      R"({"symbol":42,"price":4})",         // keyed: a number's text
      R"({"price":5})",                     // no symbol
      R"({"symbol":{"nested":1}})",         // not a string or number
      R"({"symbol":"md.eu.C)",              // malformed
      "not json at all",
  };
  std::string lines;
  for (const std::string& f : frames) lines += f + "\n";
  relay.process->writeStdin(lines);
  for (const std::string& f : frames) {  // every frame reaches the subscriber, keyed or not
    std::string got;
    REQUIRE(sub.next(got, 10s));
    CHECK(got == f);
  }
  REQUIRE(pollUntil([&] { return keysFigure(stats, "keyed") + keysFigure(stats, "without_key") == 8; }));
  CHECK(keysFigure(stats, "keyed") == 4);
  CHECK(keysFigure(stats, "without_key") == 4);
  CHECK(keysFigure(stats, "distinct") == 3);
  CHECK_FALSE(stats.stream("upstream")->getObject("keys")->has("distinct_capped"));
  // A stream without a rule has no keys entry.
  Poco::JSON::Object::Ptr metrics = stats.stream("metrics");
  REQUIRE(metrics);
  CHECK_FALSE(metrics->has("keys"));
}

TEST_CASE("regex and bytes key rules count the keys they find", "[integration][keys]") {
  const std::string rule = GENERATE(std::string("{regex: 'sym=(\\w+)', group: 1}"),
                                    std::string("{bytes: {offset: 4, length: 3}}"));
  RelayStats stats;
  RunningRelay relay = startRelay("upstream: {type: stdin, framing: {type: delimiter}}\n"
                                  "streams:\n  upstream: {key: " + rule + "}\n"
                                  "listeners:\n" + listener("main") + stats.section());
  stats.attach(relay);
  std::string lines;
  for (int i = 0; i < 1000; ++i) lines += "sym=" + std::to_string(100 + i % 250) + " x\n";
  lines += "no\n";
  relay.process->writeStdin(lines);
  REQUIRE(pollUntil([&] { return keysFigure(stats, "keyed") + keysFigure(stats, "without_key") == 1001; }));
  INFO(rule);
  CHECK(keysFigure(stats, "keyed") == 1000);
  CHECK(keysFigure(stats, "without_key") == 1);
  CHECK(keysFigure(stats, "distinct") == 250);
}
