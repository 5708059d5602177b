// SPDX-License-Identifier: Apache-2.0
#pragma once
// SeqReservation: the seqs a logged stream may hand out, recorded on the
// disk before it hands them out (the hi/lo technique). Fan-out runs beside
// the log's writer, so subscribers may have frames the log never got to
// write; a relay restarted after a crash goes on after the highest seq
// reserved, never at a seq a subscriber may already have had.
//
// The file DIR/reserved (log_format.hpp) says "seqs up to R are reserved".
// It is written ahead in blocks: once the stream has used half of a block,
// its own thread reserves the next (one pwrite and one fdatasync), so the
// publisher waits only if that write is a half block behind. A clean
// shutdown records the exact last seq handed out: a clean restart has no
// hole in seq.
//
// Threads: awaitReserved() from the stream's publisher; recordExact() from
// the log's writer once the publisher has stopped; the rest from any thread.
// One thread of its own (the reserver), ended by recordExact() or the
// destructor.

#include <Poco/Logger.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "log_limiter.hpp"
#include "seq_gate.hpp"

namespace streamrelay {

class SeqReservation : public SeqGate {
 public:
  // Seqs reserved at a time.
  static constexpr std::uint64_t kBlock = std::uint64_t{1} << 20;

  // What DIR/reserved says about the stream's epoch `epoch`.
  struct Found {
    enum class What {
      Missing,     // no file: a log written before reservations, or a new one
      OtherEpoch,  // a reservation of another epoch: nothing of this one was handed out
      Valid,       // `reservedSeq` is the highest seq this epoch may have handed out
      Damaged,     // a file whose slots are all unreadable: what was handed out is unknown
    } what = What::Missing;
    std::uint64_t reservedSeq = 0;
  };
  static Found read(const std::string& dir, std::uint64_t epoch);

  // Replaces DIR/reserved with "up to `reserved`" (synced) and starts the
  // reserver. Throws std::runtime_error, one line, if the file cannot be written.
  SeqReservation(std::string stream, const std::string& dir, std::uint64_t epoch, std::uint64_t reserved);
  ~SeqReservation() override;
  SeqReservation(const SeqReservation&) = delete;
  SeqReservation& operator=(const SeqReservation&) = delete;

  void awaitReserved(std::uint64_t lastSeq) override;

  // Ends the reserver and records `lastSeq` (at least the highest seq asked
  // for) as the exact end: a clean restart goes on right after it. A
  // publish that still comes reserves for itself, synchronously.
  void recordExact(std::uint64_t lastSeq);
  // The relay is stopping and its disk refuses the reservation: a publish
  // waiting for one returns without it (the source can stop), as does any
  // later one.
  void release();

  std::uint64_t reserved() const { return reservedFast_.load(std::memory_order_acquire); }
  // Writes of the file that failed (each retried).
  std::uint64_t writeErrors() const { return writeErrors_.load(std::memory_order_relaxed); }

 private:
  void run();
  // Ends the reserver thread; afterwards writes happen under mutex_.
  void stopReserver();
  // Writes the next slot with `seq` and syncs it; false (counted, logged) if it cannot.
  bool write(std::uint64_t seq);

  const std::string stream_;
  const std::string path_;
  const std::uint64_t epoch_;
  Poco::Logger& logger_;
  LogLimiter errorLines_;
  // Written by the reserver thread while it runs, then only under mutex_.
  int fd_ = -1;
  std::uint64_t generation_ = 0;    // the slot written next is (generation_ + 1) % 2

  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t reserved_ = 0;      // guarded by mutex_: on the disk
  std::uint64_t wanted_ = 0;        // guarded by mutex_: what the publisher asks the reserver for
  bool stopping_ = false;           // guarded by mutex_: the reserver is asked to end
  bool ended_ = false;              // guarded by mutex_: it has ended
  bool released_ = false;           // guarded by mutex_: publishers wait no more (release)
  std::atomic<std::uint64_t> reservedFast_{0};  // reserved_, for the publisher's check without the lock
  std::atomic<std::uint64_t> highestAsked_{0};
  std::atomic<std::uint64_t> writeErrors_{0};
  std::thread thread_;
};

}  // namespace streamrelay
