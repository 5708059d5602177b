// SPDX-License-Identifier: Apache-2.0
#pragma once
// SegmentIndex: what one segment file holds — its header, its seq range,
// its size — and a sparse index (seq -> offset and time), one entry per
// kIndexEveryBytes of records. Built by the scan at open (segment_scan.hpp)
// and kept up to date by the writer as it appends.
//
// Not thread safe: StreamLog guards the ones it keeps.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "log_format.hpp"

namespace streamrelay {

struct SegmentIndex {
  static constexpr std::uint64_t kIndexEveryBytes = 64 << 10;
  struct Entry {
    std::uint64_t seq;
    std::uint64_t offset;
    std::int64_t unixNs;
  };

  std::string path;
  logfmt::SegmentHeader header;
  std::uint64_t frames = 0;
  std::uint64_t endOffset = logfmt::kHeaderBytes;  // the end of its last record
  std::int64_t lastUnixNs = 0;                      // of its last record (0: none)
  std::vector<Entry> index;

  bool empty() const { return frames == 0; }
  std::uint64_t firstSeq() const { return header.firstSeq; }
  std::uint64_t lastSeq() const { return header.firstSeq + frames - 1; }  // firstSeq - 1 while empty
  std::uint64_t nextSeq() const { return header.firstSeq + frames; }

  // A record of `bytes` at `offset`, the one after the last.
  void noteRecord(std::uint64_t seq, std::uint64_t offset, std::uint64_t bytes, std::int64_t unixNs) {
    if (index.empty() || offset - index.back().offset >= kIndexEveryBytes) index.push_back({seq, offset, unixNs});
    ++frames;
    endOffset = offset + bytes;
    lastUnixNs = unixNs;
  }
  // A position record of `bytes` at `offset` (not a frame), after the last record.
  void notePosition(std::uint64_t offset, std::uint64_t bytes) { endOffset = offset + bytes; }
  // Where to start reading for `seq` (at or before its record).
  std::uint64_t offsetFor(std::uint64_t seq) const {
    auto after = std::upper_bound(index.begin(), index.end(), seq,
                                  [](std::uint64_t s, const Entry& e) { return s < e.seq; });
    return after == index.begin() ? logfmt::kHeaderBytes : std::prev(after)->offset;
  }
  // The seq to start reading at for the first record at or after `unixNs`
  // (an entry before it: clocks may step back, so the reader still checks).
  std::uint64_t seqNear(std::int64_t unixNs) const {
    std::uint64_t seq = header.firstSeq;
    for (const Entry& e : index)
      if (e.unixNs < unixNs) seq = e.seq;
    return seq;
  }
};

}  // namespace streamrelay
