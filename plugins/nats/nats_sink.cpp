// SPDX-License-Identifier: Apache-2.0
// nats: publishes every frame it receives to NATS, with cnats (Debian's 3.4).
//
// Core NATS (no `jetstream:`): a PUB per frame to `subject` ({stream}
// replaced), fire and forget; cnats buffers what is published during a
// reconnect (8 MiB) and the server keeps nothing: as lossless as core NATS is.
// cnats' flusher thread sends what is published; a flush that waits for the
// server's answer (a PING round trip) is done only once the queue stays idle,
// not after every drain: with small drains (a few 4 KiB frames each) that
// round trip was most of the time a frame took.
//
// JetStream (`jetstream:`): every frame is published asynchronously with the
// header `Nats-Msg-Id: <epoch>-<stream>-<seq>` and stays in cnats' hands
// until the server acknowledged it: at most max_pending are unacknowledged
// (then onFrame waits, and with `on_full: block` so does the upstream). An
// acknowledgement that does not come within ack_timeout_ms (the node died,
// the connection moved to another server) or that reports an error sends the
// frame again with the same id, so the server stores it once whatever was
// lost in between (its duplicate window, 2 minutes by default). Reconnects
// and failover between `servers` are cnats' own; each outage is one log line
// when it begins and one when it ends.
//
// ABI 1.2: frames come in batches (onFrames); counters and the gauge go
// through handles, updated once per batch and when idle. A frame is not
// retained: cnats copies every message it is given (natsMsg_Create, its
// connection buffer) and keeps that copy until the server acknowledged it.

#include <dlfcn.h>
#include <nats/nats.h>
#include <streamrelay/plugin.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "nats_connection_options.hpp"
#include "nats_sink_config.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// cnats keeps library-wide state and threads (timers, reconnects) in libnats:
// it must stay mapped when this plugin is unloaded (removed, replaced), or
// those threads would run unmapped code. dlopen with RTLD_NODELETE pins it.
void pinLibnats() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&natsConnection_Connect), &info) != 0 && info.dli_fname)
    ::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}
using streamrelay::plugins::NatsSinkConfig;

std::string statusText(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  return last && *last ? last : natsStatus_GetText(s);
}

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw std::runtime_error(what + ": " + statusText(s));
}

class NatsSink : public streamrelay::Plugin {
 public:
  NatsSink(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), config_(streamrelay::plugins::parseNatsSinkConfig(configYaml)),
        publishedCounter_(host.counter("published")), ackedCounter_(host.counter("acked")),
        retriedCounter_(host.counter("retried")), disconnects_(host.counter("disconnects")),
        inFlight_(host.gauge("in_flight")) {
    pinLibnats();
    natsOptions* opts = nullptr;
    check(natsOptions_Create(&opts), "nats options");
    natsStatus s = streamrelay::plugins::applyNatsConnection(config_, opts);
    // With a connected callback the first connect is asynchronous; without
    // one cnats retries inside natsConnection_Connect (forever, with
    // MaxReconnect -1), so a server down at start would hold create().
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, true, &NatsSink::onConnected, this);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &NatsSink::onDisconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &NatsSink::onReconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &NatsSink::onClosed, this);
    if (s != NATS_OK) {
      const std::string why = statusText(s);
      natsOptions_Destroy(opts);
      throw std::runtime_error("nats options: " + why);
    }
    // With RetryOnFailedConnect a server that is down at start is not an
    // error: publishes wait in the reconnect buffer (core) or for acks (JetStream).
    s = natsConnection_Connect(&conn_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) throw std::runtime_error("nats connect: " + statusText(s));
    if (s == NATS_NOT_YET_CONNECTED) host_.warning("nats: no server answers yet (" + streamrelay::plugins::serverForLog(config_.servers.front()) + ", ...); retrying");
    if (config_.jetstream) {
      jsOptions jsOpts;
      jsOptions_Init(&jsOpts);
      jsOpts.PublishAsync.MaxPending = config_.maxPending;
      jsOpts.PublishAsync.AckHandler = &NatsSink::onAck;
      jsOpts.PublishAsync.AckHandlerClosure = this;
      jsOpts.PublishAsync.StallWait = 200;
      check(natsConnection_JetStream(&js_, conn_, &jsOpts), "nats JetStream");
    }
  }

  ~NatsSink() override {
    drain(std::chrono::milliseconds(5000));
    reportCounts();
    const std::uint64_t unacked = published_ - acked_.load();
    if (config_.jetstream && unacked > 0)
      host_.error("gave up at shutdown: " + std::to_string(unacked) + " frames not acknowledged by NATS");
    // cnats calls back from its own threads: the connection is closed and
    // its closed callback awaited before anything the callbacks touch goes.
    closing_.store(true);
    natsConnection_Close(conn_);
    {
      std::unique_lock<std::mutex> lock(closedMutex_);
      closedSignal_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
    }
    if (js_) jsCtx_Destroy(js_);
    for (natsMsg* m : retry_) natsMsg_Destroy(m);
    natsConnection_Destroy(conn_);
    host_.info(std::to_string(config_.jetstream ? acked_.load() : published_) + " frames published to NATS");
  }

  void onFrames(const streamrelay::Frames& frames) override {
    framesSinceFlush_ = true;
    if (config_.jetstream) publishRetries();
    for (const streamrelay::Frame& frame : frames) {
      if (frame.stream != lastStream_) {  // the previous frame's subject, kept: one lookup per stream change
        lastStream_ = std::string(frame.stream);
        lastSubject_ = subjectFor(lastStream_);
        idPrefix_ = std::to_string(frame.epoch) + "-" + lastStream_ + "-";
      }
      if (config_.jetstream) publishToJetStream(frame);
      else publishCore(frame);
      ++published_;
    }
    if (++batches_ % 16 == 0) reportCounts();  // and when idle: a host call per frame would cost more than the publish
  }

  // After each drain (frames came since the last call) and every 100 ms
  // while the queue is empty.
  void flush() override {
    reportCounts();
    const bool drained = framesSinceFlush_;
    framesSinceFlush_ = false;
    if (!config_.jetstream) {
      // Idle: the server confirms it has everything published so far.
      if (!drained && published_ > confirmed_ && natsConnection_FlushTimeout(conn_, 1000) == NATS_OK)
        confirmed_ = published_;
      return;
    }
    publishRetries();
  }

 private:
  std::string subjectFor(const std::string& stream) const {
    std::string subject = config_.subject;
    for (std::size_t at = subject.find("{stream}"); at != std::string::npos; at = subject.find("{stream}", at + stream.size()))
      subject.replace(at, 8, stream);
    return subject;
  }

  void publishCore(const streamrelay::Frame& frame) {
    const natsStatus s =
        natsConnection_Publish(conn_, lastSubject_.c_str(), frame.data.data(), static_cast<int>(frame.data.size()));
    if (s != NATS_OK) throw std::runtime_error("nats publish: " + statusText(s));
  }

  void publishToJetStream(const streamrelay::Frame& frame) {
    natsMsg* msg = nullptr;
    check(natsMsg_Create(&msg, lastSubject_.c_str(), nullptr, frame.data.data(), static_cast<int>(frame.data.size())),
          "nats message");
    char seq[24];
    const auto end = std::to_chars(seq, seq + sizeof seq, frame.seq).ptr;
    id_.assign(idPrefix_).append(seq, static_cast<std::size_t>(end - seq));
    natsMsgHeader_Set(msg, "Nats-Msg-Id", id_.c_str());
    publish(msg);
  }

  // The figures, to the host through handles: every 16 batches and when idle.
  void reportCounts() {
    if (published_ > publishedReported_) publishedCounter_.add(published_ - publishedReported_);
    publishedReported_ = published_;
    const std::uint64_t acked = acked_.load();
    if (acked > ackedReported_) ackedCounter_.add(acked - ackedReported_);
    ackedReported_ = acked;
    if (config_.jetstream) inFlight_.set(static_cast<double>(published_ - acked));
  }

  // Hands `msg` to cnats, waiting while max_pending are unacknowledged.
  void publish(natsMsg* msg) {
    jsPubOptions pubOpts;
    jsPubOptions_Init(&pubOpts);
    pubOpts.MaxWait = config_.ackTimeout.count();
    if (!config_.stream.empty()) pubOpts.ExpectStream = config_.stream.c_str();
    for (;;) {
      const natsStatus s = js_PublishMsgAsync(js_, &msg, &pubOpts);
      if (s == NATS_OK) return;
      if (s != NATS_TIMEOUT) {  // NATS_TIMEOUT: max_pending in flight for StallWait; wait on
        natsMsg_Destroy(msg);
        throw std::runtime_error("nats publish: " + statusText(s));
      }
    }
  }

  // Frames whose acknowledgement failed or timed out, sent again (same id).
  void publishRetries() {
    if (!retryWaiting_.load(std::memory_order_acquire)) return;  // no lock taken while nothing failed
    std::vector<natsMsg*> again;
    {
      std::lock_guard<std::mutex> lock(retryMutex_);
      again.swap(retry_);
      retryWaiting_.store(false, std::memory_order_relaxed);
    }
    if (again.empty()) return;
    retriedCounter_.add(again.size());
    for (natsMsg* m : again) publish(m);
  }

  // Waits, up to `limit` and while connected, until every frame published was acknowledged.
  void drain(std::chrono::milliseconds limit) {
    // No server: nothing will be flushed or acknowledged; waiting would only
    // hold up the relay's shutdown (the host abandons a plugin that is late).
    auto connected = [&] { return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED; };
    if (!connected()) return;
    if (!config_.jetstream) {
      natsConnection_FlushTimeout(conn_, limit.count());
      return;
    }
    const auto deadline = Clock::now() + limit;
    while (acked_.load() < published_ && Clock::now() < deadline && connected()) {
      publishRetries();
      jsPubOptions opts;
      jsPubOptions_Init(&opts);
      opts.MaxWait = 100;
      js_PublishAsyncComplete(js_, &opts);  // returns at the first of: all acknowledged, 100 ms
    }
  }

  // cnats' threads.
  static void onAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
    auto* self = static_cast<NatsSink*>(closure);
    if (ack) {
      self->acked_.fetch_add(1);
      natsMsg_Destroy(msg);
      return;
    }
    (void)error;  // a timeout or the server's error: the same frame, the same id, again
    std::lock_guard<std::mutex> lock(self->retryMutex_);
    self->retry_.push_back(msg);  // kept: natsMsg_Destroy is not called for it here
    self->retryWaiting_.store(true, std::memory_order_release);
  }

  static void onClosed(natsConnection*, void* closure) {
    auto* self = static_cast<NatsSink*>(closure);
    std::lock_guard<std::mutex> lock(self->closedMutex_);
    self->closed_ = true;
    self->closedSignal_.notify_all();
  }

  static void onDisconnected(natsConnection*, void* closure) {
    auto* self = static_cast<NatsSink*>(closure);
    if (self->closing_.load()) return;  // our own close at shutdown
    self->disconnects_.add(1);
    self->host_.warning("nats: disconnected; reconnecting (frames are held until acknowledged)");
  }

  static void onConnected(natsConnection* conn, void* closure) {
    auto* self = static_cast<NatsSink*>(closure);
    char url[256] = {0};
    natsConnection_GetConnectedUrl(conn, url, sizeof url);
    self->host_.info("nats: connected to " + streamrelay::plugins::serverForLog(url));
  }

  static void onReconnected(natsConnection* conn, void* closure) {
    auto* self = static_cast<NatsSink*>(closure);
    char url[256] = {0};
    natsConnection_GetConnectedUrl(conn, url, sizeof url);
    self->host_.info("nats: reconnected to " + streamrelay::plugins::serverForLog(url));
  }

  streamrelay::Host& host_;
  const NatsSinkConfig config_;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  streamrelay::Counter publishedCounter_, ackedCounter_, retriedCounter_, disconnects_;
  streamrelay::Gauge inFlight_;
  std::string lastStream_ = "\x01", lastSubject_;
  std::string idPrefix_, id_;              // "EPOCH-STREAM-" of the last stream; the last id
  std::uint64_t published_ = 0;            // the worker thread's
  std::uint64_t publishedReported_ = 0;    // published, already added to the host's counter
  std::uint64_t ackedReported_ = 0;
  std::uint64_t batches_ = 0;
  bool framesSinceFlush_ = false;          // onFrames was called since the last flush()
  std::uint64_t confirmed_ = 0;            // core: published_ at the last flush the server answered
  std::atomic<std::uint64_t> acked_{0};    // cnats' ack thread adds
  std::mutex retryMutex_;
  std::vector<natsMsg*> retry_;            // guarded by retryMutex_
  std::atomic<bool> retryWaiting_{false};  // retry_ may hold messages
  std::atomic<bool> closing_{false};
  std::mutex closedMutex_;
  std::condition_variable closedSignal_;
  bool closed_ = false;                    // guarded by closedMutex_: cnats' callbacks are over
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(NatsSink, "nats", "publishes every frame to NATS (core or JetStream with acks)", 0,
                                    streamrelay::plugins::natsSinkConfigKeys())
