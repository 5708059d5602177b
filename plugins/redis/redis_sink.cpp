// SPDX-License-Identifier: Apache-2.0
// redis: writes every frame it receives into Redis: XADD to a stream (mode
// xadd, the default: `XADD KEY [MAXLEN ~ N] * seq S epoch E received_ns T
// payload P`) or PUBLISH to a channel (mode publish).
//
// Pipelined: batch_frames frames (or what flush_ms gathered), encoded in RESP
// as they arrive, go out as one write; their replies are read once the next
// batch is written, so two batches are in flight. A frame leaves the instance's hands
// only once Redis acknowledged it: until then it stays in the batch, and a
// lost connection (a Redis restart, a network cut) is one log line, then
// reconnects with backoff and sends again every frame not acknowledged. With
// `on_full: block` nothing is lost; a frame Redis applied whose reply was lost
// with the connection is written twice, and readers deduplicate by
// (epoch, seq) (docs/plugins.md, "redis").
//
// hiredis (Debian's 0.14) rather than POCO's Redis client: POCO 1.11's client
// has no stream commands and no pipelining API of its own; hiredis is the
// reference C client, with pipelining built in (redisAppendCommandArgv).
// Neither speaks TLS (hiredis has it from 1.0): see docs/plugins.md.

#include <hiredis/hiredis.h>
#include <streamrelay/plugin.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/backoff.hpp"
#include "redis_sink_config.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using streamrelay::plugins::RedisSinkConfig;

// Appends one RESP bulk string.
void appendBulk(std::string& out, std::string_view data) {
  out += '$';
  out += std::to_string(data.size());
  out += "\r\n";
  out.append(data.data(), data.size());
  out += "\r\n";
}

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class RedisSink : public streamrelay::Plugin {
 public:
  RedisSink(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), config_(streamrelay::plugins::parseRedisSinkConfig(configYaml)),
        address_(config_.host + ":" + std::to_string(config_.port)) {
    frameEnds_.reserve(config_.batchFrames);
    std::string error;
    if (!connect(error)) reportFailure(error);  // retried on the first write
  }

  ~RedisSink() override {
    if (!frameEnds_.empty()) sendWithRetry(true);
    if (context_) redisFree(context_);
    if (lost_ > 0) host_.error("gave up at shutdown: " + std::to_string(lost_) + " frames not acknowledged by " + address_);
    host_.info(std::to_string(acked_) + " frames written to redis " + address_);
  }

  void onFrame(const streamrelay::Frame& frame) override {
    if (unsentFrames() == 0) firstPending_ = Clock::now();
    if (frame.stream != lastStream_) {  // the key of the previous frame's stream, kept: one lookup per stream change
      lastStream_ = std::string(frame.stream);
      lastKey_ = streamrelay::plugins::keyFor(config_.key, lastStream_);
    }
    encode(frame);
    frameEnds_.push_back(batch_.size());
    if (unsentFrames() >= config_.batchFrames || flushIntervalPassed()) sendWithRetry(false);
  }

  // When the queue is idle (and at the end): everything written and acknowledged.
  void flush() override {
    if (!frameEnds_.empty() && (flushIntervalPassed() || host_.stopping() || unsentFrames() == 0)) sendWithRetry(true);
  }

 private:
  bool flushIntervalPassed() const { return unsentFrames() > 0 && Clock::now() - firstPending_ >= config_.flushInterval; }
  std::size_t unsentFrames() const { return frameEnds_.size() - written_; }

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
    written_ = 0;  // a new connection has been sent nothing
  }

  // The frame's command, in RESP, at the end of the batch: the batch is what
  // is held until Redis acknowledges it, and what is written, as it is.
  void encode(const streamrelay::Frame& f) {
    if (config_.mode == RedisSinkConfig::Mode::Publish) {
      batch_ += "*3\r\n$7\r\nPUBLISH\r\n";
      appendBulk(batch_, lastKey_);
      appendBulk(batch_, f.data);
      return;
    }
    batch_ += config_.maxlen > 0 ? "*14\r\n$4\r\nXADD\r\n" : "*11\r\n$4\r\nXADD\r\n";
    appendBulk(batch_, lastKey_);
    if (config_.maxlen > 0) {
      batch_ += "$6\r\nMAXLEN\r\n$1\r\n~\r\n";
      appendBulk(batch_, std::to_string(config_.maxlen));
    }
    batch_ += "$1\r\n*\r\n$3\r\nseq\r\n";
    appendBulk(batch_, std::to_string(f.seq));
    batch_ += "$5\r\nepoch\r\n";
    appendBulk(batch_, std::to_string(f.epoch));
    batch_ += "$11\r\nreceived_ns\r\n";
    appendBulk(batch_, std::to_string(f.receivedUnixNs));
    batch_ += "$7\r\npayload\r\n";
    appendBulk(batch_, f.data);
  }

  // Two batches in flight: writes the frames not yet written, then reads the
  // replies to the batch written before (all replies with `all`), so Redis
  // works on one batch while the next is gathered. Frames acknowledged leave
  // the batch; after a failure every frame still in it is written again.
  bool exchange(bool all, std::string& error) {
    if (!context_ && !connect(error)) return false;
    const std::size_t before = written_;
    if (unsentFrames() > 0) {
      const std::size_t from = written_ == 0 ? 0 : frameEnds_[written_ - 1];
      redisAppendFormattedCommand(context_, batch_.data() + from, batch_.size() - from);
      int done = 0;
      do {
        if (redisBufferWrite(context_, &done) != REDIS_OK) {
          error = context_->errstr;
          return false;
        }
      } while (!done);
      host_.addCounter("published", unsentFrames());
      written_ = frameEnds_.size();
    }
    const std::size_t toRead = all ? written_ : before;
    std::size_t acked = 0;
    bool ok = true;
    for (; acked < toRead; ++acked) {
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
    dropAcked(acked);
    return ok;
  }

  // The first `count` frames of the batch were acknowledged: they leave it.
  void dropAcked(std::size_t count) {
    if (count == 0) return;
    const std::size_t bytes = frameEnds_[count - 1];
    batch_.erase(0, bytes);
    frameEnds_.erase(frameEnds_.begin(), frameEnds_.begin() + static_cast<std::ptrdiff_t>(count));
    for (std::size_t& end : frameEnds_) end -= bytes;
    written_ -= std::min(written_, count);
  }

  // Sends until it worked (with `all`: every frame acknowledged), or the
  // instance is being stopped (then what is held is reported as lost).
  void sendWithRetry(bool all) {
    auto backoff = std::chrono::milliseconds(100);
    std::size_t sentAgain = 0;
    for (bool retry = false;; retry = true) {
      if (retry) {
        sentAgain += frameEnds_.size();
        host_.addCounter("retried", frameEnds_.size());
      }
      std::string error;
      const bool ok = exchange(all || retry, error);
      host_.setGauge("in_flight", static_cast<double>(frameEnds_.size()));
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
        lost_ += frameEnds_.size();
        dropAcked(frameEnds_.size());
        return;
      }
      streamrelay::plugins::waitBackoff(host_, backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void reportFailure(const std::string& error) {
    host_.addCounter("errors", 1);
    if (failing_) return;  // one line per outage
    failing_ = true;
    failingSince_ = Clock::now();
    host_.error("redis " + address_ + ": " + error + "; " + std::to_string(frameEnds_.size()) +
                " frames held, retrying with backoff");
  }

  streamrelay::Host& host_;
  const RedisSinkConfig config_;
  const std::string address_;
  redisContext* context_ = nullptr;
  std::string batch_;                   // the commands of the frames not yet acknowledged, in RESP
  std::vector<std::size_t> frameEnds_;  // where each frame's command ends in batch_
  std::size_t written_ = 0;             // frames at the front of batch_ written, replies not yet read
  std::string lastStream_ = "\x01", lastKey_;
  Clock::time_point firstPending_;
  bool failing_ = false;
  Clock::time_point failingSince_;
  std::uint64_t acked_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN(RedisSink, "redis", "writes every frame into a Redis stream (XADD) or channel (PUBLISH)")
