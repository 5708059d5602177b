// SPDX-License-Identifier: Apache-2.0
#pragma once
// A real nats-server (JetStream on) for the integration tests (the nats
// sink's and the nats source's), and a JetStream client of the test's own
// (cnats) to set up and look into streams. Catch2 assertions inside:
// include only from test files built where the nats plugin is.

#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "relay_fixture.hpp"

namespace streamrelay::test {

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
                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
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
  // A message as the stream holds it: its Nats-Msg-Id and when it was stored.
  struct Stored {
    std::string id;
    std::int64_t storedUnixNs = 0;
  };
  // Every message of the stream, in the stream's order. An ordered consumer:
  // a plain push consumer created on a cluster whose node just came back
  // once skipped 14 of 30,000 stored messages; an ordered one notices a
  // skipped stream seq and starts again after the last message it delivered.
  std::vector<Stored> inOrder(const std::string& subject, std::uint64_t count) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Ordered = true;
    natsSubscription* sub = nullptr;
    // A cluster whose node just came back may still be electing the
    // stream's leader: creating the consumer times out for a moment.
    REQUIRE(pollUntil([&] { return js_SubscribeSync(&sub, js_, subject.c_str(), nullptr, &so, nullptr) == NATS_OK; }, 30s));
    std::vector<Stored> stored;
    for (std::uint64_t i = 0; i < count; ++i) {
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, sub, 10000) != NATS_OK) break;
      const char* id = nullptr;
      natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
      jsMsgMetaData* meta = nullptr;
      const std::int64_t at = natsMsg_GetMetaData(&meta, msg) == NATS_OK ? meta->Timestamp : 0;
      if (meta) jsMsgMetaData_Destroy(meta);
      stored.push_back({id ? id : "(none)", at});
      natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    return stored;
  }
  // The Nats-Msg-Id of every message of the stream, in the stream's order.
  std::vector<std::string> idsInOrder(const std::string& subject, std::uint64_t count) {
    std::vector<std::string> ids;
    for (Stored& m : inOrder(subject, count)) ids.push_back(std::move(m.id));
    return ids;
  }
  // Every message of the stream from the start: Nats-Msg-Id -> how many times.
  std::map<std::string, int> ids(const std::string& subject, std::uint64_t count) {
    std::map<std::string, int> seen;
    for (const std::string& id : idsInOrder(subject, count)) ++seen[id];
    return seen;
  }

 private:
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace streamrelay::test
