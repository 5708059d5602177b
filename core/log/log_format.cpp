// SPDX-License-Identifier: Apache-2.0
#include "log_format.hpp"

#include "crc32.hpp"

#include <cstring>

namespace streamrelay {
namespace logfmt {

namespace {

void put32(char* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
void put64(char* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get32(const char* at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}
std::uint64_t get64(const char* at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}

}  // namespace

std::string encodeHeader(const SegmentHeader& header) {
  std::string out(kHeaderBytes, '\0');
  std::memcpy(&out[0], kMagic, sizeof kMagic);
  put32(&out[8], kLogFormatVersion);
  put64(&out[16], header.epoch);
  put64(&out[24], header.firstSeq);
  put64(&out[32], static_cast<std::uint64_t>(header.createdUnixNs));
  put32(&out[12], crc32Of(&out[16], kHeaderBytes - 16));
  return out;
}

HeaderProblem decodeHeader(const char* bytes, SegmentHeader& out, std::uint32_t* version) {
  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0) return HeaderProblem::BadMagic;
  if (version) *version = get32(bytes + 8);
  const std::uint32_t v = get32(bytes + 8);
  if (v < kOldestReadableVersion || v > kLogFormatVersion) return HeaderProblem::UnknownVersion;
  if (get32(bytes + 12) != crc32Of(bytes + 16, kHeaderBytes - 16)) return HeaderProblem::BadChecksum;
  out.epoch = get64(bytes + 16);
  out.firstSeq = get64(bytes + 24);
  out.createdUnixNs = static_cast<std::int64_t>(get64(bytes + 32));
  return HeaderProblem::None;
}

const char* toString(HeaderProblem problem) {
  switch (problem) {
    case HeaderProblem::None: return "a valid header";
    case HeaderProblem::BadMagic: return "not a streamrelay log segment (bad magic)";
    case HeaderProblem::UnknownVersion: return "an unknown format version";
    case HeaderProblem::BadChecksum: return "a header that fails its checksum";
  }
  return "?";
}

std::string encodeReservation(const Reservation& reservation) {
  std::string out(kReservationSlotBytes, '\0');
  std::memcpy(&out[0], kReservationMagic, sizeof kReservationMagic);
  put32(&out[8], kReservationVersion);
  put64(&out[16], reservation.epoch);
  put64(&out[24], reservation.reservedSeq);
  put64(&out[32], reservation.generation);
  put32(&out[12], crc32Of(&out[16], kReservationSlotBytes - 16));
  return out;
}

bool decodeReservation(const char* bytes, Reservation& out) {
  if (std::memcmp(bytes, kReservationMagic, sizeof kReservationMagic) != 0 ||
      get32(bytes + 8) != kReservationVersion ||
      get32(bytes + 12) != crc32Of(bytes + 16, kReservationSlotBytes - 16))
    return false;
  out.epoch = get64(bytes + 16);
  out.reservedSeq = get64(bytes + 24);
  out.generation = get64(bytes + 32);
  return true;
}

std::size_t recordBytes(std::size_t keyBytes, std::size_t payloadBytes) {
  return kRecordHeaderBytes + keyBytes + payloadBytes;
}

void appendRecord(std::string& out, std::uint64_t seq, std::int64_t unixNs, const std::string_view* key,
                  std::string_view payload) {
  const std::size_t keyBytes = key ? key->size() : 0;
  const std::size_t start = out.size();
  out.resize(start + kRecordHeaderBytes);
  char* at = &out[start];
  put32(at, static_cast<std::uint32_t>(kRecordFixedBytes + keyBytes + payload.size()));
  put32(at + 4, crc32Of(at, 4));
  put64(at + 12, seq);
  put64(at + 20, static_cast<std::uint64_t>(unixNs));
  put32(at + 28, key ? static_cast<std::uint32_t>(keyBytes + 1) : 0);
  if (key) out.append(key->data(), keyBytes);
  out.append(payload.data(), payload.size());
  at = &out[start];  // append may have moved it
  put32(at + 8, crc32Of(at + kRecordPrefixBytes, out.size() - start - kRecordPrefixBytes));
}

void appendPositionRecord(std::string& out, std::uint64_t seq, std::int64_t unixNs, std::string_view position) {
  const std::size_t start = out.size();
  out.resize(start + kRecordHeaderBytes);
  char* at = &out[start];
  put32(at, static_cast<std::uint32_t>(kRecordFixedBytes + position.size()));
  put32(at + 4, crc32Of(at, 4));
  put64(at + 12, seq);
  put64(at + 20, static_cast<std::uint64_t>(unixNs));
  put32(at + 28, kPositionKeyField);
  out.append(position.data(), position.size());
  at = &out[start];
  put32(at + 8, crc32Of(at + kRecordPrefixBytes, out.size() - start - kRecordPrefixBytes));
}

std::optional<std::uint32_t> announcedLength(const char* prefix) {
  if (get32(prefix + 4) != crc32Of(prefix, 4)) return std::nullopt;
  return get32(prefix);
}

bool decodeRecord(const char* bytes, std::uint32_t length, Record& out) {
  if (length < kRecordFixedBytes) return false;
  const char* body = bytes + kRecordPrefixBytes;
  if (get32(bytes + 8) != crc32Of(body, length)) return false;
  const std::uint32_t keyField = get32(body + 16);
  out.isPosition = keyField == kPositionKeyField;
  const std::uint64_t keyBytes = keyField == 0 || out.isPosition ? 0 : keyField - 1;
  if (out.isPosition && length - kRecordFixedBytes > kMaxPositionBytes) return false;
  if (keyBytes > kMaxKeyBytes || kRecordFixedBytes + keyBytes > length) return false;
  out.seq = get64(body);
  out.unixNs = static_cast<std::int64_t>(get64(body + 8));
  out.hasKey = keyField != 0 && !out.isPosition;
  out.key = std::string_view(body + kRecordFixedBytes, keyBytes);
  out.payload = std::string_view(body + kRecordFixedBytes + keyBytes, length - kRecordFixedBytes - keyBytes);
  return true;
}

}  // namespace logfmt
}  // namespace streamrelay
