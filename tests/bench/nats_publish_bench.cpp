// SPDX-License-Identifier: Apache-2.0
// nats_publish_bench: NATS' own best publisher on this machine, as the
// yardstick for the nats plugin (tests/bench/sink-bench.sh), and the small
// jobs that script needs around it. cnats only.
//
//   nats_publish_bench publish URL SUBJECT N SIZE core|jetstream [MAX_PENDING [STREAM]]
//       publishes N messages of SIZE bytes as fast as it can: core NATS (then
//       a flush), or JetStream (async, at most MAX_PENDING [4096] in flight,
//       each with a Nats-Msg-Id, then waits for every ack); prints frames/s.
//       JetStream publishes with the options the nats plugin uses: an ack
//       deadline (MaxWait 5000 ms) and, with STREAM, the expected stream.
//   nats_publish_bench receive URL SUBJECT N     prints "ready" once subscribed, exits after N messages
//   nats_publish_bench reset URL STREAM SUBJECT REPLICAS   (re)creates an empty stream
//   nats_publish_bench count URL STREAM         prints the messages the stream holds
//   nats_publish_bench wait URL STREAM N        returns once the stream holds N messages (one
//       connection, asking every 5 ms: a process per question would take the CPU being measured)

#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

natsConnection* connect(const std::string& url) {
  natsConnection* conn = nullptr;
  if (natsConnection_ConnectTo(&conn, url.c_str()) != NATS_OK) {
    std::fprintf(stderr, "cannot connect to %s\n", url.c_str());
    std::exit(1);
  }
  return conn;
}

jsCtx* jetStream(natsConnection* conn, long maxPending = 4096) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.PublishAsync.MaxPending = maxPending;
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, conn, &opts) != NATS_OK) std::exit(1);
  return js;
}

int publish(const std::string& url, const std::string& subject, long n, std::size_t size, bool useJetStream,
            long maxPending, const std::string& stream) {
  const std::string payload(size, 'x');
  natsConnection* conn = connect(url);
  jsCtx* js = useJetStream ? jetStream(conn, maxPending) : nullptr;
  jsPubOptions pubOpts;  // as the plugin's
  jsPubOptions_Init(&pubOpts);
  pubOpts.MaxWait = 5000;
  if (!stream.empty()) pubOpts.ExpectStream = stream.c_str();
  const auto start = std::chrono::steady_clock::now();
  for (long i = 1; i <= n; ++i) {
    if (!js) {
      if (natsConnection_Publish(conn, subject.c_str(), payload.data(), static_cast<int>(payload.size())) != NATS_OK)
        return 1;
      continue;
    }
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
    const std::string id = "bench-" + std::to_string(i);
    natsMsgHeader_Set(msg, "Nats-Msg-Id", id.c_str());
    natsStatus s;
    while ((s = js_PublishMsgAsync(js, &msg, &pubOpts)) == NATS_TIMEOUT) {  // MaxPending in flight: wait on
    }
    if (s != NATS_OK) return 1;
  }
  if (js) {
    jsPubOptions done;
    jsPubOptions_Init(&done);
    done.MaxWait = 60000;
    if (js_PublishAsyncComplete(js, &done) != NATS_OK) return 1;
  } else if (natsConnection_FlushTimeout(conn, 60000) != NATS_OK) {
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.0f\n", static_cast<double>(n) / seconds);
  if (js) jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return 0;
}

int receive(const std::string& url, const std::string& subject, long n) {
  natsConnection* conn = connect(url);
  natsSubscription* sub = nullptr;
  if (natsConnection_SubscribeSync(&sub, conn, subject.c_str()) != NATS_OK) return 1;
  natsSubscription_SetPendingLimits(sub, -1, -1);  // a fast publisher must not make it a slow consumer
  natsConnection_Flush(conn);
  std::printf("ready\n");
  std::fflush(stdout);
  for (long i = 0; i < n; ++i) {
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub, 60000) != NATS_OK) return 1;
    natsMsg_Destroy(msg);
  }
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(conn);
  return 0;
}

int reset(const std::string& url, const std::string& stream, const std::string& subject, int replicas) {
  natsConnection* conn = connect(url);
  jsCtx* js = jetStream(conn);
  js_DeleteStream(js, stream.c_str(), nullptr, nullptr);  // absent the first time
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = replicas;
  jsStreamInfo* info = nullptr;
  for (int attempt = 0; attempt < 100; ++attempt) {  // a cluster electing its leaders refuses for a moment
    if (js_AddStream(&info, js, &cfg, nullptr, nullptr) == NATS_OK) break;
    natsConnection_FlushTimeout(conn, 200);
  }
  if (!info) return 1;
  jsStreamInfo_Destroy(info);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return 0;
}

std::uint64_t storedIn(jsCtx* js, const std::string& stream) {
  jsStreamInfo* info = nullptr;
  std::uint64_t n = 0;
  if (js_GetStreamInfo(&info, js, stream.c_str(), nullptr, nullptr) == NATS_OK) {
    n = info->State.Msgs;
    jsStreamInfo_Destroy(info);
  }
  return n;
}

int wait(const std::string& url, const std::string& stream, std::uint64_t n) {
  natsConnection* conn = connect(url);
  jsCtx* js = jetStream(conn);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  bool done = false;
  while (!(done = storedIn(js, stream) >= n) && std::chrono::steady_clock::now() < deadline)
    nats_Sleep(5);  // pacing the questions, not synchronising: the condition is asked again
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return done ? 0 : 1;
}

int count(const std::string& url, const std::string& stream) {
  natsConnection* conn = connect(url);
  jsCtx* js = jetStream(conn);
  std::printf("%llu\n", static_cast<unsigned long long>(storedIn(js, stream)));
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "publish" && argc >= 7 && argc <= 9)
    return publish(argv[2], argv[3], std::atol(argv[4]), std::strtoul(argv[5], nullptr, 10),
                   std::string(argv[6]) == "jetstream", argc > 7 ? std::atol(argv[7]) : 4096, argc > 8 ? argv[8] : "");
  if (mode == "receive" && argc == 5) return receive(argv[2], argv[3], std::atol(argv[4]));
  if (mode == "reset" && argc == 6) return reset(argv[2], argv[3], argv[4], std::atoi(argv[5]));
  if (mode == "count" && argc == 4) return count(argv[2], argv[3]);
  if (mode == "wait" && argc == 5) return wait(argv[2], argv[3], std::strtoull(argv[4], nullptr, 10));
  std::fprintf(stderr, "usage: see the comment at the top of nats_publish_bench.cpp\n");
  return 2;
}
