// SPDX-License-Identifier: Apache-2.0
// Integration tests of the nats sink plugin against a real nats-server from
// Debian, started by the test on loopback: alone, and as a 3-node JetStream
// cluster (the node the relay is connected to killed and restarted
// mid-stream). Built only where the nats plugin is (STREAMRELAY_PLUGIN_NATS).

#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <csignal>
#include <map>
#include <set>
#include <string>

#include "free_port.hpp"
#include "nats_server.hpp"
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string natsInstance(const std::string& servers, const std::string& more = "") {
  return "  instances:\n    - {name: sink, type: nats, queue: {max_frames: 1000000, max_bytes: 0, on_full: block}, "
         "config: {servers: [" + servers + "], subject: 'relay.{stream}'" + more + "}}\n";
}

// Checks that the ids are exactly <epoch>-upstream-1 .. -N, once each.
void checkExactlyOnce(const std::map<std::string, int>& ids, long frames) {
  CHECK(ids.size() == static_cast<std::size_t>(frames));
  std::set<long> seqs;
  std::set<std::string> epochs;
  long storedTwice = 0;
  for (const auto& [id, count] : ids) {
    storedTwice += count - 1;
    const std::size_t dash = id.find("-upstream-");
    if (dash == std::string::npos) {
      FAIL_CHECK("a message with id '" << id << "'");
      continue;
    }
    epochs.insert(id.substr(0, dash));
    seqs.insert(std::stol(id.substr(dash + 10)));
  }
  CHECK(storedTwice == 0);
  CHECK(epochs.size() == 1);
  CHECK(seqs.size() == static_cast<std::size_t>(frames));
  if (!seqs.empty()) {
    CHECK(*seqs.begin() == 1);
    CHECK(*seqs.rbegin() == frames);
  }
}

}  // namespace

TEST_CASE("nats: core NATS gets every frame on the stream's subject", "[sink][nats]") {
  PluginDir dir;
  dir.drop(builtIn("nats"), "nats.so");
  NatsServer nats("n1", dir.path("js"), freePort());
  natsConnection* conn = nullptr;
  REQUIRE(natsConnection_ConnectTo(&conn, nats.url().c_str()) == NATS_OK);
  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&sub, conn, "relay.>") == NATS_OK);
  REQUIRE(natsConnection_Flush(conn) == NATS_OK);
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, natsInstance("'" + nats.url() + "'")), {});
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "80", "--count", "1000"});
  for (int i = 1; i <= 1000; ++i) {
    natsMsg* msg = nullptr;
    REQUIRE(natsSubscription_NextMsg(&msg, sub, 10000) == NATS_OK);
    CHECK(std::string(natsMsg_GetSubject(msg)) == "relay.upstream");
    const std::string payload(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    if (payload.rfind("feed " + std::to_string(i) + ".", 0) != 0) FAIL_CHECK("message " << i << " is '" << payload << "'");
    natsMsg_Destroy(msg);
  }
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(conn);
}

TEST_CASE("nats jetstream: every frame is stored once with its Nats-Msg-Id", "[sink][nats]") {
  PluginDir dir;
  dir.drop(builtIn("nats"), "nats.so");
  NatsServer nats("n1", dir.path("js"), freePort());
  JetStreamClient client(nats.url());
  REQUIRE(client.addStream("RELAY", "relay.>", 1));
  RunningRelay relay = startRelay(
      kListenUpstream + pluginsSection(dir, natsInstance("'" + nats.url() + "'", ", jetstream: {stream: RELAY}")), {});
  const long frames = 20000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "100", "--count", std::to_string(frames)});
  CHECK(feed->waitForExit(30s) == 0);
  CHECK(pollUntil([&] { return client.messages("RELAY") >= static_cast<std::uint64_t>(frames); }, 30s));
  checkExactlyOnce(client.ids("relay.>", frames), frames);
}

TEST_CASE("nats jetstream cluster: the node the relay is connected to killed mid-stream and restarted: every frame stored exactly once", "[sink][nats]") {
  PluginDir dir;
  dir.drop(builtIn("nats"), "nats.so");
  const std::vector<int> ports = freePorts(6);
  const int client[3] = {ports[0], ports[1], ports[2]};
  const int cluster[3] = {ports[3], ports[4], ports[5]};
  std::vector<std::unique_ptr<NatsServer>> nodes;
  for (int i = 0; i < 3; ++i) {
    std::vector<int> routes;
    for (int j = 0; j < 3; ++j)
      if (j != i) routes.push_back(cluster[j]);
    nodes.push_back(std::make_unique<NatsServer>("n" + std::to_string(i + 1), dir.path("js" + std::to_string(i + 1)),
                                                 client[i], cluster[i], routes));
  }
  const std::string servers = "'" + nodes[0]->url() + "', '" + nodes[1]->url() + "', '" + nodes[2]->url() + "'";
  JetStreamClient checker(nodes[1]->url() + "," + nodes[2]->url());
  // Three nodes elect a JetStream meta leader first; on a loaded machine
  // 30 s were once not enough. If it never comes, the servers say why.
  const bool added = checker.addStream("RELAY", "relay.>", 3, 90s);
  if (!added)
    for (auto& node : nodes) UNSCOPED_INFO(node->output());
  REQUIRE(added);
  RunningRelay relay = startRelay(
      kListenUpstream +
          pluginsSection(dir, natsInstance(servers, ", jetstream: {stream: RELAY, ack_timeout_ms: 1000}, max_pending: 2000")),
      {});
  const long frames = 30000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "5000",
                         "--size", "64", "--count", std::to_string(frames)});
  // The plugin connects to the first server (no randomizing): kill that one mid-stream.
  REQUIRE(pollUntil([&] { return checker.messages("RELAY") >= 5000; }, 30s));
  nodes[0]->kill();
  REQUIRE(relay.process->waitForLine("plugin sink: nats: disconnected").size() > 0);
  REQUIRE(relay.process->waitForLine("plugin sink: nats: reconnected to nats://127\\.0\\.0\\.1:\\d+", 30s).size() > 0);
  nodes[0]->start();  // back, catching up from the others
  CHECK(feed->waitForExit(60s) == 0);
  CHECK(pollUntil([&] { return checker.messages("RELAY") >= static_cast<std::uint64_t>(frames); }, 60s));
  checkExactlyOnce(checker.ids("relay.>", frames), frames);
  CHECK(checker.messages("RELAY") == static_cast<std::uint64_t>(frames));
}
