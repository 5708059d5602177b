// SPDX-License-Identifier: Apache-2.0
#include "seq_reservation.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "log_format.hpp"

namespace streamrelay {

namespace {

const char* const kFileName = "reserved";

std::string pathIn(const std::string& dir) { return (std::filesystem::path(dir) / kFileName).string(); }

}  // namespace

SeqReservation::Found SeqReservation::read(const std::string& dir, std::uint64_t epoch) {
  Found found;
  const int fd = ::open(pathIn(dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return found;  // Missing
  char bytes[2 * logfmt::kReservationSlotBytes] = {};
  ssize_t got = 0;
  while (got < static_cast<ssize_t>(sizeof bytes)) {
    const ssize_t n = ::pread(fd, bytes + got, sizeof bytes - static_cast<std::size_t>(got), got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  ::close(fd);
  bool any = false;
  logfmt::Reservation newest;
  for (std::size_t slot = 0; slot < 2; ++slot) {
    logfmt::Reservation r;
    if (static_cast<std::size_t>(got) < (slot + 1) * logfmt::kReservationSlotBytes ||
        !logfmt::decodeReservation(bytes + slot * logfmt::kReservationSlotBytes, r))
      continue;
    if (!any || r.generation > newest.generation) newest = r;
    any = true;
  }
  if (!any) found.what = Found::What::Damaged;
  else if (newest.epoch != epoch) found.what = Found::What::OtherEpoch;
  else {
    found.what = Found::What::Valid;
    found.reservedSeq = newest.reservedSeq;
  }
  return found;
}

SeqReservation::SeqReservation(std::string stream, const std::string& dir, std::uint64_t epoch,
                               std::uint64_t reserved)
    : stream_(std::move(stream)), path_(pathIn(dir)), epoch_(epoch), logger_(Poco::Logger::get("streamrelay")) {
  // A new file replaces the old one whole: a crash meanwhile leaves the old one.
  const std::string tmp = path_ + ".tmp";
  fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0 || !write(reserved) || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    ::unlink(tmp.c_str());
    throw std::runtime_error("stream " + stream_ + ": log: cannot write " + path_ + ": " + why);
  }
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  reserved_ = wanted_ = reserved;
  reservedFast_.store(reserved, std::memory_order_release);
  thread_ = std::thread([this] { run(); });
}

SeqReservation::~SeqReservation() {
  stopReserver();
  if (fd_ >= 0) ::close(fd_);
}

bool SeqReservation::write(std::uint64_t seq) {
  ++generation_;
  const std::string slot = logfmt::encodeReservation({epoch_, seq, generation_});
  const off_t at = static_cast<off_t>((generation_ % 2) * logfmt::kReservationSlotBytes);
  ssize_t n;
  do n = ::pwrite(fd_, slot.data(), slot.size(), at);
  while (n < 0 && errno == EINTR);
  const bool ok = n == static_cast<ssize_t>(slot.size()) && ::fdatasync(fd_) == 0;
  if (!ok) {
    const int error = n >= 0 && n != static_cast<ssize_t>(slot.size()) ? ENOSPC : errno;
    writeErrors_.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t suppressed = 0;
    if (errorLines_.allow(suppressed))
      logger_.error("stream %s: log: cannot reserve seqs up to %?u in %s: %s (%?u more failures since the last "
                    "line); the stream publishes only seqs already reserved until it can",
                    stream_, seq, path_, std::string(std::strerror(error)), suppressed);
  }
  return ok;
}

void SeqReservation::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  auto backoff = std::chrono::milliseconds(10);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || wanted_ > reserved_; });
    if (stopping_) return;
    const std::uint64_t target = wanted_;
    lock.unlock();
    const bool ok = write(target);  // the publisher checks reservedFast_ meanwhile, without the lock
    lock.lock();
    if (ok) {
      reserved_ = target;
      reservedFast_.store(target, std::memory_order_release);
      backoff = std::chrono::milliseconds(10);
      changed_.notify_all();
    } else {  // the disk refuses: try again, less and less often (a retry interval, not synchronisation)
      changed_.wait_for(lock, backoff, [this] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }
}

void SeqReservation::awaitReserved(std::uint64_t lastSeq) {
  if (lastSeq > highestAsked_.load(std::memory_order_relaxed))
    highestAsked_.store(lastSeq, std::memory_order_relaxed);
  if (lastSeq + kBlock / 2 <= reservedFast_.load(std::memory_order_acquire)) return;  // the usual case
  std::unique_lock<std::mutex> lock(mutex_);
  if (wanted_ < lastSeq + kBlock) {
    wanted_ = lastSeq + kBlock;
    changed_.notify_all();
  }
  changed_.wait(lock, [&] { return reserved_ >= lastSeq || ended_ || released_; });
  if (released_) return;
  // The reserver has ended (recordExact ran; a publisher that still
  // publishes): reserve here, once. A failure is counted and logged.
  if (reserved_ < lastSeq && write(wanted_)) {
    reserved_ = wanted_;
    reservedFast_.store(reserved_, std::memory_order_release);
  }
}

void SeqReservation::release() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ = true;
  }
  changed_.notify_all();
}

void SeqReservation::stopReserver() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended_ = true;  // from here on, writes happen under mutex_
  }
  changed_.notify_all();
}

void SeqReservation::recordExact(std::uint64_t lastSeq) {
  stopReserver();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint64_t exact = std::max(lastSeq, highestAsked_.load(std::memory_order_relaxed));
    if (write(exact)) {
      reserved_ = wanted_ = exact;
      reservedFast_.store(exact, std::memory_order_release);
    }
  }
  changed_.notify_all();
}

}  // namespace streamrelay
