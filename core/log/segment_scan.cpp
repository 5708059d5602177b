// SPDX-License-Identifier: Apache-2.0
#include "segment_scan.hpp"

#include "record_cursor.hpp"

namespace streamrelay {

SegmentScan scanSegment(const std::string& path) {
  SegmentScan scan;
  scan.segment.path = path;
  RecordCursor cursor;
  if (!cursor.open(path, scan.error)) {
    scan.outcome = SegmentScan::Outcome::Unopenable;
    return scan;
  }
  scan.headerProblem = cursor.readHeader(scan.segment.header, &scan.version, scan.headerTooShort);
  if (scan.headerTooShort || scan.headerProblem != logfmt::HeaderProblem::None) {
    scan.outcome = SegmentScan::Outcome::BadHeader;
    return scan;
  }
  const std::uint64_t size = cursor.fileSize();
  logfmt::Record record;
  for (;;) {
    const std::uint64_t at = cursor.offset();
    const RecordCursor::Step step = cursor.next(size, record);
    if (step == RecordCursor::Step::End) {
      scan.segment.endOffset = cursor.offset();  // after a last position record too: appends go after it
      scan.lastPosition = cursor.lastPosition();
      return scan;
    }
    if (step == RecordCursor::Step::Record && record.seq == scan.segment.nextSeq()) {
      scan.segment.noteRecord(record.seq, at, cursor.offset() - at, record.unixNs);
      continue;
    }
    scan.outcome = step == RecordCursor::Step::Torn ? SegmentScan::Outcome::Torn : SegmentScan::Outcome::Corrupt;
    scan.problemOffset = step == RecordCursor::Step::Record ? at : cursor.offset();  // position records before it stay
    scan.lastPosition = cursor.lastPosition();
    return scan;
  }
}

std::string describeScan(const SegmentScan& scan) {
  const std::string& path = scan.segment.path;
  const std::string at = " at offset " + std::to_string(scan.problemOffset);
  switch (scan.outcome) {
    case SegmentScan::Outcome::Clean: return "";
    case SegmentScan::Outcome::Torn: return path + ": a torn last record" + at + " (a write cut short)";
    case SegmentScan::Outcome::Corrupt: return path + ": a record fails its checksum (or does not follow the one before)" + at;
    case SegmentScan::Outcome::BadHeader:
      if (scan.headerTooShort) return path + ": shorter than a segment header";
      if (scan.headerProblem == logfmt::HeaderProblem::UnknownVersion)
        return path + ": format version " + std::to_string(scan.version) + ", this relay reads version " +
               std::to_string(logfmt::kLogFormatVersion);
      return path + ": " + logfmt::toString(scan.headerProblem);
    case SegmentScan::Outcome::Unopenable: return path + ": cannot be opened: " + scan.error;
  }
  return path;
}

}  // namespace streamrelay
