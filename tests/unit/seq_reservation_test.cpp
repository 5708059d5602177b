// SPDX-License-Identifier: Apache-2.0
// The seq reservation of a logged stream (seq_reservation.hpp) on real
// files: a crash never lets a seq be handed out twice, a clean stop leaves
// no hole, and the bus asks before it numbers a batch.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <mutex>

#include "bus.hpp"
#include "log_test_support.hpp"
#include "seq_reservation.hpp"

using namespace streamrelay;
using namespace streamrelay::test;

namespace {

constexpr std::int64_t kT0 = 1700000000LL * 1000000000LL;

LogOptions neverSynced(const std::string& dir) {
  LogOptions o;
  o.dir = dir;
  o.fsync = FsyncPolicy::Never;
  return o;
}

// Appends frames [seq, seq + count) as one write.
void appendFrames(StreamLog& log, std::uint64_t seq, std::size_t count) {
  auto batch = makeFrames(seq, count, kT0);
  log.append(*batch, 0, count);
  log.flush();
}

// A log of frames 1..count, closed; returns its epoch.
std::uint64_t writeLog(const LogOptions& options, std::size_t count) {
  StreamLog log("s", options);
  log.seqGate().awaitReserved(count);
  appendFrames(log, 1, count);
  log.close();
  return log.epoch();
}

}  // namespace

TEST_CASE("a relay killed after handing out seqs it never wrote goes on above every one of them", "[log][reserve]") {
  ScratchDir dir;
  std::uint64_t epoch = 0;
  {
    StreamLog log("s", neverSynced(dir.path));
    epoch = log.epoch();
  }
  // In a child that dies without a word (as kill -9 would end it): frames
  // 1..10 are written, 1..30 were handed out (fan-out runs beside the writer).
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    StreamLog log("s", neverSynced(dir.path));
    log.seqGate().awaitReserved(30);
    appendFrames(log, 1, 10);
    ::_exit(log.nextSeqAtOpen() == 1 ? 0 : 10);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  StreamLog log("s", neverSynced(dir.path));
  CHECK(log.epoch() == epoch);
  CHECK(log.nextSeqAtOpen() > 30);
  REQUIRE(log.lostAtOpen());
  CHECK(log.lostAtOpen()->first == 11);
  CHECK(log.lostAtOpen()->last == log.nextSeqAtOpen() - 1);
  // The log holds 1..10, then the new frames after the hole: a reader sees the gap.
  appendFrames(log, log.nextSeqAtOpen(), 5);
  const std::vector<LoggedFrame> read = readAll(log);
  REQUIRE(read.size() == 15);
  CHECK(read[9].seq == 10);
  CHECK(read[10].seq == log.nextSeqAtOpen());
}

TEST_CASE("a clean stop records the exact last seq: the restart goes on right after it, without a hole",
          "[log][reserve]") {
  ScratchDir dir;
  {
    StreamLog log("s", neverSynced(dir.path));
    log.seqGate().awaitReserved(20);
    appendFrames(log, 1, 20);
    CHECK(log.stats().reservedSeq >= 20);
    log.close();
  }
  StreamLog log("s", neverSynced(dir.path));
  CHECK(log.nextSeqAtOpen() == 21);
  CHECK_FALSE(log.lostAtOpen());
}

TEST_CASE("the reservation runs ahead of the publisher, which waits only beyond it", "[log][reserve]") {
  ScratchDir dir;
  StreamLog log("s", neverSynced(dir.path));
  const std::uint64_t first = log.stats().reservedSeq;
  CHECK(first == SeqReservation::kBlock);  // reserved at open: the first frames never wait
  log.seqGate().awaitReserved(first / 2 + 1);  // half used: the next block is asked for, not awaited
  log.seqGate().awaitReserved(first + 5);      // beyond: returns once it is on the disk
  CHECK(log.stats().reservedSeq >= first + 5);
  CHECK(SeqReservation::read(dir.path, log.epoch()).reservedSeq >= first + 5);
  CHECK(log.stats().writeErrors == 0);
}

TEST_CASE("a log without a reservation file (written before reservations) goes on after its last frame",
          "[log][reserve]") {
  ScratchDir dir;
  const std::uint64_t epoch = writeLog(neverSynced(dir.path), 10);
  std::filesystem::remove(dir.sub("reserved"));
  StreamLog log("s", neverSynced(dir.path));
  CHECK(log.epoch() == epoch);
  CHECK(log.nextSeqAtOpen() == 11);
}

TEST_CASE("an unreadable reservation file starts a new epoch: the seqs handed out are unknown", "[log][reserve]") {
  ScratchDir dir;
  const std::uint64_t epoch = writeLog(neverSynced(dir.path), 10);
  {
    std::ofstream damaged(dir.sub("reserved"), std::ios::binary | std::ios::trunc);
    damaged << std::string(80, 'x');
  }
  StreamLog log("s", neverSynced(dir.path));
  CHECK(log.epoch() != epoch);
  CHECK(log.nextSeqAtOpen() == 1);
  CHECK(hasAsideDir(dir.path));
}

namespace {
// Records what the bus asks.
class RecordingGate : public SeqGate {
 public:
  void awaitReserved(std::uint64_t lastSeq) override { asked.push_back(lastSeq); }
  std::vector<std::uint64_t> asked;
};
}  // namespace

TEST_CASE("a bus asks its seq gate for a batch's last seq before it hands the batch out", "[log][reserve]") {
  RecordingGate gate;
  BusOptions options;
  options.firstSeq = 41;
  options.seqGate = &gate;
  Bus bus(StreamId{"s", 1}, nullptr, options);
  bus.publish(makeFrames(0, 3, kT0));
  bus.publish(makeFrames(0, 2, kT0));
  CHECK(gate.asked == std::vector<std::uint64_t>{43, 45});
  CHECK(bus.lastSeq() == 45);
}
