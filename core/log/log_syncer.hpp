// SPDX-License-Identifier: Apache-2.0
#pragma once
// LogSyncer: forces a stream log's written records to the disk
// (fdatasync) on a thread of its own, so the log's writer goes on writing
// while the disk flushes (docs/durable-streams.md, "What is guaranteed").
//
// The writer tells it what it wrote (written()) and asks for a sync
// (request()). The sync thread takes the newest seq written at the moment
// a sync starts and, once that fdatasync returns, publishes it as
// synced(): every frame written before a sync started is covered by it
// (group commit), and synced() never names a frame written after the last
// sync that completed.
//
// The segment file is shared (SegmentFile, closed with its last owner), so
// the writer may move on to a new segment while a sync of the old one runs:
// no descriptor is used after it is closed. Before the writer moves on it
// seals the old file with syncNow(): seqs in a segment count as synced only
// once that segment was synced, never because a later one was.
//
// A failed fdatasync is kept for the writer (takeFailure()); the file is
// not synced again (after a failed fsync the page cache cannot be trusted)
// until the writer moves to another.
//
// Threads: constructed and stopped by the log's owner (the relay's thread
// or the writer's); written(), request(), syncNow(), use(), takeFailure()
// from the writer's thread only; synced() from any thread; the sync
// thread is its own, started by the constructor and joined by stop().

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace streamrelay {

// An open segment file's descriptor, closed when its last owner lets go.
class SegmentFile {
 public:
  SegmentFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~SegmentFile();
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  const int fd_;
  const std::string path_;
};

class LogSyncer {
 public:
  // What forces a file's data to the disk: ::fdatasync unless a test says
  // otherwise. Returns 0, or an errno.
  using SyncFn = std::function<int(int fd)>;
  static SyncFn fdatasyncFn();

  // `synced`: what is on the disk already (the log's last seq at open).
  LogSyncer(std::uint64_t synced, SyncFn sync);
  ~LogSyncer();
  LogSyncer(const LogSyncer&) = delete;
  LogSyncer& operator=(const LogSyncer&) = delete;

  // Writer: from now on frames are written to `file` (a new segment; the
  // old one was sealed with syncNow(), or failed).
  void use(std::shared_ptr<SegmentFile> file);
  // Writer: every frame up to `seq` is written (to the file in use).
  void written(std::uint64_t seq);
  // Writer: sync what is written, soon; returns at once.
  void request();
  // Writer: waits for a sync in progress, then syncs what is written on
  // this thread. False if it failed (also kept for takeFailure()).
  bool syncNow();
  // Writer: a sync that failed since the last call: the file and the errno.
  struct Failure {
    std::shared_ptr<SegmentFile> file;
    int error = 0;
  };
  std::optional<Failure> takeFailure();
  // Any thread: every frame up to it is on the disk.
  std::uint64_t synced() const { return synced_.load(std::memory_order_acquire); }
  // Ends the sync thread (a sync in progress completes first). Idempotent.
  void stop();

 private:
  void run();
  // One sync of the current file up to what was written when it began: the
  // lock (on mutex_, held; a file to sync set) is let go during fdatasync.
  // Returns its error (0: done).
  int syncOnce(std::unique_lock<std::mutex>& lock);
  // The sync of `file` up to `seq` ended with `error` (0: done). Under mutex_.
  void finished(const std::shared_ptr<SegmentFile>& file, std::uint64_t seq, int error);

  const SyncFn sync_;
  std::atomic<std::uint64_t> synced_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::shared_ptr<SegmentFile> file_;  // guarded by mutex_: the file written to
  bool fileFailed_ = false;            // guarded by mutex_: a sync of file_ failed
  std::uint64_t written_ = 0;          // guarded by mutex_
  bool requested_ = false;             // guarded by mutex_
  bool busy_ = false;                  // guarded by mutex_: a sync runs (on either thread)
  bool stopping_ = false;              // guarded by mutex_
  std::optional<Failure> failure_;     // guarded by mutex_
  std::thread thread_;
};

}  // namespace streamrelay
