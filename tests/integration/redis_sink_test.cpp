// SPDX-License-Identifier: Apache-2.0
// Integration tests of the redis sink plugin against a real redis-server from
// Debian, started by the test on loopback (killed and restarted mid-stream).
// Built only where the redis plugin is (STREAMRELAY_PLUGIN_REDIS).

#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>

#include <csignal>
#include <map>
#include <set>
#include <string>

#include "free_port.hpp"
#include "redis_server.hpp"
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string redisInstance(const RedisServer& redis, const std::string& more = "") {
  return "  instances:\n    - {name: sink, type: redis, queue: {max_frames: 1000000, max_bytes: 0, on_full: block}, "
         "config: {url: '" + redis.url() + "', key: 'relay:{stream}', batch_frames: 200, flush_ms: 20" + more + "}}\n";
}

}  // namespace

// Frames of 3000 bytes are kept retained (ABI 1.2), not copied, until Redis
// acknowledges them; those of 100 bytes are copied.
TEST_CASE("redis: every frame is in the Redis stream once with its seq and payload", "[sink][redis]") {
  std::string size;
  SECTION("small frames, copied") { size = "100"; }
  SECTION("large frames, retained") { size = "3000"; }
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, redisInstance(redis)), {});
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", size, "--count", "20000"});
  CHECK(feed->waitForExit(30s) == 0);
  CHECK(pollUntil([&] { return redis.xlen("relay:upstream") >= 20000; }, 30s));
  std::map<std::uint64_t, std::string> payloads;
  const auto seqs = redis.seqs("relay:upstream", &payloads);
  REQUIRE(seqs.size() == 20000);
  CHECK(seqs.begin()->first == 1);
  CHECK(seqs.rbegin()->first == 20000);
  for (const auto& [seq, count] : seqs) {
    if (count != 1) FAIL_CHECK("seq " << seq << " is there " << count << " times");
    const std::string want = "feed " + std::to_string(seq) + ".";
    if (payloads[seq].compare(0, want.size(), want) != 0) FAIL_CHECK("seq " << seq << " carries '" << payloads[seq] << "'");
  }
}

// A few frames and then nothing: the relay has no more to give, so they go
// out when its queue is drained, however long flush_ms is (they were held
// until flush_ms had passed, an hour here).
TEST_CASE("redis: frames are written once the relay's queue is drained, not held for flush_ms", "[sink][redis]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  const std::string instance =
      "  instances:\n    - {name: sink, type: redis, queue: {max_frames: 1000, max_bytes: 0, on_full: block}, "
      "config: {url: '" + redis.url() + "', key: 'relay:{stream}', batch_frames: 1000, flush_ms: 3600000}}\n";
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, instance), {});
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "100", "--count", "5", "--hold"});
  CHECK(pollUntil([&] { return redis.xlen("relay:upstream") >= 5; }, 20s));
  CHECK(redis.seqs("relay:upstream").size() == 5);
}

TEST_CASE("redis: killed and restarted mid-stream with block: every frame ends up in the stream", "[sink][redis]") {
  std::string size;
  SECTION("small frames, copied") { size = "64"; }
  SECTION("large frames, retained until acknowledged, sent again from the relay's bytes") { size = "2000"; }
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, redisInstance(redis)), {});
  const long frames = 20000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "5000",
                         "--size", size, "--count", std::to_string(frames)});
  REQUIRE(pollUntil([&] { return redis.xlen("relay:upstream") >= 3000; }, 20s));
  redis.kill();
  auto outage = relay.process->waitForLine("plugin sink: redis 127\\.0\\.0\\.1:\\d+: (.*); (\\d+) frames held, retrying with backoff");
  REQUIRE(outage.size() == 3);
  redis.start();  // the same append-only file: what Redis acknowledged is back
  auto back = relay.process->waitForLine("plugin sink: redis 127\\.0\\.0\\.1:\\d+: writing again after \\d+ ms; (\\d+) frames sent again", 30s);
  REQUIRE(back.size() == 2);
  CHECK(feed->waitForExit(30s) == 0);
  CHECK(pollUntil([&] { return redis.xlen("relay:upstream") >= frames; }, 30s));
  std::map<std::uint64_t, std::string> payloads;
  const auto seqs = redis.seqs("relay:upstream", &payloads);
  for (const auto& [seq, payload] : payloads) {
    const std::string want = "feed " + std::to_string(seq) + ".";
    if (payload.size() != std::stoul(size) || payload.compare(0, want.size(), want) != 0)
      FAIL_CHECK("seq " << seq << " carries " << payload.size() << " bytes: '" << payload.substr(0, 40) << "'");
  }
  // None missing; written twice only what was in flight when the connection
  // broke (applied by Redis, the reply lost): at most the two batches in flight.
  CHECK(seqs.size() == static_cast<std::size_t>(frames));
  CHECK(seqs.begin()->first == 1);
  CHECK(seqs.rbegin()->first == static_cast<std::uint64_t>(frames));
  int duplicates = 0;
  for (const auto& [seq, count] : seqs) duplicates += count - 1;
  CHECK(duplicates <= 2 * 200);
  CHECK(duplicates <= std::stoi(back[1]));
  // The outage is one line, not one per retry.
  CHECK(relay.process->countLines("frames held, retrying with backoff") == 1);
}

TEST_CASE("redis: mode publish sends each frame to the channel", "[sink][redis]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  redisContext* sub = redisConnect("127.0.0.1", redis.port());
  REQUIRE((sub && !sub->err));
  freeReplyObject(redisCommand(sub, "SUBSCRIBE relay:upstream"));
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, redisInstance(redis, ", mode: publish")), {});
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "50", "--count", "100"});
  timeval tenSeconds{10, 0};
  redisSetTimeout(sub, tenSeconds);
  for (int i = 1; i <= 100; ++i) {
    void* raw = nullptr;
    REQUIRE(redisGetReply(sub, &raw) == REDIS_OK);
    auto* message = static_cast<redisReply*>(raw);
    REQUIRE(message->elements == 3);
    const std::string payload(message->element[2]->str, message->element[2]->len);
    CHECK(payload.rfind("feed " + std::to_string(i) + ".", 0) == 0);
    freeReplyObject(message);
  }
  redisFree(sub);
}

TEST_CASE("redis: a bad config is one line naming the key", "[sink][redis]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RunningRelay relay = startRelay(
      kListenUpstream + pluginsSection(dir, "  instances:\n    - {name: sink, type: redis, config: {url: 'http://x', "
                                            "key: k}}\n"),
      {});
  CHECK(relay.process->waitForLine("config\\.url: is not of the form redis://HOST\\[:PORT\\]\\[/DB\\]").size() > 0);
}
