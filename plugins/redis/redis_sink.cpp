// redis: writes every frame it receives into Redis: XADD to a stream (mode
// xadd, the default: `XADD KEY [MAXLEN ~ N] * seq S epoch E received_ns T
// payload P`) or PUBLISH to a channel (mode publish).
//
// Pipelined: batch_frames frames (or what flush_ms gathered) go out as one
// write, then their replies are read. A frame leaves the instance's hands
// only once Redis acknowledged it: until then it stays in the batch, and a
// lost connection (a Redis restart, a network cut) is one log line, then
// reconnects with backoff and sends again every frame not acknowledged. With
// `on_full: block` nothing is lost; a frame Redis applied whose reply was lost
// with the connection is written twice, and readers deduplicate by
// (epoch, seq) (README, "When one machine is not enough").
//
// hiredis (Debian's 0.14) rather than POCO's Redis client: POCO 1.11's client
// has no stream commands and no pipelining API of its own; hiredis is the
// reference C client, with pipelining built in (redisAppendCommandArgv).
// Neither speaks TLS (hiredis has it from 1.0): see README.

#include <hiredis/hiredis.h>
#include <streamrelay/plugin.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "redis_sink_config.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using streamrelay::plugins::RedisSinkConfig;

struct PendingFrame {
  std::string key;
  std::uint64_t seq;
  std::uint64_t epoch;
  std::int64_t receivedUnixNs;
  std::string payload;
};

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class RedisSink : public streamrelay::Plugin {
 public:
  RedisSink(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), config_(streamrelay::plugins::parseRedisSinkConfig(configYaml)),
        address_(config_.host + ":" + std::to_string(config_.port)) {
    pending_.reserve(config_.batchFrames);
    std::string error;
    if (!connect(error)) reportFailure(error);  // retried on the first write
  }

  ~RedisSink() override {
    if (!pending_.empty()) sendWithRetry();
    if (context_) redisFree(context_);
    if (lost_ > 0) host_.error("gave up at shutdown: " + std::to_string(lost_) + " frames not acknowledged by " + address_);
    host_.info(std::to_string(acked_) + " frames written to redis " + address_);
  }

  void onFrame(const streamrelay::Frame& frame) override {
    if (pending_.empty()) firstPending_ = Clock::now();
    const std::string stream(frame.stream);
    if (stream != lastStream_) {  // the key of the previous frame's stream, kept: one lookup per stream change
      lastStream_ = stream;
      lastKey_ = streamrelay::plugins::keyFor(config_.key, stream);
    }
    pending_.push_back({lastKey_, frame.seq, frame.epoch, frame.receivedUnixNs, std::string(frame.data)});
    if (pending_.size() >= config_.batchFrames || flushIntervalPassed()) sendWithRetry();
  }

  void flush() override {
    if (!pending_.empty() && (flushIntervalPassed() || host_.stopping())) sendWithRetry();
  }

 private:
  bool flushIntervalPassed() const { return Clock::now() - firstPending_ >= config_.flushInterval; }

  bool command(const std::vector<std::string>& args, std::string& error) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (!reply) {
      error = context_->errstr;
      return false;
    }
    const bool ok = reply->type != REDIS_REPLY_ERROR;
    if (!ok) error = std::string(reply->str, reply->len);
    freeReplyObject(reply);
    return ok;
  }

  bool connect(std::string& error) {
    context_ = redisConnectWithTimeout(config_.host.c_str(), config_.port, toTimeval(config_.timeout));
    if (!context_ || context_->err) {
      error = context_ ? context_->errstr : "out of memory";
      disconnect();
      return false;
    }
    redisSetTimeout(context_, toTimeval(config_.timeout));
    if ((!config_.password.empty() && !command({"AUTH", config_.password}, error)) ||
        (config_.database != 0 && !command({"SELECT", std::to_string(config_.database)}, error))) {
      disconnect();
      return false;
    }
    return true;
  }

  void disconnect() {
    if (context_) redisFree(context_);
    context_ = nullptr;
  }

  void append(const PendingFrame& f) {
    const std::string seq = std::to_string(f.seq), epoch = std::to_string(f.epoch),
                      received = std::to_string(f.receivedUnixNs), maxlen = std::to_string(config_.maxlen);
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    auto arg = [&](const std::string& s) {
      argv.push_back(s.data());
      lengths.push_back(s.size());
    };
    static const std::string kXadd = "XADD", kMaxlen = "MAXLEN", kAbout = "~", kAuto = "*", kSeq = "seq",
                             kEpoch = "epoch", kReceived = "received_ns", kPayload = "payload", kPublish = "PUBLISH";
    if (config_.mode == RedisSinkConfig::Mode::Publish) {
      arg(kPublish), arg(f.key), arg(f.payload);
    } else {
      arg(kXadd), arg(f.key);
      if (config_.maxlen > 0) arg(kMaxlen), arg(kAbout), arg(maxlen);
      arg(kAuto), arg(kSeq), arg(seq), arg(kEpoch), arg(epoch), arg(kReceived), arg(received), arg(kPayload), arg(f.payload);
    }
    redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data());
  }

  // Sends the batch and reads its replies. Frames acknowledged before a
  // failure leave the batch; the rest stay for the next try.
  bool sendBatch(std::string& error) {
    if (!context_ && !connect(error)) return false;
    for (const PendingFrame& f : pending_) append(f);
    host_.addCounter("published", pending_.size());
    std::size_t acked = 0;
    bool ok = true;
    for (; acked < pending_.size(); ++acked) {
      void* raw = nullptr;
      if (redisGetReply(context_, &raw) != REDIS_OK) {
        error = context_->errstr;
        ok = false;
        break;
      }
      auto* reply = static_cast<redisReply*>(raw);
      const bool refused = reply->type == REDIS_REPLY_ERROR;
      if (refused) error = "Redis answered: " + std::string(reply->str, reply->len);
      freeReplyObject(reply);
      if (refused) {
        ok = false;
        break;
      }
    }
    acked_ += acked;
    host_.addCounter("acked", acked);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(acked));
    return ok;
  }

  // Sends until every pending frame is acknowledged, or the instance is being
  // stopped (then what is pending is reported as lost).
  void sendWithRetry() {
    auto backoff = std::chrono::milliseconds(100);
    std::size_t sentAgain = 0;
    for (bool retry = false;; retry = true) {
      if (retry) {
        sentAgain += pending_.size();
        host_.addCounter("retried", pending_.size());
      }
      std::string error;
      const bool ok = sendBatch(error);
      host_.setGauge("in_flight", static_cast<double>(pending_.size()));
      if (ok) {
        if (failing_)
          host_.info("redis " + address_ + ": writing again after " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - failingSince_).count()) +
                     " ms; " + std::to_string(sentAgain) + " frames sent again");
        failing_ = false;
        return;
      }
      reportFailure(error);
      disconnect();  // a new connection on the next try: the server may be back
      if (host_.stopping()) {  // no more retries: counted, reported once at destruction
        lost_ += pending_.size();
        pending_.clear();
        return;
      }
      // Backoff between retries of an unreachable server, not synchronisation.
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void reportFailure(const std::string& error) {
    host_.addCounter("errors", 1);
    if (failing_) return;  // one line per outage
    failing_ = true;
    failingSince_ = Clock::now();
    host_.error("redis " + address_ + ": " + error + "; " + std::to_string(pending_.size()) +
                " frames held, retrying with backoff");
  }

  streamrelay::Host& host_;
  const RedisSinkConfig config_;
  const std::string address_;
  redisContext* context_ = nullptr;
  std::vector<PendingFrame> pending_;
  std::string lastStream_ = "\x01", lastKey_;
  Clock::time_point firstPending_;
  bool failing_ = false;
  Clock::time_point failingSince_;
  std::uint64_t acked_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN(RedisSink, "redis", "writes every frame into a Redis stream (XADD) or channel (PUBLISH)")
