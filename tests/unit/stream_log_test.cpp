// SPDX-License-Identifier: Apache-2.0
// StreamLog on real files: what a restart keeps, what a damaged file gives
// back (never a wrong frame), retention, and a write that fails.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "log_retention.hpp"
#include "log_test_support.hpp"

using namespace streamrelay;
using namespace streamrelay::test;

namespace {

constexpr std::int64_t kT0 = 1700000000LL * 1000000000LL;

LogOptions optionsFor(const std::string& dir, std::uint64_t segmentBytes = 64 << 20) {
  LogOptions o;
  o.dir = dir;
  o.segmentBytes = segmentBytes;
  o.fsync = FsyncPolicy::Never;
  return o;
}

// Writes `batches` batches of `perBatch` frames from seq 1 and closes the
// log; returns the frames written and the epoch.
std::vector<LoggedFrame> writeLog(const LogOptions& options, int batches, int perBatch, std::uint64_t* epoch = nullptr) {
  StreamLog log("s", options);
  if (epoch) *epoch = log.epoch();
  std::vector<LoggedFrame> all;
  std::uint64_t seq = log.nextSeqAtOpen();
  for (int b = 0; b < batches; ++b) {
    auto batch = makeFrames(seq, perBatch, kT0 + b * 1000000LL);
    log.append(*batch, 0, batch->frameCount());
    log.flush();
    for (auto& f : framesOf(*batch)) all.push_back(f);
    seq += perBatch;
  }
  log.close();
  return all;
}

std::uint64_t fileSize(const std::string& path) { return std::filesystem::file_size(path); }

void flipBit(const std::string& path, std::uint64_t offset, int bit = 0) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ (1 << bit));
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// Where each record of a segment starts (read with the library's own cursor,
// from a log known to be whole).
std::vector<std::uint64_t> recordOffsets(const std::string& path) {
  RecordCursor cursor;
  std::string error;
  REQUIRE(cursor.open(path, error));
  logfmt::SegmentHeader header;
  bool tooShort = false;
  REQUIRE(cursor.readHeader(header, nullptr, tooShort) == logfmt::HeaderProblem::None);
  std::vector<std::uint64_t> offsets;
  logfmt::Record r;
  for (;;) {
    const std::uint64_t at = cursor.offset();
    if (cursor.next(cursor.fileSize(), r) != RecordCursor::Step::Record) break;
    offsets.push_back(at);
  }
  return offsets;
}

}  // namespace

TEST_CASE("a log reopened gives back every frame as written and goes on with its epoch and seq", "[log]") {
  ScratchDir dir;
  const LogOptions options = optionsFor(dir.sub("s"), 4096);  // many segments
  std::uint64_t epoch = 0;
  const std::vector<LoggedFrame> written = writeLog(options, 40, 7, &epoch);
  REQUIRE(segmentFiles(options.dir).size() > 3);

  StreamLog log("s", options);
  CHECK(log.epoch() == epoch);
  CHECK(log.nextSeqAtOpen() == written.size() + 1);
  CHECK(readAll(log) == written);
  // From a seq in the middle, and from a time.
  const std::vector<LoggedFrame> tail(written.begin() + 100, written.end());
  CHECK(readAll(log, 101) == tail);
  LogReader byTime(log, LogReader::FromTime{kT0 + 20 * 1000000LL});
  logfmt::Record r;
  REQUIRE(byTime.next(r));
  CHECK(r.seq == 20 * 7 + 1);  // the first frame of batch 20
  const LogStats stats = log.stats();
  CHECK(stats.firstSeq == 1);
  CHECK(stats.lastSeq == written.size());
  CHECK(stats.fsyncedSeq == written.size());
  CHECK(stats.segments == segmentFiles(options.dir).size());
  CHECK(stats.writeErrors == 0);
}

TEST_CASE("a missing log starts a new epoch at seq 1, and each new log another", "[log]") {
  ScratchDir dir;
  StreamLog a("s", optionsFor(dir.sub("a")));
  StreamLog b("s", optionsFor(dir.sub("b")));
  CHECK(a.nextSeqAtOpen() == 1);
  CHECK(a.epoch() != 0);
  CHECK(a.epoch() != b.epoch());
  CHECK(segmentFiles(dir.sub("a")).size() == 1);  // the epoch is on disk before any frame
}

TEST_CASE("an empty log keeps its epoch across a restart", "[log]") {
  ScratchDir dir;
  std::uint64_t epoch = 0;
  { epoch = StreamLog("s", optionsFor(dir.path)).epoch(); }
  StreamLog again("s", optionsFor(dir.path));
  CHECK(again.epoch() == epoch);
  CHECK(again.nextSeqAtOpen() == 1);
}

TEST_CASE("a torn last record is cut off and the rest reads", "[log]") {
  // The last record cut inside its length, its checksums, its fixed fields, its key, its payload.
  const auto [cutInto, what] = GENERATE(table<std::uint64_t, const char*>(
      {{2, "length"}, {6, "length's checksum"}, {10, "checksum"}, {16, "seq"}, {33, "key"}, {45, "payload"}}));
  INFO("cut inside the " << what);
  ScratchDir dir;
  const LogOptions options = optionsFor(dir.path);
  std::uint64_t epoch = 0;
  const std::vector<LoggedFrame> written = writeLog(options, 1, 29, &epoch);  // the last one has a key
  const std::string segment = segmentFiles(dir.path).back();
  const std::uint64_t last = recordOffsets(segment).back();
  std::filesystem::resize_file(segment, last + cutInto);

  StreamLog log("s", options);
  CHECK(log.epoch() == epoch);
  // The last frame is gone; its seq was handed out, so it is not given again (seq_reservation.hpp).
  CHECK(log.nextSeqAtOpen() == written.size() + 1);
  REQUIRE(log.lostAtOpen());
  CHECK(log.lostAtOpen()->first == written.size());
  CHECK(readAll(log) == std::vector<LoggedFrame>(written.begin(), written.end() - 1));
  CHECK(fileSize(segment) == last);  // cut off on disk: a next record follows the last whole one
  CHECK_FALSE(hasAsideDir(dir.path));
  // And it goes on from there.
  auto more = makeFrames(log.nextSeqAtOpen(), 2, kT0);
  log.append(*more, 0, 2);
  log.flush();
  CHECK(readAll(log, written.size()) == framesOf(*more));
}

TEST_CASE("a bit flipped in a record ends the readable log at that record, never a wrong frame", "[log]") {
  // Record k of the first segment (of several): a flip in its length, checksums, seq, time, key or payload.
  const auto [field, what] = GENERATE(table<std::uint64_t, const char*>({{1, "length"},
                                                                         {5, "length's checksum"},
                                                                         {9, "checksum"},
                                                                         {13, "seq"},
                                                                         {21, "time"},
                                                                         {32, "key"},
                                                                         {39, "payload"}}));
  INFO("flip in the " << what);
  ScratchDir dir;
  const LogOptions options = optionsFor(dir.path, 2048);
  std::uint64_t epoch = 0;
  const std::vector<LoggedFrame> written = writeLog(options, 10, 10, &epoch);
  const std::vector<std::string> segments = segmentFiles(dir.path);
  REQUIRE(segments.size() >= 2);
  const std::vector<std::uint64_t> offsets = recordOffsets(segments.front());
  REQUIRE(offsets.size() > 6);
  const std::size_t k = 4;  // seq 5, a frame with a key
  flipBit(segments.front(), offsets[k] + field, 3);

  StreamLog log("s", options);
  CHECK(log.epoch() == epoch);
  // The frames after it were handed out: their seqs are not given again, the stream goes on after them.
  CHECK(log.nextSeqAtOpen() == written.size() + 1);
  CHECK(readAll(log) == std::vector<LoggedFrame>(written.begin(), written.begin() + k));
  CHECK(hasAsideDir(dir.path));  // the file as found and the later segments, kept for a person to look at
  // The readable part, and the segment the stream goes on in.
  const std::vector<std::string> kept = segmentFiles(dir.path);
  REQUIRE(kept.size() == 2);
  CHECK(kept.front() == segments.front());
  CHECK(std::filesystem::path(kept.back()).filename() == "00000000000000000101.seg");
}

TEST_CASE("a header with bad magic or an unknown version makes the log unreadable: a new epoch, files moved aside",
          "[log]") {
  const auto [offset, what] = GENERATE(table<std::uint64_t, const char*>(
      {{0, "magic"}, {8, "version"}, {17, "epoch (checksum)"}}));
  INFO("flip in the header's " << what);
  ScratchDir dir;
  const LogOptions options = optionsFor(dir.path);
  std::uint64_t epoch = 0;
  writeLog(options, 2, 5, &epoch);
  flipBit(segmentFiles(dir.path).front(), offset);

  StreamLog log("s", options);
  CHECK(log.epoch() != epoch);
  CHECK(log.nextSeqAtOpen() == 1);
  CHECK(readAll(log).empty());
  CHECK(hasAsideDir(dir.path));
}

TEST_CASE("a file of garbage named like a segment is not a log", "[log]") {
  ScratchDir dir;
  std::ofstream(dir.sub("00000000000000000001.seg")) << std::string(100, '\xff');
  StreamLog log("s", optionsFor(dir.path));
  CHECK(log.nextSeqAtOpen() == 1);
  CHECK(hasAsideDir(dir.path));
}

TEST_CASE("retention deletes only whole sealed segments, oldest first", "[log]") {
  ScratchDir dir;
  LogOptions options = optionsFor(dir.path, 4096);
  std::uint64_t keepAtLeast = 0;
  SECTION("bytes") {
    options.retain.bytes = 10000;
    keepAtLeast = 0;
  }
  SECTION("frames") {
    options.retain.frames = 100;
    keepAtLeast = 100;
  }
  SECTION("age_s") {
    options.retain.ageS = 3600;
    // the frames were received in 2023
  }
  StreamLog log("s", options);
  std::uint64_t seq = 1;
  for (int b = 0; b < 60; ++b) {
    auto batch = makeFrames(seq, 10, kT0, 40);
    log.append(*batch, 0, batch->frameCount());
    log.flush();
    seq += 10;
  }
  const std::vector<std::string> before = segmentFiles(dir.path);
  REQUIRE(before.size() > 5);
  log.tick(std::chrono::steady_clock::now());  // retention applies at its first tick
  const std::vector<std::string> after = segmentFiles(dir.path);
  REQUIRE(after.size() < before.size());
  // What is left is the newest segments, whole: the first seq kept starts a segment.
  CHECK(std::equal(after.begin(), after.end(), before.end() - static_cast<std::ptrdiff_t>(after.size())));
  const LogStats stats = log.stats();
  CHECK(stats.segments == after.size());
  CHECK(std::filesystem::path(after.front()).filename().string() ==
        std::string(20 - std::to_string(stats.firstSeq).size(), '0') + std::to_string(stats.firstSeq) + ".seg");
  CHECK(stats.lastSeq == seq - 1);
  const std::vector<LoggedFrame> left = readAll(log);
  REQUIRE(!left.empty());
  CHECK(left.front().seq == stats.firstSeq);
  CHECK(left.back().seq == seq - 1);
  if (options.retain.frames) CHECK(left.size() >= keepAtLeast);
  if (options.retain.bytes) CHECK(stats.bytes >= options.retain.bytes);
  if (options.retain.ageS) CHECK(after.size() == 1);  // every sealed one was old; the one written to stays
}

TEST_CASE("retention's choice: the newest segment stays, limits are caps kept at least", "[log]") {
  std::vector<SegmentIndex> segments(4);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    segments[i].header.firstSeq = 1 + 10 * i;
    segments[i].frames = 10;
    segments[i].endOffset = 1000;
    segments[i].lastUnixNs = kT0 + static_cast<std::int64_t>(i) * 1000000000LL;
  }
  CHECK(segmentsToDelete(segments, RetainLimits{}, kT0) == 0);
  CHECK(segmentsToDelete(segments, RetainLimits{2000, 0, 0}, kT0) == 2);
  CHECK(segmentsToDelete(segments, RetainLimits{2001, 0, 0}, kT0) == 1);
  CHECK(segmentsToDelete(segments, RetainLimits{0, 0, 1}, kT0) == 3);
  CHECK(segmentsToDelete(segments, RetainLimits{0, 0, 25}, kT0) == 1);
  CHECK(segmentsToDelete(segments, RetainLimits{0, 2, 0}, kT0 + 4000000000LL) == 2);  // older than 2 s: segments 0 and 1
  CHECK(segmentsToDelete(segments, RetainLimits{0, 1, 0}, kT0 + 100000000000LL) == 3);
}

TEST_CASE("a write that fails is counted, leaves a gap, and the writer goes on", "[log]") {
  ScratchDir dir;
  // In a child: RLIMIT_FSIZE makes every write past 100 KiB of a file fail
  // (EFBIG; SIGXFSZ ignored), as a full disk would.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{100 << 10, 100 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
    LogOptions options = optionsFor(dir.path, 1 << 20);
    std::vector<LoggedFrame> written;
    {
      StreamLog log("s", options);
      std::uint64_t seq = 1;
      for (int b = 0; b < 25; ++b) {  // 10 KiB a batch: every tenth fails
        auto batch = makeFrames(seq, 10, kT0, 1000);
        log.append(*batch, 0, batch->frameCount());
        log.flush();
        for (auto& f : framesOf(*batch)) written.push_back(f);
        seq += 10;
      }
      const LogStats stats = log.stats();
      if (stats.writeErrors != 2) ::_exit(11);
      if (stats.lastSeq != seq - 1) ::_exit(12);  // it went on after each failure
      log.close();
    }
    StreamLog reopened("s", options);
    if (reopened.nextSeqAtOpen() != 251) ::_exit(13);
    const std::vector<LoggedFrame> read = readAll(reopened);
    // Every frame read is the frame written with its seq; batches 10 and 20 are the gaps.
    std::size_t gaps = 0;
    for (std::size_t i = 0; i < read.size(); ++i) {
      if (!(read[i] == written[read[i].seq - 1])) ::_exit(14);
      if (i > 0 && read[i].seq != read[i - 1].seq + 1) ++gaps;
    }
    if (gaps != 2 || read.size() != written.size() - 20) ::_exit(15);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// A reader from a time, made before any frame at or after that time was
// written (a client's from_time just after now): the log's older frames
// it passes over fill whole segments, and it still finds the first one at
// the time in a later segment.
TEST_CASE("a reader from a time passes over older frames across segments written after it began", "[log]") {
  ScratchDir dir;
  StreamLog log("s", optionsFor(dir.path, 4096));  // a few batches a segment
  auto appendBatch = [&](std::uint64_t seq, int b) {
    auto batch = makeFrames(seq, 7, kT0 + b * 1000000LL, 100);
    log.seqGate().awaitReserved(seq + 6);
    log.append(*batch, 0, batch->frameCount());
    log.flush();
  };
  appendBatch(1, 0);
  LogReader byTime(log, LogReader::FromTime{kT0 + 30 * 1000000LL});
  logfmt::Record r;
  CHECK_FALSE(byTime.next(r));  // nothing at or after the time yet
  for (int b = 1; b < 40; ++b) appendBatch(1 + 7 * static_cast<std::uint64_t>(b), b);
  REQUIRE(log.stats().segments > 3);
  bool found = false;
  for (int tries = 0; tries < 100 && !found; ++tries) found = byTime.next(r);  // each call reads on a little
  REQUIRE(found);
  CHECK(r.seq == 30 * 7 + 1);  // the first frame of batch 30
  log.close();
}
