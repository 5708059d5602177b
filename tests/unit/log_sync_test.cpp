// SPDX-License-Identifier: Apache-2.0
// StreamLog's writing side under load: a large append is written with a
// bounded buffer, and fsynced_seq (synced on a thread of its own while the
// writer goes on) never names a frame written after the last completed sync.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <condition_variable>
#include <mutex>

#include "log_test_support.hpp"

using namespace streamrelay;
using namespace streamrelay::test;

namespace {

constexpr std::int64_t kT0 = 1700000000LL * 1000000000LL;

// A sync hook that lets the test say when each fdatasync may go on.
class SyncGate {
 public:
  LogSyncer::SyncFn fn() {
    return [this](int fd) {
      std::unique_lock<std::mutex> lock(mutex_);
      const int me = ++entered_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return released_ >= me; });
      return ::fdatasync(fd) == 0 ? 0 : errno;
    };
  }
  // True once `n` syncs have started (false after 10 s).
  bool waitEntered(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  void release(int n) {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ = n;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int entered_ = 0;
  int released_ = 0;
};

void appendAndFlush(StreamLog& log, std::uint64_t firstSeq, std::size_t count) {
  auto batch = makeFrames(firstSeq, count, kT0);
  log.append(*batch, 0, batch->frameCount());
  log.flush();
}

}  // namespace

TEST_CASE("a large append is written in bounded pieces: the writer's buffer stays small however much is queued",
          "[log]") {
  ScratchDir dir;
  LogOptions options;
  options.dir = dir.sub("s");
  options.fsync = FsyncPolicy::Always;
  const std::size_t bound = 2 * StreamLog::kWriteChunkBytes;
  std::vector<LoggedFrame> written;
  {
    StreamLog log("s", options);
    auto batch = makeFrames(1, 4096, kT0, 4096);  // 16 MiB taken at once, as a deep queue gives it
    log.append(*batch, 0, batch->frameCount());
    CHECK(log.writeBufferCapacity() <= bound);
    log.flush();
    CHECK(log.writeBufferCapacity() <= bound);
    // One record larger than a piece is written whole, and its buffer not kept.
    auto large = makeFrames(4097, 1, kT0, 4 << 20);
    log.append(*large, 0, 1);
    log.flush();
    CHECK(log.writeBufferCapacity() <= bound);
    written = framesOf(*batch);
    written.push_back(framesOf(*large).front());
    log.close();
    CHECK(log.stats().fsyncedSeq == 4097);
  }
  StreamLog reopened("s", options);
  CHECK(readAll(reopened) == written);
}

TEST_CASE("fsync always: the writer goes on while a sync runs, and fsynced_seq is what the last completed sync covered",
          "[log]") {
  ScratchDir dir;
  LogOptions options;
  options.dir = dir.sub("s");
  options.fsync = FsyncPolicy::Always;
  SyncGate gate;
  StreamLog log("s", options, gate.fn());

  appendAndFlush(log, 1, 10);  // asks for sync 1
  REQUIRE(gate.waitEntered(1));
  appendAndFlush(log, 11, 10);  // written while sync 1 runs: flush() did not wait for it
  CHECK(log.stats().lastSeq == 20);
  CHECK(log.stats().fsyncedSeq == 0);

  gate.release(1);
  REQUIRE(gate.waitEntered(2));  // sync 1 published, sync 2 (for 11..20) started
  CHECK(log.stats().fsyncedSeq == 10);  // not 20: those were written after sync 1 started
  appendAndFlush(log, 21, 10);
  gate.release(2);
  REQUIRE(gate.waitEntered(3));
  CHECK(log.stats().fsyncedSeq == 20);

  gate.release(INT_MAX);
  log.close();  // syncs the rest
  CHECK(log.stats().fsyncedSeq == 30);
  CHECK(log.stats().writeErrors == 0);
}

TEST_CASE("a sealed segment is synced before fsynced_seq names its frames, whichever thread syncs it", "[log]") {
  ScratchDir dir;
  LogOptions options;
  options.dir = dir.sub("s");
  options.segmentBytes = 4096;  // a batch of 10 x 1000 B fills more than one
  options.fsync = FsyncPolicy::EveryMs;
  options.fsyncEveryMs = 3600000;  // only sealing and close sync here
  std::vector<LoggedFrame> written;
  {
    StreamLog log("s", options);
    std::uint64_t seq = 1;
    for (int b = 0; b < 5; ++b) {
      auto batch = makeFrames(seq, 10, kT0, 1000);
      log.append(*batch, 0, batch->frameCount());
      log.flush();
      for (auto& f : framesOf(*batch)) written.push_back(f);
      seq += 10;
      const LogStats stats = log.stats();
      // Every sealed segment was synced; the one written to not yet.
      CHECK(stats.fsyncedSeq < stats.lastSeq);
      CHECK(stats.lastSeq - stats.fsyncedSeq <= 3);  // at most the active segment (3 records of 1 KiB) behind
    }
    log.close();
    CHECK(log.stats().fsyncedSeq == 50);
  }
  StreamLog reopened("s", options);
  CHECK(readAll(reopened) == written);
}
