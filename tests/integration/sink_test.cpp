// SPDX-License-Identifier: Apache-2.0
// Integration tests of the sinks into distributed engines, against the real
// servers from Debian started by the test on loopback: the redis plugin with
// redis-server (killed and restarted mid-stream), the nats plugin with
// nats-server alone and as a 3-node JetStream cluster (the node it is
// connected to killed and restarted mid-stream).

#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <set>
#include <string>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string builtIn(const std::string& name) { return std::string(STREAMRELAY_PLUGINS_DIR) + "/" + name + ".so"; }

// A loopback port nobody listens on now (the server that takes it binds it
// a moment later; another process taking it meanwhile fails the test loudly).
int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// redis-server on a loopback port, its data in `dir`: every write is in the
// append-only file before Redis acknowledges it (appendfsync always), so a
// SIGKILL loses nothing it acknowledged.
class RedisServer {
 public:
  explicit RedisServer(std::string dir) : dir_(std::move(dir)), port_(freePort()) { start(); }

  void start() {
    process_ = std::make_unique<ChildProcess>(
        "/usr/bin/redis-server",
        std::vector<std::string>{"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "yes", "--appendfsync", "always", "--dir", dir_, "--logfile", dir_ + "/redis.log"});
    REQUIRE(pollUntil([&] { return ping(); }, 20s));
  }
  void kill() {
    process_->signal(SIGKILL);
    process_->waitForExit();
  }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  bool ping() const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    bool ok = false;
    if (c && !c->err) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = reply && reply->type == REDIS_REPLY_STATUS;
      if (reply) freeReplyObject(reply);
    }
    if (c) redisFree(c);
    return ok;
  }

  long long xlen(const std::string& key) const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    long long n = -1;
    if (c && !c->err) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "XLEN %s", key.c_str()));
      if (reply && reply->type == REDIS_REPLY_INTEGER) n = reply->integer;
      if (reply) freeReplyObject(reply);
    }
    if (c) redisFree(c);
    return n;
  }

  // seq -> how many entries of the stream carry it, and each payload.
  std::map<std::uint64_t, int> seqs(const std::string& key, std::map<std::uint64_t, std::string>* payloads = nullptr) const {
    std::map<std::uint64_t, int> counts;
    redisContext* c = redisConnect("127.0.0.1", port_);
    REQUIRE((c && !c->err));
    std::string from = "-";
    for (;;) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "XRANGE %s %s + COUNT 5000", key.c_str(), from.c_str()));
      REQUIRE(reply);
      REQUIRE(reply->type == REDIS_REPLY_ARRAY);
      if (reply->elements == 0) {
        freeReplyObject(reply);
        break;
      }
      for (std::size_t i = 0; i < reply->elements; ++i) {
        redisReply* entry = reply->element[i];
        from = "(" + std::string(entry->element[0]->str);  // exclusive: the next page starts after it
        redisReply* fields = entry->element[1];
        std::uint64_t seq = 0;
        std::string payload;
        for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
          const std::string name = fields->element[f]->str;
          const std::string value(fields->element[f + 1]->str, fields->element[f + 1]->len);
          if (name == "seq") seq = std::stoull(value);
          if (name == "payload") payload = value;
        }
        ++counts[seq];
        if (payloads) (*payloads)[seq] = payload;
      }
      freeReplyObject(reply);
    }
    redisFree(c);
    return counts;
  }

 private:
  std::string dir_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

std::string redisInstance(const RedisServer& redis, const std::string& more = "") {
  return "  instances:\n    - {name: sink, type: redis, queue: {max_frames: 1000000, max_bytes: 0, on_full: block}, "
         "config: {url: '" + redis.url() + "', key: 'relay:{stream}', batch_frames: 200, flush_ms: 20" + more + "}}\n";
}

}  // namespace

TEST_CASE("redis: every frame is in the Redis stream once with its seq and payload", "[sink][redis]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, redisInstance(redis)), {});
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "100", "--count", "20000"});
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

TEST_CASE("redis: killed and restarted mid-stream with block: every frame ends up in the stream", "[sink][redis]") {
  PluginDir dir;
  dir.drop(builtIn("redis"), "redis.so");
  RedisServer redis(dir.root());
  RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, redisInstance(redis)), {});
  const long frames = 20000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "5000",
                         "--size", "64", "--count", std::to_string(frames)});
  REQUIRE(pollUntil([&] { return redis.xlen("relay:upstream") >= 3000; }, 20s));
  redis.kill();
  auto outage = relay.process->waitForLine("plugin sink: redis 127\\.0\\.0\\.1:\\d+: (.*); (\\d+) frames held, retrying with backoff");
  REQUIRE(outage.size() == 3);
  redis.start();  // the same append-only file: what Redis acknowledged is back
  auto back = relay.process->waitForLine("plugin sink: redis 127\\.0\\.0\\.1:\\d+: writing again after \\d+ ms; (\\d+) frames sent again", 30s);
  REQUIRE(back.size() == 2);
  CHECK(feed->waitForExit(30s) == 0);
  CHECK(pollUntil([&] { return redis.xlen("relay:upstream") >= frames; }, 30s));
  const auto seqs = redis.seqs("relay:upstream");
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
  bool addStream(const std::string& name, const std::string& subject, int replicas) {
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
    }, 30s);
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
  const int client[3] = {freePort(), freePort(), freePort()};
  const int cluster[3] = {freePort(), freePort(), freePort()};
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
  REQUIRE(checker.addStream("RELAY", "relay.>", 3));
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
