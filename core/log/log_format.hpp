// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bytes of a stream's log on disk (streams.NAME.log): one file per
// segment, named after its first seq, each a header then records back to
// back. Little-endian throughout.
//
//   segment header (40 bytes)
//     0  magic "SRLOGSEG"
//     8  u32 format version (kLogFormatVersion)
//    12  u32 CRC-32 of bytes 16..40
//    16  u64 the stream's epoch
//    24  u64 the seq of the segment's first record (the next seq, while empty)
//    32  i64 when the segment was created (Unix ns)
//   record (32 bytes + key + payload)
//     0  u32 length: the bytes after this 12-byte prefix (20 + key + payload)
//     4  u32 CRC-32 of the length's 4 bytes: a damaged length is told from
//        a record cut short (which is cut off) and never followed
//     8  u32 CRC-32 of the bytes after the prefix
//    12  u64 seq: the previous record's + 1 (the header's first seq for the first)
//    20  i64 receive time (Unix ns)
//    28  u32 key: 0 = none, else its size + 1; kPositionKeyField: not a
//        frame but the provider's position after the frame `seq` (an SSE
//        source's last event id), in the payload (version 2)
//    32  key, then payload
//
//   reservation file DIR/reserved: two 40-byte slots, written in turn
//     0  magic "SRLOGRSV"
//     8  u32 format version (kReservationVersion)
//    12  u32 CRC-32 of bytes 16..40
//    16  u64 the stream's epoch
//    24  u64 the highest seq the stream may have handed out (reserved)
//    32  u64 generation: the valid slot with the higher one is the newer
//
// Within a segment seqs have no gap; a gap (frames the log lost to a write
// error) lies between segments. The checksum is zlib's CRC-32 (crc32.hpp:
// folded with PCLMULQDQ where the CPU has it): CRC-32 detects every burst
// error up to 32 bits.
//
// Pure functions: no I/O, no state; thread safe.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace streamrelay {
namespace logfmt {

constexpr char kMagic[8] = {'S', 'R', 'L', 'O', 'G', 'S', 'E', 'G'};
// Version 2 added position records; version 1 segments are read as well.
constexpr std::uint32_t kLogFormatVersion = 2;
constexpr std::uint32_t kOldestReadableVersion = 1;
constexpr std::uint32_t kPositionKeyField = 0xFFFFFFFFu;
constexpr std::size_t kMaxPositionBytes = 4096;
constexpr std::size_t kHeaderBytes = 40;
constexpr std::size_t kRecordPrefixBytes = 12;   // length, its checksum, the body's checksum
constexpr std::size_t kRecordFixedBytes = 20;    // seq + time + key field, after the prefix
constexpr std::size_t kRecordHeaderBytes = kRecordPrefixBytes + kRecordFixedBytes;
// The largest record a reader accepts: a frame of the largest max_frame_bytes
// (1 GiB) with a key of up to 64 KiB. A length beyond it is corruption, never
// an allocation.
constexpr std::uint64_t kMaxRecordBytes = (std::uint64_t{1} << 30) + (64 << 10) + kRecordHeaderBytes;
constexpr std::size_t kMaxKeyBytes = 64 << 10;

struct SegmentHeader {
  std::uint64_t epoch = 0;
  std::uint64_t firstSeq = 0;
  std::int64_t createdUnixNs = 0;
};

std::string encodeHeader(const SegmentHeader& header);
// Why `bytes` (kHeaderBytes of them) are not a header this version reads.
enum class HeaderProblem { None, BadMagic, UnknownVersion, BadChecksum };
HeaderProblem decodeHeader(const char* bytes, SegmentHeader& out, std::uint32_t* version = nullptr);
const char* toString(HeaderProblem problem);

// Appends one record to `out`. `key` null: the frame has none.
void appendRecord(std::string& out, std::uint64_t seq, std::int64_t unixNs, const std::string_view* key,
                  std::string_view payload);
std::size_t recordBytes(std::size_t keyBytes, std::size_t payloadBytes);
// Appends a position record: the provider's position after frame `seq`.
void appendPositionRecord(std::string& out, std::uint64_t seq, std::int64_t unixNs, std::string_view position);

struct Record {
  std::uint64_t seq = 0;
  std::int64_t unixNs = 0;
  bool hasKey = false;
  std::string_view key;      // views into the bytes decoded
  std::string_view payload;  // a position record's: the position
  bool isPosition = false;   // a position record, not a frame
};
// A reservation slot (the reservation file holds two, written in turn: a
// write cut short leaves the other one whole).
struct Reservation {
  std::uint64_t epoch = 0;
  std::uint64_t reservedSeq = 0;
  std::uint64_t generation = 0;
};
constexpr char kReservationMagic[8] = {'S', 'R', 'L', 'O', 'G', 'R', 'S', 'V'};
constexpr std::uint32_t kReservationVersion = 1;
constexpr std::size_t kReservationSlotBytes = 40;
std::string encodeReservation(const Reservation& reservation);
// False if the slot's magic, version or checksum is not right.
bool decodeReservation(const char* bytes, Reservation& out);

// The length a record's prefix announces (`prefix`: kRecordPrefixBytes);
// none if the length fails its own checksum.
std::optional<std::uint32_t> announcedLength(const char* prefix);
// Decodes the record whose prefix and `length` body bytes are at `bytes`.
// False if its checksum fails or its fields do not add up.
bool decodeRecord(const char* bytes, std::uint32_t length, Record& out);

}  // namespace logfmt
}  // namespace streamrelay
