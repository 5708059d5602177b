// SPDX-License-Identifier: Apache-2.0
#include "stream_log.hpp"

#include <Poco/Format.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "log_retention.hpp"
#include "segment_scan.hpp"

namespace streamrelay {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kSeqDigits = 20;
const char* const kSegmentSuffix = ".seg";

bool isSegmentName(const std::string& name) {
  return name.size() == kSeqDigits + 4 && name.compare(kSeqDigits, 4, kSegmentSuffix) == 0 &&
         std::all_of(name.begin(), name.begin() + kSeqDigits, [](char c) { return c >= '0' && c <= '9'; });
}

// Writes all of `size` bytes at `offset`; false with `error` (errno) if it cannot.
bool writeAll(int fd, const char* data, std::size_t size, std::uint64_t offset, int& error) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : ENOSPC;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

// A renamed or created file's name is durable once its directory is synced.
void syncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string utcStamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &tm);
  return text;
}

}  // namespace

StreamLog::StreamLog(std::string stream, LogOptions options, LogSyncer::SyncFn sync)
    : stream_(std::move(stream)), options_(std::move(options)), logger_(Poco::Logger::get("streamrelay")) {
  std::error_code error;
  fs::create_directories(options_.dir, error);
  if (error)
    throw std::runtime_error("streams." + stream_ + ".log.dir: cannot create " + options_.dir + ": " + error.message());
  recover();
  // What recovery left is on the disk: written and synced alike.
  syncer_ = std::make_unique<LogSyncer>(writtenSeq_, std::move(sync));
  syncer_->use(file_);
  nextSeqAtOpen_ = nextSeq_;
  reservation_ = std::make_unique<SeqReservation>(stream_, options_.dir, epoch_, nextSeq_ - 1 + SeqReservation::kBlock);
}

StreamLog::~StreamLog() {
  if (syncer_) syncer_->stop();
  file_.reset();
  // Not closed (its writer never ran), yet not a crash: nothing handed out
  // beyond what was asked for, so a restart needs no hole.
  if (!closed_) reservation_->recordExact(nextSeq_ - 1);
}

std::string StreamLog::segmentPath(std::uint64_t firstSeq) const {
  std::string digits = std::to_string(firstSeq);
  return (fs::path(options_.dir) / (std::string(kSeqDigits - digits.size(), '0') + digits + kSegmentSuffix)).string();
}

void StreamLog::recover() {
  std::vector<std::string> paths;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && isSegmentName(name)) paths.push_back(entry.path().string());
    else if (entry.is_regular_file() && name.size() > 8 && name.compare(name.size() - 8, 8, ".seg.tmp") == 0)
      fs::remove(entry.path());  // a segment whose creation was cut short: it never held a record
  }
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) return startNewEpoch("no log in " + options_.dir + " yet");

  std::vector<SegmentIndex> kept;
  RecordCursor::Position position;  // the last one of the segments kept
  std::size_t positionSegment = 0;  // the segment that holds it
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const SegmentScan scan = scanSegment(paths[i]);
    auto keep = [&] {
      kept.push_back(scan.segment);
      if (scan.lastPosition.seq != 0) {
        position = scan.lastPosition;
        positionSegment = kept.size() - 1;
      }
    };
    const bool unknownFormat = scan.outcome == SegmentScan::Outcome::BadHeader && !scan.headerTooShort &&
                               scan.headerProblem != logfmt::HeaderProblem::BadChecksum;
    if (unknownFormat || (kept.empty() && (scan.outcome == SegmentScan::Outcome::BadHeader ||
                                           scan.outcome == SegmentScan::Outcome::Unopenable))) {
      const std::string aside = moveAside(paths);
      return startNewEpoch("the log was unreadable (" + describeScan(scan) + "); its files were moved aside (not " +
                               "deleted) to " + aside,
                           true);
    }
    const std::vector<std::string> rest(paths.begin() + static_cast<std::ptrdiff_t>(i) + 1, paths.end());
    if (scan.outcome == SegmentScan::Outcome::BadHeader || scan.outcome == SegmentScan::Outcome::Unopenable ||
        (!kept.empty() && (scan.segment.header.epoch != kept.front().header.epoch ||
                           scan.segment.firstSeq() < kept.back().nextSeq()))) {
      const std::string why = scan.outcome == SegmentScan::Outcome::BadHeader ||
                                      scan.outcome == SegmentScan::Outcome::Unopenable
                                  ? describeScan(scan)
                                  : paths[i] + ": does not follow the segment before it (epoch or seq)";
      const std::string aside = moveAside({paths.begin() + static_cast<std::ptrdiff_t>(i), paths.end()});
      logger_.warning("stream %s: log %s: the readable log ends before it; it and any later segment were moved aside "
                      "(not deleted) to %s", stream_, why, aside);
      break;
    }
    if (scan.outcome == SegmentScan::Outcome::Torn) {
      logger_.warning("stream %s: log %s: cut off", stream_, describeScan(scan));
      cutAt(paths[i], scan.problemOffset, false);
    } else if (scan.outcome == SegmentScan::Outcome::Corrupt) {
      cutAt(paths[i], scan.problemOffset, true);
      const std::string aside = moveAside(rest);
      logger_.warning("stream %s: log %s: the readable log ends there (after seq %?u); the file as found and any later "
                      "segment were moved aside (not deleted) to %s", stream_, describeScan(scan),
                      scan.segment.lastSeq(), aside);
      keep();
      break;
    }
    keep();
  }
  // Frames after the last position kept are frames whose position was
  // never written (a write cut short): the provider, resumed after that
  // position, sends them again. Cut off (in its segment; later segments
  // moved aside), they are not in the log twice. A segment gets a position
  // record with its first batch that has one, so frames of later segments
  // without one lost theirs.
  if (position.seq != 0 && position.seq < kept.back().lastSeq()) {
    const std::size_t holder = positionSegment;
    logger_.warning("stream %s: log %s: frames %?u to %?u follow the last provider position kept with them: cut off "
                    "(the provider sends them again)", stream_, options_.dir, position.seq + 1, kept.back().lastSeq());
    std::vector<std::string> later;
    for (std::size_t i = holder + 1; i < kept.size(); ++i) later.push_back(kept[i].path);
    if (!later.empty()) moveAside(later);
    kept.resize(holder + 1);
    cutAt(kept.back().path, position.endOffset, false);
    kept.back() = scanSegment(kept.back().path).segment;
  }
  segments_ = std::move(kept);
  providerPositionAtOpen_ = position.value;
  lastPosition_ = position.value;
  epoch_ = segments_.front().header.epoch;
  nextSeq_ = segments_.back().nextSeq();
  writtenSeq_ = nextSeq_ - 1;
  openActiveForAppend();
  if (options_.mirror) {  // the seqs are the writer's: what was not written comes again from it
    logger_.information("stream %s: log %s: epoch %?u goes on at seq %?u (%z segment(s), mirrored)", stream_,
                        options_.dir, epoch_, nextSeq_, segments_.size());
    return;
  }
  const SeqReservation::Found reserved = SeqReservation::read(options_.dir, epoch_);
  if (reserved.what == SeqReservation::Found::What::Damaged) {
    std::vector<std::string> all;
    for (const SegmentIndex& segment : segments_) all.push_back(segment.path);
    const std::string aside = moveAside(all);
    return startNewEpoch("its reservation file is unreadable, so the seqs already handed out are unknown; the log's "
                         "files were moved aside (not deleted) to " + aside,
                         true);
  }
  if (reserved.what == SeqReservation::Found::What::Valid && reserved.reservedSeq >= nextSeq_) {
    // Handed out, perhaps to subscribers, never written: never handed out again.
    lostAtOpen_ = SeqRange{nextSeq_, reserved.reservedSeq};
    logger_.warning("stream %s: log %s: seqs %?u to %?u may have been published but were not written before the "
                    "relay stopped: they are a gap in the log; new frames go on at %?u",
                    stream_, options_.dir, lostAtOpen_->first, lostAtOpen_->last, reserved.reservedSeq + 1);
    if (!openSegment(reserved.reservedSeq + 1))
      throw std::runtime_error("streams." + stream_ + ".log.dir: cannot write a segment in " + options_.dir);
  }
  logger_.information("stream %s: log %s: epoch %?u goes on at seq %?u (%z segment(s))", stream_, options_.dir, epoch_,
                      nextSeq_, segments_.size());
}

void StreamLog::startNewEpoch(const std::string& why, bool warn) {
  epoch_ = newEpoch();
  providerPositionAtOpen_.clear();  // the provider's position went with the log
  lastPosition_.clear();
  segments_.clear();
  if (!openSegment(1))
    throw std::runtime_error("streams." + stream_ + ".log.dir: cannot write a segment in " + options_.dir);
  const std::string line = Poco::format("stream %s: a new epoch %?u at seq 1: %s", stream_, epoch_, why);
  if (warn) logger_.warning(line);
  else logger_.information(line);
}

std::string StreamLog::moveAside(const std::vector<std::string>& paths) {
  if (asideDir_.empty()) {  // one folder for everything one opening moves aside
    asideDir_ = (fs::path(options_.dir) / ("aside-" + utcStamp())).string();
    for (int n = 2; fs::exists(asideDir_); ++n)
      asideDir_ = (fs::path(options_.dir) / ("aside-" + utcStamp() + "-" + std::to_string(n))).string();
  }
  std::error_code error;
  fs::create_directories(asideDir_, error);
  for (const std::string& path : paths)
    if (!error) fs::rename(path, fs::path(asideDir_) / fs::path(path).filename(), error);
  if (error)
    throw std::runtime_error("stream " + stream_ + ": log " + options_.dir + ": cannot move files aside to " +
                             asideDir_ + ": " + error.message());
  syncDirectory(options_.dir);
  return asideDir_;
}

void StreamLog::cutAt(const std::string& path, std::uint64_t offset, bool keepTail) {
  if (!keepTail) {
    if (::truncate(path.c_str(), static_cast<off_t>(offset)) != 0)
      throw std::runtime_error("stream " + stream_ + ": log " + path + ": cannot cut off its torn end: " +
                               std::strerror(errno));
    return;
  }
  // Kept whole, aside; its readable part is copied in its place.
  const std::string copy = path + ".cut";
  std::error_code error;
  fs::copy_file(path, copy, fs::copy_options::overwrite_existing, error);
  if (!error) fs::resize_file(copy, offset, error);
  if (error)
    throw std::runtime_error("stream " + stream_ + ": log " + path + ": cannot cut it at offset " +
                             std::to_string(offset) + ": " + error.message());
  moveAside({path});
  fs::rename(copy, path, error);
  if (error) throw std::runtime_error("stream " + stream_ + ": log " + path + ": " + error.message());
}

void StreamLog::openActiveForAppend() {
  const std::string& path = segments_.back().path;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error("streams." + stream_ + ".log.dir: cannot write " + path + ": " + std::strerror(errno));
  // What a killed relay left in the page cache is on the disk from here on.
  ::fdatasync(fd);
  file_ = std::make_shared<SegmentFile>(fd, path);
}

bool StreamLog::openSegment(std::uint64_t firstSeq) {
  const std::string path = segmentPath(firstSeq);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int error = errno;
  logfmt::SegmentHeader header{epoch_, firstSeq, unixNowNs()};
  const std::string bytes = logfmt::encodeHeader(header);
  // The header is synced even with fsync `never`: it holds the epoch.
  const bool written = fd >= 0 && writeAll(fd, bytes.data(), bytes.size(), 0, error) &&
                       (::fdatasync(fd) == 0 || ((error = errno), false)) &&
                       (::rename(tmp.c_str(), path.c_str()) == 0 || ((error = errno), false));
  if (!written) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    writeFailed("creating " + path, error);
    return false;
  }
  syncDirectory(options_.dir);
  file_ = std::make_shared<SegmentFile>(fd, path);  // the old one closes with its last owner
  if (syncer_) syncer_->use(file_);
  SegmentIndex segment;
  segment.path = path;
  segment.header = header;
  std::string emptyBefore;  // a segment that never got a record is replaced, not kept
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!segments_.empty() && segments_.back().empty()) {
      if (segments_.back().path != path) emptyBefore = segments_.back().path;
      segments_.pop_back();
    }
    segments_.push_back(std::move(segment));
  }
  if (!emptyBefore.empty()) ::unlink(emptyBefore.c_str());
  lastPosition_.clear();  // each segment keeps a position of its own: recovery reads the last segment's
  broken_ = false;
  nextSeq_ = firstSeq;
  retentionDue_ = {};  // a segment was sealed: retention may apply now
  return true;
}

void StreamLog::adoptEpoch(std::uint64_t epoch, std::uint64_t firstSeq) {
  flush();
  if (options_.fsync != FsyncPolicy::Never) syncNow();
  std::vector<std::string> written, empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const SegmentIndex& segment : segments_) (segment.empty() ? empty : written).push_back(segment.path);
    segments_.clear();
  }
  for (const std::string& path : empty) ::unlink(path.c_str());
  const std::string aside = written.empty() ? std::string() : moveAside(written);
  const std::uint64_t was = epoch_;
  epoch_ = epoch;
  lastPosition_.clear();
  if (!openSegment(firstSeq)) return;  // counted; the next frame tries again
  if (aside.empty())
    logger_.information("stream %s: log %s: epoch %?u (the writer's) at seq %?u", stream_, options_.dir, epoch,
                        firstSeq);
  else
    logger_.warning("stream %s: log %s: the writer's stream has a new epoch %?u (was %?u) from seq %?u: the old "
                    "epoch's segments were moved aside (not deleted) to %s", stream_, options_.dir, epoch, was,
                    firstSeq, aside);
}

void StreamLog::append(const FrameBatch& batch, std::size_t first, std::size_t end) {
  noteSyncFailure();  // a failed segment gets no more frames
  if (options_.mirror && first < end && batch.stream() && batch.stream()->epoch != epoch_)
    adoptEpoch(batch.stream()->epoch, batch.seq(first));
  for (std::size_t i = first; i < end; ++i) {
    const std::uint64_t seq = batch.seq(i);
    const std::string_view key = batch.key(i);
    const std::string_view payload = batch.payload(i);
    // Keys are at most 256 bytes (subject.hpp, the ABI): one beyond what a reader takes would end the log.
    const bool keyed = batch.hasKey(i) && key.size() <= logfmt::kMaxKeyBytes;
    const std::uint64_t bytes = logfmt::recordBytes(keyed ? key.size() : 0, payload.size());
    if (!pending_.empty() && pending_.size() + bytes > kWriteChunkBytes) flush();  // memory bounded, not the queue's size
    const SegmentIndex& active = segments_.back();
    const bool full = (!active.empty() || !pending_.empty()) &&
                      active.endOffset + pending_.size() + bytes > options_.segmentBytes;
    if (broken_ || !file_ || seq != nextSeq_ || full) {
      flush();
      // Sealed: on the disk before the next one starts, so fsynced_seq names none of its frames before that.
      if (options_.fsync != FsyncPolicy::Never) syncNow();
      if (!openSegment(seq)) return;  // these frames are lost: counted, a gap
    }
    if (pending_.empty()) pendingFirstSeq_ = seq;
    logfmt::appendRecord(pending_, seq, batch.receivedUnixNs(), keyed ? &key : nullptr, payload);
    pendingRecords_.push_back({seq, bytes, batch.receivedUnixNs(), true});
    nextSeq_ = seq + 1;
  }
  const std::string& position = batch.providerPosition();
  if (end == batch.frameCount() && end > first && !position.empty() && position != lastPosition_ &&
      position.size() <= logfmt::kMaxPositionBytes) {
    const std::uint64_t seq = batch.seq(end - 1);
    logfmt::appendPositionRecord(pending_, seq, batch.receivedUnixNs(), position);
    pendingRecords_.push_back({seq, logfmt::recordBytes(0, position.size()), batch.receivedUnixNs(), false});
    lastPosition_ = position;
  }
}

void StreamLog::flush() {
  noteSyncFailure();
  if (pending_.empty()) return;
  SegmentIndex& active = segments_.back();
  int error = 0;
  if (!writeAll(file_->fd(), pending_.data(), pending_.size(), active.endOffset, error)) {
    // Cut back to the last whole record (if the disk lets us): the next
    // start then finds no torn record here.
    const int cut = ::ftruncate(file_->fd(), static_cast<off_t>(active.endOffset));
    (void)cut;  // if even that fails, the next start cuts the torn record off
    writeFailed("writing " + active.path + " (seq " + std::to_string(pendingFirstSeq_) + " to " +
                    std::to_string(pendingRecords_.back().seq) + " lost)",
                error);
    broken_ = true;
    lastPosition_.clear();  // lost with the write: the next one is written whatever it is
  } else {
    std::lock_guard<std::mutex> lock(mutex_);
    std::uint64_t offset = active.endOffset;
    for (const PendingRecord& r : pendingRecords_) {
      if (r.frame) active.noteRecord(r.seq, offset, r.bytes, r.unixNs);
      else active.notePosition(offset, r.bytes);
      offset += r.bytes;
    }
    writtenSeq_ = pendingRecords_.back().seq;
    framesWritten_.fetch_add(static_cast<std::uint64_t>(std::count_if(pendingRecords_.begin(), pendingRecords_.end(),
                                                                       [](const PendingRecord& r) { return r.frame; })),
                             std::memory_order_relaxed);
    bytesWritten_.fetch_add(pending_.size(), std::memory_order_relaxed);
  }
  written_.notify_all();  // readers waiting for more (waitWrittenAfter)
  pending_.clear();
  pendingRecords_.clear();
  // A record larger than a chunk grew them: not kept at that size.
  if (pending_.capacity() > 2 * kWriteChunkBytes) std::string().swap(pending_);
  if (pendingRecords_.capacity() > kWriteChunkBytes / 16) std::vector<PendingRecord>().swap(pendingRecords_);
  if (broken_) return;
  syncer_->written(writtenSeq_);
  if (options_.fsync == FsyncPolicy::Always) syncer_->request();  // group commit: the writer goes on meanwhile
  else if (options_.fsync == FsyncPolicy::EveryMs && syncDue_ == std::chrono::steady_clock::time_point::max())
    syncDue_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.fsyncEveryMs);
}

bool StreamLog::syncNow() {
  syncDue_ = std::chrono::steady_clock::time_point::max();
  noteSyncFailure();
  if (!file_ || broken_) return false;
  const bool synced = syncer_->syncNow();
  noteSyncFailure();
  return synced && !broken_;
}

void StreamLog::noteSyncFailure() {
  const std::optional<LogSyncer::Failure> failure = syncer_->takeFailure();
  if (!failure) return;
  writeFailed("syncing " + failure->file->path(), failure->error);
  // After a failed fsync the page cache cannot be trusted: a new segment.
  if (failure->file == file_) broken_ = true;
}

std::chrono::steady_clock::time_point StreamLog::tick(std::chrono::steady_clock::time_point now) {
  noteSyncFailure();
  if (syncDue_ <= now) {
    syncDue_ = std::chrono::steady_clock::time_point::max();
    if (file_ && !broken_) syncer_->request();
  }
  if (retentionDue_ <= now) {
    applyRetention(unixNowNs());
    retentionDue_ = now + std::chrono::seconds(1);
  }
  return std::min(syncDue_, retentionDue_);
}

void StreamLog::close() {
  flush();
  if (options_.fsync != FsyncPolicy::Never) syncNow();
  syncer_->stop();
  file_.reset();
  closed_ = true;
  reservation_->recordExact(nextSeq_ - 1);  // a clean restart goes on right after the last frame: no hole
}

void StreamLog::applyRetention(std::int64_t nowUnixNs) {
  const RetainLimits& limits = options_.retain;
  if (limits.bytes == 0 && limits.ageS == 0 && limits.frames == 0) return;
  std::vector<std::string> deleted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t count = segmentsToDelete(segments_, limits, nowUnixNs);
    for (std::size_t i = 0; i < count; ++i) deleted.push_back(segments_[i].path);
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(count));
  }
  // A reader that has one of them open reads on: the file goes with its last descriptor.
  for (const std::string& path : deleted) ::unlink(path.c_str());
}

void StreamLog::writeFailed(const std::string& what, int error) {
  writeErrors_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t suppressed = 0;
  if (errorLines_.allow(suppressed))
    logger_.error("stream %s: log write failed: %s: %s (%?u more failures since the last line); live subscribers "
                  "are not affected; frames not written are a gap in the log",
                  stream_, what, std::string(std::strerror(error)), suppressed);
}

LogStats StreamLog::stats() const {
  LogStats s;
  // Read before the segments: it never names more than they hold then.
  s.fsyncedSeq = syncer_->synced();
  std::lock_guard<std::mutex> lock(mutex_);
  s.firstSeq = segments_.empty() ? 0 : segments_.front().firstSeq();
  s.lastSeq = s.firstSeq == 0 ? 0 : s.firstSeq - 1;
  for (const SegmentIndex& segment : segments_) {
    if (!segment.empty()) s.lastSeq = segment.lastSeq();
    s.bytes += segment.endOffset;
  }
  s.segments = segments_.size();
  s.writeErrors = writeErrors_.load(std::memory_order_relaxed) + reservation_->writeErrors();
  s.reservedSeq = reservation_->reserved();
  s.framesWritten = framesWritten_.load(std::memory_order_relaxed);
  s.bytesWritten = bytesWritten_.load(std::memory_order_relaxed);
  return s;
}

std::optional<StreamLog::Readable> StreamLog::readableFrom(std::uint64_t seq) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const SegmentIndex& s : segments_) {
    if (s.empty() || s.lastSeq() < seq) continue;
    return Readable{s.path, s.firstSeq(), s.lastSeq(), s.offsetFor(std::max(seq, s.firstSeq())), s.endOffset};
  }
  return std::nullopt;
}

std::uint64_t StreamLog::seqNear(std::int64_t unixNs) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const SegmentIndex& s : segments_)
    if (!s.empty() && s.lastUnixNs >= unixNs) return s.seqNear(unixNs);
  return segments_.empty() ? 1 : segments_.back().nextSeq();
}

bool StreamLog::waitWrittenAfter(std::uint64_t seq, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return written_.wait_until(lock, deadline, [&] { return writtenSeq_ > seq; });
}

std::optional<std::int64_t> StreamLog::firstUnixNs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const SegmentIndex& s : segments_)
    if (!s.empty() && !s.index.empty()) return s.index.front().unixNs;
  return std::nullopt;
}

}  // namespace streamrelay
