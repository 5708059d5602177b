// SPDX-License-Identifier: Apache-2.0
#include "log_replays.hpp"

#include <algorithm>

#include "log_reader.hpp"

namespace streamrelay {

LogReplays::LogReplays(const StreamLog& log, Bus& bus)
    : log_(log), bus_(bus), logger_(Poco::Logger::get("streamrelay")) {}

LogReplays::~LogReplays() { stop(); }

bool LogReplays::holdsFrom(std::uint64_t seq) const {
  // Frames the bus published and the log has not written yet will be: the
  // reader waits for them. A seq in a gap (a crash's lost seqs, a failed
  // write's, deleted by retention) is not held: the resume is not recovered.
  if (seq < log_.stats().firstSeq) return false;
  if (const std::optional<StreamLog::Readable> segment = log_.readableFrom(seq)) return segment->firstSeq <= seq;
  const std::optional<StreamLog::SeqRange>& lost = log_.lostAtOpen();
  return !lost || seq > lost->last;
}

Backfill::TimeStart LogReplays::searchStartFor(std::int64_t unixNs) const {
  TimeStart start;
  start.seq = log_.seqNear(unixNs);
  const std::optional<std::int64_t> oldest = log_.firstUnixNs();
  start.covered = oldest && *oldest <= unixNs;
  return start;
}

void LogReplays::replay(QueuePtr queue, std::uint64_t seq, std::vector<std::string> select, std::int64_t fromUnixNs) {
  std::lock_guard<std::mutex> lock(mutex_);
  reapLocked();
  if (stopped_) {
    queue->close(CloseReason::Shutdown);
    return;
  }
  Reader& reader = readers_.emplace_back();
  reader.queue = std::move(queue);
  reader.seq = seq;
  reader.select = std::move(select);
  reader.fromUnixNs = fromUnixNs;
  reader.thread = std::thread([this, &reader] { run(reader); });
}

void LogReplays::reapLocked() {
  for (auto it = readers_.begin(); it != readers_.end();) {
    if (!it->done.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    it->thread.join();
    it = readers_.erase(it);
  }
}

void LogReplays::stop() {
  std::list<Reader> ending;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    ending.splice(ending.end(), readers_);
  }
  // Wakes a reader waiting for room; one waiting for the log sees it within its wait's deadline.
  for (Reader& reader : ending) reader.queue->close(CloseReason::Shutdown);
  for (Reader& reader : ending) reader.thread.join();
}

std::size_t LogReplays::readers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<std::size_t>(
      std::count_if(readers_.begin(), readers_.end(), [](const Reader& r) { return !r.done.load(); }));
}

std::size_t LogReplays::readAheadBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t bytes = 0;
  for (const Reader& reader : readers_)
    if (!reader.done.load()) bytes += reader.queue->queuedBytes();
  return bytes;
}

void LogReplays::run(Reader& reader) {
  SubscriptionQueue& queue = *reader.queue;
  const std::size_t windowFrames = std::max<std::size_t>(1, std::min(kWindowFrames, queue.limits().maxFrames / 2));
  const std::size_t windowBytes = std::max<std::size_t>(1, std::min(kWindowBytes, queue.limits().maxBytes / 2));
  LogReader log = reader.fromUnixNs != 0 ? LogReader(log_, LogReader::FromTime{reader.fromUnixNs}) : LogReader(log_, reader.seq);
  std::uint64_t last = reader.seq - 1;  // the newest seq given (or skipped: before the time asked)
  bool firstRead = true;
  auto stopping = [&] {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  };
  logfmt::Record record;
  bool pending = false;  // `record` was read and not yet given
  while (!stopping() && !queue.closed()) {
    if (!queue.waitForRoom(windowFrames, windowBytes, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)))
      continue;
    // A chunk: one batch of consecutive seqs (a gap in the log starts the next).
    FrameBatchBuilder builder;
    std::uint64_t first = 0;
    std::int64_t unixNs = 0;
    std::size_t bytes = 0;
    while (builder.frameCount() < kChunkFrames && bytes < kChunkBytes) {
      if (!pending && !log.next(record)) break;
      pending = false;
      if (firstRead && reader.fromUnixNs != 0) last = record.seq - 1;  // the time's first frame
      if (firstRead && reader.fromUnixNs == 0 && record.seq != reader.seq) {
        // Deleted by retention since the resume was answered: its
        // subscriber would miss frames it was told it gets. It reconnects
        // and is told it cannot (holdsFrom).
        logger_.warning("streams.%s.log: a subscriber's replay from seq %s stops: the log no longer holds it",
                        bus_.stream().name, std::to_string(reader.seq));
        queue.close(CloseReason::Failed);
        break;
      }
      firstRead = false;
      if (!builder.empty() && record.seq != first + builder.frameCount()) {
        pending = true;  // after a gap: the next batch's first
        break;
      }
      if (builder.empty()) {
        first = record.seq;
        unixNs = record.unixNs;
      }
      if (record.hasKey) builder.add(record.payload.data(), record.payload.size(), record.key);
      else builder.add(record.payload.data(), record.payload.size());
      bytes += record.payload.size() + kWireHeaderBytes;
    }
    if (queue.closed()) break;
    if (!builder.empty()) {
      const std::size_t count = builder.frameCount();
      std::unique_ptr<FrameBatch> batch = builder.seal(unixNs);
      batch->assignFirstSeq(first, &bus_.stream());
      FrameBatchPtr shared(std::move(batch));
      std::vector<FrameSpan> spans{FrameSpan{shared, 0, static_cast<std::uint32_t>(count)}};
      queue.preload(reader.select.empty() ? spans : selectedFrames(spans, reader.select));
      last = first + count - 1;
      framesRead_.fetch_add(count, std::memory_order_relaxed);
      if (pending || bytes >= kChunkBytes || count >= kChunkFrames) continue;  // more may be there: read on
    }
    if (!log.problem().empty()) {
      logger_.error("streams.%s.log: a subscriber's replay stops: %s", bus_.stream().name, log.problem());
      queue.close(CloseReason::Failed);
      break;
    }
    // All the log has written is given: on from the ring and the live frames
    // if they hold the next one (from a time: once the first frame at or
    // after it is found; the ring's older ones are not wanted).
    const bool searching = firstRead && reader.fromUnixNs != 0;
    if (!pending && !searching && bus_.continueAfter(reader.queue, last, reader.select)) break;
    // The log's writer is further behind than the ring holds (or, from a
    // time, has not written that time yet): wait until it writes more. The
    // deadline only brings the loop back to look at stop() and the queue.
    log_.waitWrittenAfter(log.position() - 1, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
  }
  reader.done.store(true, std::memory_order_release);
}

}  // namespace streamrelay
