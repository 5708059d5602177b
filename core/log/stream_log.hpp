// SPDX-License-Identifier: Apache-2.0
#pragma once
// StreamLog: one stream's durable log (streams.NAME.log): a directory of
// append-only segment files (log_format.hpp), the stream's epoch and next
// seq across restarts, and what readers may read.
//
// Opening recovers the directory: every segment is scanned; a torn last
// record (a write cut short) is cut off; a record that fails its checksum
// ends the readable log there (the segment is cut there, the bad tail and
// any later segment are moved aside); a header this version cannot read
// makes the whole log unreadable: its files are moved aside and the stream
// starts a new epoch. One log line for each. Nothing a file holds makes it
// allocate more than the file, or crash.
//
// A write that fails (disk full, file too large, I/O error) loses the
// frames it carried: it is counted and logged (at most one line a second);
// the segment is cut back to its last whole record and closed, and the
// next frame written starts a new segment at its own seq. The gap in seq
// between the two segments is what readers see: frames the log does not
// hold. Live fan-out never waits for it.
//
// Writes go out in pieces of at most kWriteChunkBytes (a record larger
// than that alone), so the writer's buffer stays small however much is
// queued. Syncs run on the LogSyncer's thread while the writer goes on
// writing (log_syncer.hpp); fsynced_seq is what the last completed sync
// covered.
//
// Threads: append(), flush(), tick() and close() only from the writer's
// thread (LogWriter); everything else is thread safe. The sync thread is
// the LogSyncer's, owned here and ended by close() or the destructor.

#include <Poco/Logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "frame_batch.hpp"
#include "log_limiter.hpp"
#include "log_options.hpp"
#include "log_syncer.hpp"
#include "segment_index.hpp"
#include "seq_reservation.hpp"

namespace streamrelay {

struct LogStats {
  std::uint64_t firstSeq = 0;    // of the oldest frame kept (the next seq while the log is empty)
  std::uint64_t lastSeq = 0;     // of the newest frame written (firstSeq - 1 while empty)
  std::uint64_t fsyncedSeq = 0;  // every frame up to it written was forced to the disk
  std::uint64_t bytes = 0;
  std::uint64_t segments = 0;
  std::uint64_t writeErrors = 0;     // writes (of frames or of the reservation) that failed
  std::uint64_t framesWritten = 0;   // since the relay started: a rate over time
  std::uint64_t bytesWritten = 0;    // since the relay started, records as on the disk
  std::uint64_t reservedSeq = 0;  // the stream may hand out seqs up to it (on the disk: a restart goes on after it)
};

class StreamLog {
 public:
  // Opens (creating the directory) and recovers the log of stream `stream`.
  // Throws std::runtime_error, one line, if the directory cannot be created
  // or a segment cannot be written in it.
  // `sync` forces a segment's data to the disk (tests may slow it down or fail it).
  StreamLog(std::string stream, LogOptions options, LogSyncer::SyncFn sync = LogSyncer::fdatasyncFn());
  ~StreamLog();
  StreamLog(const StreamLog&) = delete;
  StreamLog& operator=(const StreamLog&) = delete;

  // What the stream goes on with: fixed at open (a mirrored log's epoch
  // changes with its writer's: read it only before the writer starts).
  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t nextSeqAtOpen() const { return nextSeqAtOpen_; }
  const LogOptions& options() const { return options_; }
  // What the stream's bus asks before it hands out a seq (seq_reservation.hpp).
  SeqGate& seqGate() const { return *reservation_; }
  // Shutdown: a publisher waiting for the seq reservation (a disk that
  // refuses it) returns, so that its source can stop.
  void releasePublisher() { reservation_->release(); }
  // Seqs that the run before may have handed out but never wrote (it
  // crashed): a gap in the log, never handed out again. None after a clean stop.
  struct SeqRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
  };
  const std::optional<SeqRange>& lostAtOpen() const { return lostAtOpen_; }
  // The provider position kept with the last frame the log held at open
  // ("" if none): where the stream's source resumes its provider (an SSE
  // source's Last-Event-ID), so the log has no gap and no duplicate.
  const std::string& providerPositionAtOpen() const { return providerPositionAtOpen_; }

  // Writer thread. Encodes frames [first, end) of `batch` for the next
  // flush(); with the batch's last frame, its provider position (if it has
  // one and it changed): in the same write as the frame, so a restart finds
  // the position of the last frame it holds.
  void append(const FrameBatch& batch, std::size_t first, std::size_t end);
  // Writer thread. Writes what append() encoded (a failure is counted and
  // loses those frames) and, with fsync `always`, forces it to the disk.
  void flush();
  // Writer thread. Syncs when `every_ms` is due; applies retention (at
  // most once a second). Returns when it next has something to do.
  std::chrono::steady_clock::time_point tick(std::chrono::steady_clock::time_point now);
  // Writer thread. Flushes, syncs (unless fsync is `never`), closes the
  // file, and records the last seq as the exact end of the reservation (a
  // clean stop: the next start goes on right after it).
  void close();

  LogStats stats() const;

  // The most bytes one write() carries (unless one record is larger).
  static constexpr std::size_t kWriteChunkBytes = 256 << 10;
  // Writer thread: what the buffer of records not yet written holds now
  // (bounded: about kWriteChunkBytes, more only while one larger record is in it).
  std::size_t writeBufferCapacity() const { return pending_.capacity(); }

  // For readers: a segment to read from `seq`: the one that holds it, else
  // the first after it (after a gap, or when `seq` was deleted); none if
  // nothing at or after `seq` is written yet.
  struct Readable {
    std::string path;
    std::uint64_t firstSeq = 0;
    std::uint64_t lastSeq = 0;      // written so far
    std::uint64_t startOffset = 0;  // at or before the record of max(seq, firstSeq)
    std::uint64_t endOffset = 0;    // written so far: read no further
  };
  std::optional<Readable> readableFrom(std::uint64_t seq) const;
  // The seq to start reading at for the first frame received at or after `unixNs`.
  std::uint64_t seqNear(std::int64_t unixNs) const;
  // Readers: waits until the log has written a frame with a seq after
  // `seq`, or `deadline`; true if it has.
  bool waitWrittenAfter(std::uint64_t seq, std::chrono::steady_clock::time_point deadline) const;
  // When the oldest frame kept was received (Unix ns); none while the log is empty.
  std::optional<std::int64_t> firstUnixNs() const;

 private:
  void recover();
  // `warn`: the log line is a warning (an old log could not be read), not news.
  void startNewEpoch(const std::string& why, bool warn = false);
  // Moves `paths` into this opening's aside folder (not deleted); returns the folder.
  std::string moveAside(const std::vector<std::string>& paths);
  void cutAt(const std::string& path, std::uint64_t offset, bool keepTail);
  // Writer thread, a mirrored log: frames of another epoch come; the old
  // epoch's segments are moved aside and a segment of `epoch` starts at `firstSeq`.
  void adoptEpoch(std::uint64_t epoch, std::uint64_t firstSeq);
  // Writer thread: a new segment whose first record will be `firstSeq`.
  bool openSegment(std::uint64_t firstSeq);
  void openActiveForAppend();
  // Writer thread: waits for a sync in progress and syncs what is written (sealing a segment, closing).
  bool syncNow();
  // Writer thread: a sync of the segment written to failed: counted, and the next frame starts a new segment.
  void noteSyncFailure();
  void writeFailed(const std::string& what, int error);
  void applyRetention(std::int64_t nowUnixNs);
  std::string segmentPath(std::uint64_t firstSeq) const;

  const std::string stream_;
  const LogOptions options_;
  Poco::Logger& logger_;
  LogLimiter errorLines_;
  std::uint64_t epoch_ = 0;
  std::uint64_t nextSeqAtOpen_ = 1;
  std::optional<SeqRange> lostAtOpen_;
  std::string providerPositionAtOpen_;
  std::unique_ptr<SeqReservation> reservation_;
  std::string asideDir_;  // where opening moved what it could not read (empty: nothing)

  mutable std::mutex mutex_;
  std::vector<SegmentIndex> segments_;  // guarded by mutex_: oldest first; the last is written to
  mutable std::condition_variable written_;  // writtenSeq_ grew
  std::atomic<std::uint64_t> writeErrors_{0};
  std::atomic<std::uint64_t> framesWritten_{0};
  std::atomic<std::uint64_t> bytesWritten_{0};

  // The writer thread's.
  std::shared_ptr<SegmentFile> file_;  // the last segment's, for appending (none: none usable)
  std::unique_ptr<LogSyncer> syncer_;  // from the end of recovery; its synced() is fsynced_seq
  bool closed_ = false;            // close() ran: the reservation's exact end is recorded
  bool broken_ = false;            // a write failed: the next frame starts a new segment
  std::uint64_t nextSeq_ = 1;      // the seq the next frame appended should have
  std::string pending_;            // encoded records not yet written
  struct PendingRecord {
    std::uint64_t seq;
    std::uint64_t bytes;
    std::int64_t unixNs;
    bool frame;  // else a position record
  };
  std::string lastPosition_;       // the provider position last appended (not appended again while it stays)
  std::vector<PendingRecord> pendingRecords_;
  std::uint64_t pendingFirstSeq_ = 0;
  std::uint64_t writtenSeq_ = 0;   // the newest seq written (not necessarily synced); set under mutex_, for readers
  std::chrono::steady_clock::time_point syncDue_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point retentionDue_{};
};

}  // namespace streamrelay
