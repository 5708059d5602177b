// SPDX-License-Identifier: Apache-2.0
// The `nats` source type (sdk/include/streamrelay/source_plugin.h), in the
// same nats.so as the sink: the relay core links no libnats.
//
// Core NATS (no `jetstream:`): a subscription to `subject`; every message is
// a frame numbered by the relay. Nothing resumes: what was published while
// no connection was up is not NATS's to give again.
//
// JetStream (`jetstream:`): an ordered consumer on `jetstream.stream`
// filtered by `subject` (cnats: flow control, heartbeats, a new consumer
// after a missed message or a lost connection, reconnect and failover
// between `servers`). A message with the relay's own mark (the nats sink's
// `Nats-Msg-Id: EPOCH-STREAM-SEQ`) keeps the writer's epoch and seq: the
// stream is an exact mirror of the writer's (the host drops a seq it has had
// and counts jumps as gaps; frames the sink's retries stored out of order
// are held for jetstream.reorder_window_ms until the ones between come).
// One writer stream is mirrored: jetstream.writer_stream, or the STREAM of
// the first marked message; marks of another are refused (counted). One
// without a mark, or with a mark that does not read
// (counted: malformed_msg_ids), is numbered by the relay. The JetStream
// stream sequence of each message is its provider position: a relay
// restarted on its stream's log starts the consumer after the last one it
// kept. If that sequence is no longer in the stream (purged, aged out), the
// consumer starts at the stream's first and the skipped sequences are
// counted (purged_messages); the writer's seqs then show the gap too.
//
// Threads: pump runs on the relay's source thread (NextMsg on a synchronous
// subscription); cnats' callbacks only report the connection's state.

#include <dlfcn.h>
#include <nats/nats.h>
#include <streamrelay/source_plugin.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "nats_connection_options.hpp"
#include "nats_source_config.hpp"

namespace {

using streamrelay::plugins::NatsSourceConfig;

constexpr int kMaxPerPump = 4096;  // messages one pump hands over at most (one batch)
constexpr std::int64_t kMaxPendingBytes = std::int64_t{1} << 30;
constexpr int kNetworkWaitMs = 1000;  // a connect, a subscribe's flush, a JetStream request: the longest a stop waits for one

void pinLibnats() {  // as the sink: cnats' threads must outlive an unloaded copy of this library
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&natsConnection_Connect), &info) != 0 && info.dli_fname)
    ::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

std::string statusText(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  return last && *last ? last : natsStatus_GetText(s);
}

class NatsSource {
 public:
  NatsSource(const streamrelay_source_host_api* host, const std::string& yaml)
      : host_(host), config_(streamrelay::plugins::parseNatsSourceConfig(yaml)) {
    if (host->struct_size < offsetof(streamrelay_source_host_api, protocol_error) + sizeof host->protocol_error)
      throw std::runtime_error("the relay's source host API is older than this plugin's");
    pinLibnats();
    writerStream_ = config_.writerStream;
    if (config_.jetstream &&
        host->struct_size >= offsetof(streamrelay_source_host_api, set_reorder_window) + sizeof host->set_reorder_window)
      host_->set_reorder_window(host_->host, static_cast<uint32_t>(config_.reorderWindowMs));
    char position[64] = "";
    const std::size_t size = host_->provider_position(host_->host, position, sizeof position);
    if (size > 0 && config_.jetstream) {
      std::uint64_t seq = 0;
      const auto [end, error] = std::from_chars(position, position + std::min(size, sizeof position - 1), seq);
      if (size < sizeof position && error == std::errc() && end == position + size && seq > 0) {
        lastStreamSeq_ = seq;
      } else {
        log(STREAMRELAY_LOG_WARNING, "the provider position kept with the stream is not a JetStream sequence: "
                                     "starting as configured");
      }
    }
    if (natsOptions_Create(&opts_) != NATS_OK) throw std::runtime_error("nats options: out of memory");
    natsStatus s = streamrelay::plugins::applyNatsConnection(config_, opts_);
    // A server that does not answer holds a connect up to this long: the
    // first connect is on the source thread, and a stop waits for it.
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts_, kNetworkWaitMs);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts_, true, &NatsSource::onConnected, this);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts_, &NatsSource::onDisconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts_, &NatsSource::onReconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts_, &NatsSource::onClosed, this);
    if (s != NATS_OK) {
      const std::string why = statusText(s);
      natsOptions_Destroy(opts_);
      throw std::runtime_error("nats options: " + why);
    }
    // No connect here: create does not wait on the network (the first pump connects).
  }

  // Once natsConnection_Close was called, cnats calls the closed callback
  // (its own thread), and until then it may call any of the callbacks, all
  // of which use this object, the host and this library's code. So destroy
  // waits for it without giving up (a warning every 5 s while it waits):
  // freeing this object, and the host unloading the library, before that
  // would let a late callback run on freed memory. The connection is closed
  // before the subscription is destroyed: destroying a live JetStream
  // subscription deletes its consumer with a request that may wait; closed,
  // it is a local free (the server drops the ordered consumer, ephemeral,
  // once no one listens).
  ~NatsSource() {
    closing_.store(true);
    if (conn_) {
      natsConnection_Close(conn_);
      std::unique_lock<std::mutex> lock(closedMutex_);
      while (!closedSignal_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; }))
        log(STREAMRELAY_LOG_WARNING, "still waiting for the NATS library to close the connection");
    }
    if (sub_) natsSubscription_Destroy(sub_);
    if (js_) jsCtx_Destroy(js_);
    if (conn_) natsConnection_Destroy(conn_);
    natsOptions_Destroy(opts_);
    host_->set_connected(host_->host, 0);
  }

  // STREAMRELAY_OK, or STREAMRELAY_ERROR with the reason in `why`.
  int pump(int timeoutMs, std::string& why) {
    if (stopping()) return STREAMRELAY_OK;  // the relay stops this source: nothing more is begun
    if (!conn_ && !connect(why)) return STREAMRELAY_ERROR;
    if (!sub_ && !subscribe(why)) return stopping() ? STREAMRELAY_OK : STREAMRELAY_ERROR;
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, timeoutMs < 0 ? 0 : timeoutMs);
    for (int taken = 0; s == NATS_OK;) {
      take(msg);
      natsMsg_Destroy(msg);
      msg = nullptr;
      if (++taken == kMaxPerPump) return STREAMRELAY_OK;
      s = natsSubscription_NextMsg(&msg, sub_, 0);  // those already here, without waiting
    }
    if (s == NATS_TIMEOUT) return STREAMRELAY_OK;
    if (s == NATS_SLOW_CONSUMER) {  // cnats dropped messages it could not hold: core NATS loses them
      host_->add_counter(host_->host, "slow_consumer_drops", 1);
      why = "messages dropped: the relay reads slower than NATS delivers (max_pending_messages)";
      return STREAMRELAY_ERROR;
    }
    // The subscription is gone (closed connection, an error cnats could not
    // recover from): a new one, after the last message taken, on the next call.
    why = "subscription to " + config_.subject + " ended: " + statusText(s) + "; subscribing again";
    natsSubscription_Destroy(sub_);
    sub_ = nullptr;
    return STREAMRELAY_ERROR;
  }

 private:
  bool stopping() const { return host_->stopping(host_->host) != 0; }

  // The first connect: each server tried once (kNetworkWaitMs at most each);
  // if none answers, cnats goes on trying in the background (onConnected).
  bool connect(std::string& why) {
    const natsStatus s = natsConnection_Connect(&conn_, opts_);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
      conn_ = nullptr;
      why = "nats connect: " + statusText(s);
      return false;
    }
    if (s == NATS_OK) {
      host_->set_connected(host_->host, 1);
      log(STREAMRELAY_LOG_INFO, "connected to " + streamrelay::plugins::serverForLog(config_.servers.front()));
    } else {
      log(STREAMRELAY_LOG_WARNING, "no NATS server answers yet (" +
                                       streamrelay::plugins::serverForLog(config_.servers.front()) + ", ...); retrying");
    }
    return true;
  }

  // Every round trip below (a core subscribe's flush, a JetStream request)
  // waits kNetworkWaitMs at most, and none is begun once the relay stops this
  // source: a stop waits about 1 s at most.
  bool subscribe(std::string& why) {
    if (natsConnection_Status(conn_) != NATS_CONN_STATUS_CONNECTED) {
      why = "not connected to NATS (" + streamrelay::plugins::serverForLog(config_.servers.front()) + ", ...)";
      return false;
    }
    natsStatus s;
    if (!config_.jetstream) {
      s = natsConnection_SubscribeSync(&sub_, conn_, config_.subject.c_str());
      if (s == NATS_OK) s = natsSubscription_SetPendingLimits(sub_, config_.maxPendingMessages, kMaxPendingBytes);
      // cnats sends the SUB without waiting: only once the server answers a
      // PING sent after it is every message published from then on this
      // source's. "subscribed" is said after that, never before; once the
      // relay stops this source the round trip is not begun (the pump ends).
      if (s == NATS_OK) s = stopping() ? NATS_ILLEGAL_STATE : natsConnection_FlushTimeout(conn_, kNetworkWaitMs);
      if (s != NATS_OK) return failed(s, "subscribe to " + config_.subject, why);
      log(STREAMRELAY_LOG_INFO, "subscribed to " + config_.subject + " (core NATS)");
      return true;
    }
    if (!js_) {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Wait = kNetworkWaitMs;
      s = natsConnection_JetStream(&js_, conn_, &jo);
      if (s != NATS_OK) return failed(s, "JetStream", why);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = config_.stream.c_str();
    so.Ordered = true;
    std::string from;
    if (lastStreamSeq_ > 0) {
      checkPurged();
      if (stopping()) {
        why = "stopping";
        return false;
      }
      so.Config.DeliverPolicy = js_DeliverByStartSequence;
      so.Config.OptStartSeq = lastStreamSeq_ + 1;
      from = "after stream sequence " + std::to_string(lastStreamSeq_);
    } else {
      switch (config_.deliver) {
        case NatsSourceConfig::Deliver::New: so.Config.DeliverPolicy = js_DeliverNew; from = "new messages"; break;
        case NatsSourceConfig::Deliver::All: so.Config.DeliverPolicy = js_DeliverAll; from = "the first message"; break;
        case NatsSourceConfig::Deliver::FromSeq:
          so.Config.DeliverPolicy = js_DeliverByStartSequence;
          so.Config.OptStartSeq = config_.fromSeq;
          from = "stream sequence " + std::to_string(config_.fromSeq);
          break;
        case NatsSourceConfig::Deliver::FromTime:
          so.Config.DeliverPolicy = js_DeliverByStartTime;
          so.Config.OptStartTime = config_.fromTimeNs;
          from = "the configured time";
          break;
      }
    }
    jsErrCode code = static_cast<jsErrCode>(0);
    s = js_SubscribeSync(&sub_, js_, config_.subject.c_str(), nullptr, &so, &code);
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(sub_, config_.maxPendingMessages, kMaxPendingBytes);
    if (s != NATS_OK)
      return failed(s, "JetStream consumer on stream " + config_.stream + " (" + config_.subject + ")" +
                           (code ? " error " + std::to_string(static_cast<int>(code)) : std::string()), why);
    log(STREAMRELAY_LOG_INFO, "reading JetStream stream " + config_.stream + " (" + config_.subject + ") from " + from);
    return true;
  }

  // Resuming after lastStreamSeq_: if the stream no longer has the next
  // sequence, what lies between is lost to this source: counted, logged.
  void checkPurged() {
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&info, js_, config_.stream.c_str(), nullptr, &code) != NATS_OK || !info) return;
    const std::uint64_t first = info->State.FirstSeq;
    jsStreamInfo_Destroy(info);
    if (first > lastStreamSeq_ + 1) {
      host_->add_counter(host_->host, "purged_messages", first - lastStreamSeq_ - 1);
      log(STREAMRELAY_LOG_WARNING, "stream sequences " + std::to_string(lastStreamSeq_ + 1) + ".." +
                                       std::to_string(first - 1) + " are no longer in stream " + config_.stream +
                                       ": a gap; going on from " + std::to_string(first));
    }
  }

  bool failed(natsStatus s, const std::string& what, std::string& why) {
    why = what + ": " + statusText(s);
    if (sub_) natsSubscription_Destroy(sub_);
    sub_ = nullptr;
    return false;
  }

  void take(natsMsg* msg) {
    const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg));
    const int length = natsMsg_GetDataLength(msg);
    const std::size_t size = length > 0 && data ? static_cast<std::size_t>(length) : 0;
    static const uint8_t none = 0;
    if (!data) data = &none;
    if (!config_.jetstream) {
      host_->publish(host_->host, data, size, nullptr, 0, nullptr, 0);
      return;
    }
    char position[24];
    std::size_t positionSize = 0;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK && meta) {
      const std::uint64_t seq = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
      if (seq > lastStreamSeq_) {
        lastStreamSeq_ = seq;
        positionSize = static_cast<std::size_t>(std::to_chars(position, position + sizeof position, seq).ptr - position);
      }
    } else {
      host_->protocol_error(host_->host);  // a JetStream delivery without its reply subject's metadata
    }
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) {
      if (const auto mark = streamrelay::plugins::parseMsgId(id, std::strlen(id))) {
        // One writer stream is mirrored (a wildcard subject may carry several,
        // each numbered on its own): the configured one or the first read.
        if (writerStream_.empty()) writerStream_ = mark->stream;
        if (mark->stream != writerStream_) {
          refuseMark(mark->epoch, mark->seq, "a mark of writer stream '" + mark->stream + "', not '" + writerStream_ +
                                                 "' (the one mirrored)");
          return;
        }
        host_->publish_mirrored(host_->host, mark->epoch, mark->seq, data, size, nullptr, 0,
                                positionSize ? position : nullptr, positionSize);
        return;
      }
      host_->add_counter(host_->host, "malformed_msg_ids", 1);
      if (!malformedLogged_) {
        malformedLogged_ = true;
        log(STREAMRELAY_LOG_WARNING, "a Nats-Msg-Id that is not EPOCH-STREAM-SEQ: such messages are numbered here "
                                     "(counted: malformed_msg_ids; said once)");
      }
    }
    host_->publish(host_->host, data, size, nullptr, 0, positionSize ? position : nullptr, positionSize);
  }

  void refuseMark(std::uint64_t epoch, std::uint64_t seq, const std::string& why) {
    if (host_->struct_size >= offsetof(streamrelay_source_host_api, refuse_mark) + sizeof host_->refuse_mark) {
      host_->refuse_mark(host_->host, epoch, seq, why.c_str());
      return;
    }
    host_->add_counter(host_->host, "refused_marks", 1);  // an older relay: no refused of its own to count in
  }

  void log(int level, const std::string& text) const { host_->log(host_->host, level, ("nats: " + text).c_str()); }

  static void onClosed(natsConnection*, void* closure) {
    auto* self = static_cast<NatsSource*>(closure);
    std::lock_guard<std::mutex> lock(self->closedMutex_);
    self->closed_ = true;
    self->closedSignal_.notify_all();
  }
  static void onDisconnected(natsConnection*, void* closure) {
    auto* self = static_cast<NatsSource*>(closure);
    if (self->closing_.load()) return;
    self->host_->set_connected(self->host_->host, 0);
    self->host_->add_counter(self->host_->host, "disconnects", 1);
    self->log(STREAMRELAY_LOG_WARNING, "disconnected; reconnecting");
  }
  static void onConnected(natsConnection* conn, void* closure) {
    auto* self = static_cast<NatsSource*>(closure);
    char url[256] = {0};
    natsConnection_GetConnectedUrl(conn, url, sizeof url);
    self->host_->set_connected(self->host_->host, 1);
    self->log(STREAMRELAY_LOG_INFO, "connected to " + streamrelay::plugins::serverForLog(url));
  }
  static void onReconnected(natsConnection* conn, void* closure) {
    auto* self = static_cast<NatsSource*>(closure);
    char url[256] = {0};
    natsConnection_GetConnectedUrl(conn, url, sizeof url);
    self->host_->set_connected(self->host_->host, 1);
    self->log(STREAMRELAY_LOG_INFO, "reconnected to " + streamrelay::plugins::serverForLog(url));
  }

  const streamrelay_source_host_api* host_;
  const NatsSourceConfig config_;
  natsOptions* opts_ = nullptr;
  natsConnection* conn_ = nullptr;  // the source thread's; null until the first pump connects
  jsCtx* js_ = nullptr;
  natsSubscription* sub_ = nullptr;  // the source thread's
  std::uint64_t lastStreamSeq_ = 0;  // the JetStream sequence of the last message taken (0: none)
  bool malformedLogged_ = false;
  std::string writerStream_;  // the writer stream mirrored (pump's thread)
  std::atomic<bool> closing_{false};
  std::mutex closedMutex_;
  std::condition_variable closedSignal_;
  bool closed_ = false;
};

void writeError(char* error, std::size_t size, const char* text) {
  if (error && size > 0) std::snprintf(error, size, "%s", text);
}

void* createSource(const streamrelay_source_host_api* host, const char* yaml, char* error, size_t errorSize) {
  try {
    if (!host) throw std::runtime_error("no host API");
    return new NatsSource(host, yaml ? yaml : "{}");
  } catch (const std::exception& e) {
    writeError(error, errorSize, e.what());
  } catch (...) {
    writeError(error, errorSize, "unknown error");
  }
  return nullptr;
}

int pumpSource(void* self, int timeoutMs, char* error, size_t errorSize) {
  try {
    std::string why;
    const int rc = static_cast<NatsSource*>(self)->pump(timeoutMs, why);
    if (rc != STREAMRELAY_OK) writeError(error, errorSize, why.c_str());
    return rc;
  } catch (const std::exception& e) {
    writeError(error, errorSize, e.what());
  } catch (...) {
    writeError(error, errorSize, "unknown error");
  }
  return STREAMRELAY_ERROR;
}

// The config's rules, as create reads them, without connecting: a JetStream
// stream can be read again after a position, core NATS cannot.
int checkSource(const char* yaml, uint32_t* properties, char* error, size_t errorSize) {
  try {
    const NatsSourceConfig config = streamrelay::plugins::parseNatsSourceConfig(yaml ? yaml : "{}");
    if (properties && config.jetstream) *properties |= STREAMRELAY_SOURCE_REPLAYABLE;
    return STREAMRELAY_OK;
  } catch (const std::exception& e) {
    writeError(error, errorSize, e.what());
  } catch (...) {
    writeError(error, errorSize, "unknown error");
  }
  return STREAMRELAY_ERROR;
}

void destroySource(void* self) {
  try {
    delete static_cast<NatsSource*>(self);
  } catch (...) {  // nothing to tell: destroy has no error to return
  }
}

}  // namespace

STREAMRELAY_PLUGIN_EXPORT const streamrelay_source_plugin* streamrelay_source_entry(void) {
  try {
    static const streamrelay_source_plugin descriptor = {
        sizeof(streamrelay_source_plugin),
        STREAMRELAY_ABI_VERSION,
        "nats",
        "reads a NATS subject, or a JetStream stream with an ordered consumer; a relay's nats sink's frames keep "
        "their (epoch, seq), as a mirror",
        streamrelay::plugins::natsSourceConfigKeys().table(),
        &createSource,
        &pumpSource,
        &destroySource,
        &checkSource,
    };
    return &descriptor;
  } catch (...) {  // no memory for the key table: no descriptor, the host says so
    return nullptr;
  }
}
