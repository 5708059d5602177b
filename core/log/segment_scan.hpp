// SPDX-License-Identifier: Apache-2.0
#pragma once
// scanSegment: reads a whole segment file once, checking every record, and
// says how far it is readable. What the opening of a log (StreamLog::open)
// and the fuzz target (fuzz_log_segment) run on any bytes a file holds.
//
// Thread safe (it shares nothing).

#include <cstdint>
#include <string>

#include "record_cursor.hpp"
#include "segment_index.hpp"

namespace streamrelay {

struct SegmentScan {
  enum class Outcome {
    Clean,       // every byte is a valid record
    Torn,        // it ends inside a record (cut short while written): readable up to problemOffset
    Corrupt,     // a record fails its checksum or its seq: readable up to problemOffset, never beyond
    BadHeader,   // its header is not one this version reads (headerProblem, or the file is shorter)
    Unopenable,  // the file could not be opened (error)
  };
  Outcome outcome = Outcome::Clean;
  logfmt::HeaderProblem headerProblem = logfmt::HeaderProblem::None;
  bool headerTooShort = false;
  std::uint32_t version = 0;       // as the header says (BadHeader: UnknownVersion)
  std::uint64_t problemOffset = 0;  // Torn, Corrupt: where the bad record starts
  std::string error;                // Unopenable
  SegmentIndex segment;             // what is readable (path, header, records, index)
  RecordCursor::Position lastPosition;  // the last provider position it holds (seq 0: none)
};

SegmentScan scanSegment(const std::string& path);

// One line about a scan that was not clean (no line: empty), naming the file and offset.
std::string describeScan(const SegmentScan& scan);

}  // namespace streamrelay
