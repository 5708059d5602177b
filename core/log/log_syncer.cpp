// SPDX-License-Identifier: Apache-2.0
#include "log_syncer.hpp"

#include <unistd.h>

#include <cerrno>

namespace streamrelay {

SegmentFile::~SegmentFile() {
  if (fd_ >= 0) ::close(fd_);
}

LogSyncer::SyncFn LogSyncer::fdatasyncFn() {
  return [](int fd) { return ::fdatasync(fd) == 0 ? 0 : errno; };
}

LogSyncer::LogSyncer(std::uint64_t synced, SyncFn sync) : sync_(std::move(sync)), synced_(synced), written_(synced) {
  thread_ = std::thread([this] { run(); });
}

LogSyncer::~LogSyncer() { stop(); }

void LogSyncer::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LogSyncer::use(std::shared_ptr<SegmentFile> file) {
  std::lock_guard<std::mutex> lock(mutex_);
  file_ = std::move(file);
  fileFailed_ = false;
}

void LogSyncer::written(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  written_ = seq;
}

void LogSyncer::request() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requested_ = true;
  }
  changed_.notify_all();
}

bool LogSyncer::syncNow() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !busy_; });
  if (!file_ || fileFailed_) return false;
  const int error = syncOnce(lock);
  lock.unlock();
  changed_.notify_all();
  return error == 0;
}

int LogSyncer::syncOnce(std::unique_lock<std::mutex>& lock) {
  const std::shared_ptr<SegmentFile> file = file_;  // kept open until this sync returns
  const std::uint64_t seq = written_;
  requested_ = false;
  busy_ = true;
  lock.unlock();
  const int error = sync_(file->fd());
  lock.lock();
  finished(file, seq, error);
  return error;
}

std::optional<LogSyncer::Failure> LogSyncer::takeFailure() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::optional<Failure> failure = failure_;
  failure_.reset();
  return failure;
}

void LogSyncer::finished(const std::shared_ptr<SegmentFile>& file, std::uint64_t seq, int error) {
  busy_ = false;
  if (error != 0) {
    failure_ = Failure{file, error};
    if (file == file_) fileFailed_ = true;
    return;
  }
  // Every seq up to `seq` was written to `file` or to a segment before it,
  // which was sealed (synced) before the writer moved on.
  if (seq > synced_.load(std::memory_order_relaxed)) synced_.store(seq, std::memory_order_release);
}

void LogSyncer::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || (requested_ && !busy_ && file_ && !fileFailed_); });
    if (stopping_) return;
    syncOnce(lock);
    changed_.notify_all();  // syncNow() may wait for it
  }
}

}  // namespace streamrelay
