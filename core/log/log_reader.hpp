// SPDX-License-Identifier: Apache-2.0
#pragma once
// LogReader: reads a stream's log forward from a seq (or a time), frame by
// frame, in seq order, with bounded memory (one segment open at a time and
// RecordCursor's read-ahead). Safe while the writer appends: it reads only
// what the log says is written; asked again later, it goes on from there.
// A gap in seq (frames the log lost, or deleted by retention) shows as a
// frame whose seq is more than the previous one + 1.
//
// Used by one thread at a time.

#include <cstdint>
#include <string>

#include "record_cursor.hpp"
#include "stream_log.hpp"

namespace streamrelay {

class LogReader {
 public:
  // Reads from the first frame whose seq is at least `fromSeq`.
  LogReader(const StreamLog& log, std::uint64_t fromSeq);
  // Reads from the first frame received at or after `unixNs`.
  struct FromTime {
    std::int64_t unixNs;
  };
  LogReader(const StreamLog& log, FromTime from);

  // The next frame, if written: its views stay valid until the next call.
  // False when every frame written so far has been read (or the log cannot
  // be read further: then problem() says why).
  bool next(logfmt::Record& out);
  // The seq the next frame read will have at least.
  std::uint64_t position() const { return nextSeq_; }
  const std::string& problem() const { return problem_; }

 private:
  bool openSegmentFor(std::uint64_t seq);

  const StreamLog& log_;
  std::uint64_t nextSeq_;
  std::int64_t fromUnixNs_ = 0;   // skip frames received before it (fromTime)
  RecordCursor cursor_;
  std::string path_;              // the segment open, if any
  std::uint64_t endOffset_ = 0;   // of it, as written when last asked
  std::string problem_;
};

}  // namespace streamrelay
