// SPDX-License-Identifier: Apache-2.0
#include "log_reader.hpp"

namespace streamrelay {

LogReader::LogReader(const StreamLog& log, std::uint64_t fromSeq) : log_(log), nextSeq_(fromSeq) {}

LogReader::LogReader(const StreamLog& log, FromTime from)
    : log_(log), nextSeq_(log.seqNear(from.unixNs)), fromUnixNs_(from.unixNs) {}

bool LogReader::openSegmentFor(std::uint64_t seq) {
  const std::optional<StreamLog::Readable> segment = log_.readableFrom(seq);
  if (!segment) return false;
  if (segment->path == path_ && cursor_.isOpen()) {  // the same segment, written further
    endOffset_ = segment->endOffset;
    return true;
  }
  std::string error;
  if (!cursor_.open(segment->path, error)) return false;  // deleted by retention meanwhile: asked again next time
  path_ = segment->path;
  cursor_.seek(segment->startOffset);
  endOffset_ = segment->endOffset;
  return true;
}

bool LogReader::next(logfmt::Record& out) {
  for (int attempts = 0; attempts < 3; ++attempts) {
    while (cursor_.isOpen()) {
      const RecordCursor::Step step = cursor_.next(endOffset_, out);
      if (step == RecordCursor::Step::End) break;
      if (step != RecordCursor::Step::Record) {  // what the writer wrote and the disk then changed
        problem_ = path_ + ": unreadable at offset " + std::to_string(cursor_.offset());
        cursor_.close();
        return false;
      }
      if (out.seq < nextSeq_) continue;
      // Passed over too when it is older than the time asked: the next
      // segment is then looked up after it, not at the search's start.
      nextSeq_ = out.seq + 1;
      if (out.unixNs < fromUnixNs_) continue;
      fromUnixNs_ = 0;  // from the first frame at or after the time on, every frame
      return true;
    }
    if (!problem_.empty() || !openSegmentFor(nextSeq_)) return false;
  }
  return false;
}

}  // namespace streamrelay
