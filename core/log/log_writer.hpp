// SPDX-License-Identifier: Apache-2.0
#pragma once
// LogWriter: the thread that writes one stream's frames into its log.
//
// The publish path only hands batches over: the writer is a consumer of
// the stream's bus like a plugin, through a SubscriptionQueue with the
// `block` policy (the log loses no frame to a full queue; it is pushed
// after every non-blocking consumer, so live subscribers have their frames
// before the publisher could wait for it). It takes everything queued at
// once and writes it in pieces of at most StreamLog::kWriteChunkBytes;
// syncs run on the log's sync thread meanwhile (LogSyncer), each covering
// everything written before it started (group commit): syscalls per frame
// fall as the rate rises.
//
// Threads: constructed, started and stopped by the relay's thread; run()
// is its own thread, the only one that writes the log.

#include <memory>
#include <thread>

#include "bus.hpp"
#include "stream_log.hpp"

namespace streamrelay {

class LogWriter {
 public:
  // What may wait for the writer before the publisher waits for it.
  static QueueLimits queueLimits() { return {100000, 64 << 20, OverflowPolicy::Block}; }

  // Subscribes to `bus` at once: every frame published from now on is
  // logged (they wait in the queue until start()).
  LogWriter(std::unique_ptr<StreamLog> log, Bus& bus);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  void start();
  // Call once the stream's publisher has stopped: writes what is queued,
  // syncs (unless fsync is `never`), ends the thread. Idempotent.
  void stop();

  const StreamLog& log() const { return *log_; }
  // Shutdown, when the stream's publisher is stuck: it waits for the disk no more.
  void releasePublisher() { log_->releasePublisher(); }

 private:
  void run();

  const std::unique_ptr<StreamLog> log_;
  Bus& bus_;
  const QueuePtr queue_;
  std::thread thread_;
};

}  // namespace streamrelay
