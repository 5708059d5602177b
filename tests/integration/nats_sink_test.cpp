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
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

// nats-server with JetStream on a loopback port, its store in `dir`;
// `cluster`: the other nodes' route URLs (a 3-node cluster).
class NatsServer {
 public:
  NatsServer(std::string name, std::string dir, int port, int clusterPort = 0, std::vector<int> routes = {})
      : name_(std::move(name)), dir_(std::move(dir)), port_(port), clusterPort_(clusterPort), routes_(std::move(routes)) {
    start();
  }
  void start() {
    std::vector<std::string> args{"-a", "127.0.0.1", "-p", std::to_string(port_), "-js", "-sd", dir_, "-n", name_};
    if (clusterPort_ != 0) {
      std::string routes;
      for (int r : routes_) routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(r);
      args.insert(args.end(), {"--cluster_name", "relay-test", "--cluster", "nats://127.0.0.1:" + std::to_string(clusterPort_),
                               "--routes", routes});
    }
    process_ = std::make_unique<ChildProcess>("/usr/sbin/nats-server", args);
    REQUIRE(process_->waitForLine("Server is ready", 20s).size() > 0);
  }
  void kill() {
    process_->signal(SIGKILL);
    process_->waitForExit();
  }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  // What the server wrote so far (for a failed check's report).
  std::string output() { return process_->output(); }

 private:
  std::string name_, dir_;
  int port_, clusterPort_;
  std::vector<int> routes_;
  std::unique_ptr<ChildProcess> process_;
};

// A JetStream client of the test's own (cnats), to set up and check streams.
class JetStreamClient {
 public:
  explicit JetStreamClient(const std::string& urls) {
    REQUIRE(natsConnection_ConnectTo(&conn_, urls.c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js_, conn_, nullptr) == NATS_OK);
  }
  ~JetStreamClient() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(conn_);
  }
  // Creates the stream; a cluster still electing its leaders answers with
  // errors for a moment, so it is tried until the deadline.
  bool addStream(const std::string& name, const std::string& subject, int replicas,
                 std::chrono::milliseconds timeout = 30s) {
    return pollUntil([&] {
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      cfg.Name = name.c_str();
      const char* subjects[] = {subject.c_str()};
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Replicas = replicas;
      jsStreamInfo* info = nullptr;
      const natsStatus s = js_AddStream(&info, js_, &cfg, nullptr, nullptr);
      if (info) jsStreamInfo_Destroy(info);
      return s == NATS_OK;
    }, timeout);
  }
  std::uint64_t messages(const std::string& stream) {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) return 0;
    const std::uint64_t n = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return n;
  }
  // Every message of the stream from the start: Nats-Msg-Id -> how many times.
  std::map<std::string, int> ids(const std::string& subject, std::uint64_t count) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckNone;
    natsSubscription* sub = nullptr;
    // A cluster whose node just came back may still be electing the
    // stream's leader: creating the consumer times out for a moment.
    REQUIRE(pollUntil([&] { return js_SubscribeSync(&sub, js_, subject.c_str(), nullptr, &so, nullptr) == NATS_OK; }, 30s));
    std::map<std::string, int> seen;
    for (std::uint64_t i = 0; i < count; ++i) {
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, sub, 10000) != NATS_OK) break;
      const char* id = nullptr;
      natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
      ++seen[id ? id : "(none)"];
      natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    return seen;
  }

 private:
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
};

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
