// SPDX-License-Identifier: Apache-2.0
// redis: writes every frame it receives into Redis: XADD to a stream (mode
// xadd, the default: `XADD KEY [MAXLEN ~ N] * seq S epoch E received_ns T
// payload P`) or PUBLISH to a channel (mode publish).
//
// Pipelined: frames, encoded in RESP as they arrive (resp_batch.hpp), go out
// as one write once batch_frames have gathered, the oldest waited flush_ms,
// or the relay's queue has been drained (the relay has nothing more to give
// now: holding them back would only delay them). Replies are taken as they
// arrive, without waiting, and waited for only while more than batch_frames
// frames await theirs (a sliding window: Redis always has the next frames in
// its socket) or when the queue stays idle (then every frame is answered). A frame
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
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
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
    if (batch_.frames() > 0) sendWithRetry(0);
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
      if (batch_.unwritten() >= config_.batchFrames || flushIntervalPassed()) sendWithRetry(config_.batchFrames);
    }
    framesSinceFlush_ = true;
  }

  // After each drain (frames came since the last call): what is gathered is
  // written. When the queue is idle (every 100 ms) and at the end: every
  // frame written and acknowledged.
  void flush() override {
    const bool drained = framesSinceFlush_;
    framesSinceFlush_ = false;
    if (batch_.frames() == 0) return;
    sendWithRetry(drained && !host_.stopping() ? config_.batchFrames : 0);
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

  // Writes the frames not yet written, then takes the replies that have
  // arrived, waiting for more only while over `keep` frames await theirs
  // (0: waits for all). Frames acknowledged leave the batch; after a failure
  // every frame still in it is written again.
  bool exchange(std::size_t keep, std::string& error) {
    if (!context_) {
      if (!connect(error)) return false;
      // A Redis still loading its data after a restart answers LOADING to
      // the commands it reads meanwhile and takes those it reads a moment
      // later: a pipeline sent now could be split, its later frames stored
      // before the earlier ones, written again after them (a reader of the
      // stream would see a gap). So the first frame goes alone, and the
      // others once Redis took it.
      if (batch_.unwritten() > 0 && !exchangeUpTo(1, 0, error)) return false;
    }
    return exchangeUpTo(static_cast<std::size_t>(-1), keep, error);
  }

  // exchange() on a connection: writes `limit` frames at most.
  bool exchangeUpTo(std::size_t limit, std::size_t keep, std::string& error) {
    if (const std::size_t sending = std::min(limit, batch_.unwritten()); sending > 0) {
      if (!batch_.writeUnwritten(context_->fd, error, limit)) return false;  // straight to the socket: hiredis' buffer is empty
      published_.add(sending);
    }
    std::size_t acked = 0;
    bool ok = true;
    while (acked < batch_.written()) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) {  // a reply already read, if whole
        error = context_->errstr;
        ok = false;
        break;
      }
      if (!raw) {
        bool arrived = true;
        if (batch_.written() - acked > keep ? redisBufferRead(context_) != REDIS_OK : !readArrived(arrived, error)) {
          if (error.empty()) error = context_->errstr;
          ok = false;
          break;
        }
        if (!arrived) break;  // within the window: the rest later
        continue;
      }
      auto* reply = static_cast<redisReply*>(raw);
      const bool refused = reply->type == REDIS_REPLY_ERROR;
      if (refused) error = "Redis answered: " + std::string(reply->str, reply->len);
      freeReplyObject(reply);
      if (refused) {
        ok = false;
        break;
      }
      ++acked;
    }
    ackedTotal_ += acked;
    acked_.add(acked);
    batch_.dropAcknowledged(acked);
    return ok;
  }

  // Hands what the socket holds to hiredis' reader, without waiting;
  // `arrived` is false when nothing had come. False on an error.
  bool readArrived(bool& arrived, std::string& error) {
    char buffer[16 * 1024];
    for (;;) {
      const ssize_t n = ::recv(context_->fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        arrived = true;
        if (redisReaderFeed(context_->reader, buffer, static_cast<std::size_t>(n)) != REDIS_OK) {
          error = "unreadable reply from Redis";
          return false;
        }
        return true;
      }
      if (n == 0) {
        error = "Redis closed the connection";
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arrived = false;
        return true;
      }
      error = std::strerror(errno);
      return false;
    }
  }

  // Sends until it worked (at most `keep` frames left unacknowledged; after
  // a failure, none), or the instance is being stopped (then what is held
  // is reported as lost).
  void sendWithRetry(std::size_t keep) {
    auto backoff = std::chrono::milliseconds(100);
    std::size_t sentAgain = 0;
    for (bool retry = false;; retry = true) {
      if (retry) {
        sentAgain += batch_.frames();
        retried_.add(batch_.frames());
      }
      std::string error;
      const bool ok = exchange(retry ? 0 : keep, error);
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
  bool framesSinceFlush_ = false;       // onFrames was called since the last flush()
  Clock::time_point failingSince_;
  std::uint64_t ackedTotal_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(RedisSink, "redis", "writes every frame into a Redis stream (XADD) or channel (PUBLISH)",
                                    0, streamrelay::plugins::redisSinkConfigKeys())
