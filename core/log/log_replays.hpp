// SPDX-License-Identifier: Apache-2.0
#pragma once
// LogReplays: reads a stream's log for subscribers whose resume (or
// from_seq, from_time) the bus's ring no longer holds (Backfill).
//
// One reader thread per such subscriber. A reader preloads the
// subscriber's queue, not yet subscribed, a chunk at a time, and only while
// the queue holds less than its window (kWindowFrames / kWindowBytes, or
// half the queue's limits if smaller): what a reader holds is bounded
// whatever the range, and a slow subscriber only makes its reader wait. It
// never touches the publish path: live subscribers are not slowed; a
// reader that falls behind reads more from disk. When it has read all the
// log has written, it asks the bus to go on from the ring and the live
// frames right after the last frame it gave (Bus::continueAfter, one step
// under the bus's lock: no gap, no frame twice); while the ring no longer
// holds that (the log's writer is behind more than the ring holds), it
// reads on.
//
// Threads: replay() and the figures from any thread; the readers are
// this object's, stopped and joined by stop() (the relay's thread).

#include <Poco/Logger.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <thread>

#include "backfill.hpp"
#include "bus.hpp"
#include "stream_log.hpp"

namespace streamrelay {

class LogReplays : public Backfill {
 public:
  static constexpr std::size_t kWindowFrames = 16384;
  static constexpr std::size_t kWindowBytes = 4 << 20;
  static constexpr std::size_t kChunkFrames = 4096;
  static constexpr std::size_t kChunkBytes = 1 << 20;

  // `log` and `bus` outlive it.
  LogReplays(const StreamLog& log, Bus& bus);
  ~LogReplays() override;
  LogReplays(const LogReplays&) = delete;
  LogReplays& operator=(const LogReplays&) = delete;

  bool holdsFrom(std::uint64_t seq) const override;
  void replay(QueuePtr queue, std::uint64_t seq, std::vector<std::string> select, std::int64_t fromUnixNs) override;
  TimeStart searchStartFor(std::int64_t unixNs) const override;

  // Ends every reader (their subscribers are closed: the relay stops). Idempotent.
  void stop();

  // Subscribers reading from disk now.
  std::size_t readers() const;
  std::uint64_t framesRead() const { return framesRead_.load(std::memory_order_relaxed); }
  // Bytes the readers' subscribers hold queued now (each at most its
  // window plus a chunk while it reads).
  std::size_t readAheadBytes() const;

 private:
  struct Reader {
    QueuePtr queue;
    std::uint64_t seq;
    std::vector<std::string> select;
    std::int64_t fromUnixNs;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void run(Reader& reader);
  // Joins the readers that ended (mutex_ held).
  void reapLocked();

  const StreamLog& log_;
  Bus& bus_;
  Poco::Logger& logger_;
  std::atomic<std::uint64_t> framesRead_{0};
  mutable std::mutex mutex_;
  bool stopped_ = false;        // guarded by mutex_
  std::list<Reader> readers_;   // guarded by mutex_
};

}  // namespace streamrelay
