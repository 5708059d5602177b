// SPDX-License-Identifier: Apache-2.0
#pragma once
// RecordCursor: reads the records of one segment file (log_format.hpp) in
// order, through a read-ahead buffer of fixed size that grows only to hold
// one record larger than it, and never beyond what the file holds up to the
// limit given: a length field cannot make it allocate more than that.
//
// Used by one thread at a time (the log's opening scan, or one reader). It
// reads with pread: the writer may append to the file meanwhile; the cursor
// reads only up to the limit it is given, which the caller knows is written.

#include <cstdint>
#include <string>
#include <vector>

#include "log_format.hpp"

namespace streamrelay {

class RecordCursor {
 public:
  static constexpr std::size_t kReadAheadBytes = 64 << 10;

  RecordCursor() = default;
  ~RecordCursor();
  RecordCursor(const RecordCursor&) = delete;
  RecordCursor& operator=(const RecordCursor&) = delete;

  // Opens `path` for reading; false with `error` (the system's words) if it cannot.
  bool open(const std::string& path, std::string& error);
  void close();
  bool isOpen() const { return fd_ >= 0; }
  // The file's size now.
  std::uint64_t fileSize() const;

  // Reads the header at offset 0. `tooShort`: the file ends inside it.
  logfmt::HeaderProblem readHeader(logfmt::SegmentHeader& out, std::uint32_t* version, bool& tooShort);
  // The next record is read at `offset` (a record's start: after the header, or from an index).
  void seek(std::uint64_t offset);
  std::uint64_t offset() const { return offset_; }

  enum class Step {
    Record,   // `out` holds it; its views stay valid until the next call
    End,      // the cursor is at `limit`
    Torn,     // the bytes before `limit` end inside a record (a write cut short)
    Corrupt,  // a record fails its checksum or announces an impossible length
  };
  // The record at offset(), reading no byte at or beyond `limit`. After
  // Torn or Corrupt, offset() is where the bad record starts.
  // Position records are passed over (frames only come out); the last one
  // passed is lastPosition().
  Step next(std::uint64_t limit, logfmt::Record& out);
  // The provider position of the last position record passed over (none yet: seq 0).
  struct Position {
    std::uint64_t seq = 0;  // of the frame it follows
    std::string value;
    std::uint64_t endOffset = 0;  // where the record ends in the file
  };
  const Position& lastPosition() const { return lastPosition_; }

 private:
  // Makes [offset_, offset_ + bytes) present in the buffer; false if the file is shorter.
  bool ensure(std::size_t bytes);
  Step nextRecord(std::uint64_t limit, logfmt::Record& out);

  int fd_ = -1;
  std::uint64_t offset_ = 0;
  std::vector<char> buffer_;
  std::uint64_t bufferStart_ = 0;  // file offset of buffer_[0]
  std::size_t bufferBytes_ = 0;    // valid bytes in buffer_
  Position lastPosition_;
};

}  // namespace streamrelay
