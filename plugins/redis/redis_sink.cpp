// SPDX-License-Identifier: Apache-2.0
// redis: writes every frame it receives into Redis: XADD to a stream (mode
// xadd, the default: `XADD KEY [MAXLEN ~ N] * seq S epoch E received_ns T
// payload P`) or PUBLISH to a channel (mode publish).
//
// Pipelined: batch_frames frames (or what flush_ms gathered), encoded in RESP
// as they arrive (resp_batch.hpp), go out as one write; their replies are
// read once the next batch is written, so two batches are in flight. A frame
// leaves the instance's hands only once Redis acknowledged it: until then it
// stays in the batch — its payload retained from the relay (ABI 1.2), not
// copied — and a lost connection (a Redis restart, a network cut) is one log
// line, then reconnects with backoff and sends again every frame not
// acknowledged. With `on_full: block` nothing is lost; a frame Redis applied
// whose reply was lost with the connection is written twice, and readers
// deduplicate by (epoch, seq) (docs/plugins.md, "redis").
//
// The frames come in batches (onFrames); counters and the gauge go through
// handles: no lookup per frame.
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
#include "resp_batch.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using streamrelay::plugins::RedisSinkConfig;
using streamrelay::plugins::RespBatch;

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class RedisSink : public streamrelay::Plugin {
 public:
  RedisSink(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), config_(streamrelay::plugins::parseRedisSinkConfig(configYaml)),
        address_(config_.host + ":" + std::to_string(config_.port)),
        batch_(config_.mode == RedisSinkConfig::Mode::Xadd ? RespBatch::Mode::Xadd : RespBatch::Mode::Publish,
               config_.maxlen),
        published_(host.counter("published")), acked_(host.counter("acked")), retried_(host.counter("retried")),
        errors_(host.counter("errors")), inFlight_(host.gauge("in_flight")) {
    std::string error;
    if (!connect(error)) reportFailure(error);  // retried on the first write
  }

  ~RedisSink() override {
    if (batch_.frames() > 0) sendWithRetry(true);
    if (context_) redisFree(context_);
    if (lost_ > 0) host_.error("gave up at shutdown: " + std::to_string(lost_) + " frames not acknowledged by " + address_);
    host_.info(std::to_string(ackedTotal_) + " frames written to redis " + address_);
  }

  void onFrames(const streamrelay::Frames& frames) override {
    for (const streamrelay::Frame& frame : frames) {
      if (batch_.unwritten() == 0) firstPending_ = Clock::now();
      if (frame.stream != lastStream_) {  // the key of the previous frame's stream, kept: one lookup per stream change
        lastStream_ = std::string(frame.stream);
        lastKey_ = streamrelay::plugins::keyFor(config_.key, lastStream_);
      }
      batch_.add(frame, lastKey_,
                 frame.data.size() >= RespBatch::kCopyBelow ? host_.retain(frame) : streamrelay::Retained());
      if (batch_.unwritten() >= config_.batchFrames || flushIntervalPassed()) sendWithRetry(false);
    }
  }

  // When the queue is idle (and at the end): everything written and acknowledged.
  void flush() override {
    if (batch_.frames() > 0 && (flushIntervalPassed() || host_.stopping() || batch_.unwritten() == 0))
      sendWithRetry(true);
  }

 private:
  bool flushIntervalPassed() const {
    return batch_.unwritten() > 0 && Clock::now() - firstPending_ >= config_.flushInterval;
  }

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
    batch_.rewind();  // a new connection has been sent nothing
  }

  // Two batches in flight: writes the frames not yet written, then reads the
  // replies to the batch written before (all replies with `all`), so Redis
  // works on one batch while the next is gathered. Frames acknowledged leave
  // the batch; after a failure every frame still in it is written again.
  bool exchange(bool all, std::string& error) {
    if (!context_ && !connect(error)) return false;
    const std::size_t before = batch_.written();
    if (const std::size_t sending = batch_.unwritten(); sending > 0) {
      if (!batch_.writeUnwritten(context_->fd, error)) return false;  // straight to the socket: hiredis' buffer is empty
      published_.add(sending);
    }
    const std::size_t toRead = all ? batch_.written() : before;
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
    ackedTotal_ += acked;
    acked_.add(acked);
    batch_.dropAcknowledged(acked);
    return ok;
  }

  // Sends until it worked (with `all`: every frame acknowledged), or the
  // instance is being stopped (then what is held is reported as lost).
  void sendWithRetry(bool all) {
    auto backoff = std::chrono::milliseconds(100);
    std::size_t sentAgain = 0;
    for (bool retry = false;; retry = true) {
      if (retry) {
        sentAgain += batch_.frames();
        retried_.add(batch_.frames());
      }
      std::string error;
      const bool ok = exchange(all || retry, error);
      inFlight_.set(static_cast<double>(batch_.frames()));
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
        lost_ += batch_.frames();
        batch_.dropAcknowledged(batch_.frames());
        return;
      }
      streamrelay::plugins::waitBackoff(host_, backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  void reportFailure(const std::string& error) {
    errors_.add(1);
    if (failing_) return;  // one line per outage
    failing_ = true;
    failingSince_ = Clock::now();
    host_.error("redis " + address_ + ": " + error + "; " + std::to_string(batch_.frames()) +
                " frames held, retrying with backoff");
  }

  streamrelay::Host& host_;
  const RedisSinkConfig config_;
  const std::string address_;
  redisContext* context_ = nullptr;
  RespBatch batch_;                     // the frames not yet acknowledged, as commands
  streamrelay::Counter published_, acked_, retried_, errors_;
  streamrelay::Gauge inFlight_;
  std::string lastStream_ = "\x01", lastKey_;
  Clock::time_point firstPending_;
  bool failing_ = false;
  Clock::time_point failingSince_;
  std::uint64_t ackedTotal_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(RedisSink, "redis", "writes every frame into a Redis stream (XADD) or channel (PUBLISH)",
                                    0, streamrelay::plugins::redisSinkConfigKeys())
