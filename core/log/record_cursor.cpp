// SPDX-License-Identifier: Apache-2.0
#include "record_cursor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace streamrelay {

RecordCursor::~RecordCursor() { close(); }

bool RecordCursor::open(const std::string& path, std::string& error) {
  close();
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    error = std::strerror(errno);
    return false;
  }
  bufferStart_ = 0;
  bufferBytes_ = 0;
  offset_ = 0;
  return true;
}

void RecordCursor::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::uint64_t RecordCursor::fileSize() const {
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_size);
}

void RecordCursor::seek(std::uint64_t offset) { offset_ = offset; }

bool RecordCursor::ensure(std::size_t bytes) {
  if (offset_ >= bufferStart_ && offset_ + bytes <= bufferStart_ + bufferBytes_) return true;
  // Keep what is still ahead, move it to the front, read the rest.
  std::size_t kept = 0;
  if (offset_ >= bufferStart_ && offset_ < bufferStart_ + bufferBytes_) {
    kept = bufferStart_ + bufferBytes_ - offset_;
    std::memmove(buffer_.data(), buffer_.data() + (offset_ - bufferStart_), kept);
  }
  bufferStart_ = offset_;
  bufferBytes_ = kept;
  const std::size_t wanted = std::max(bytes, kReadAheadBytes);
  if (buffer_.size() < wanted) buffer_.resize(wanted);
  while (bufferBytes_ < bytes) {
    const ssize_t n = ::pread(fd_, buffer_.data() + bufferBytes_, buffer_.size() - bufferBytes_,
                              static_cast<off_t>(bufferStart_ + bufferBytes_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bufferBytes_ += static_cast<std::size_t>(n);
  }
  return true;
}

logfmt::HeaderProblem RecordCursor::readHeader(logfmt::SegmentHeader& out, std::uint32_t* version, bool& tooShort) {
  offset_ = 0;
  tooShort = !ensure(logfmt::kHeaderBytes);
  if (tooShort) return logfmt::HeaderProblem::BadMagic;
  const logfmt::HeaderProblem problem = logfmt::decodeHeader(buffer_.data(), out, version);
  offset_ = logfmt::kHeaderBytes;
  return problem;
}

RecordCursor::Step RecordCursor::next(std::uint64_t limit, logfmt::Record& out) {
  for (;;) {
    const Step step = nextRecord(limit, out);
    if (step != Step::Record || !out.isPosition) return step;
    lastPosition_ = Position{out.seq, std::string(out.payload), offset_};  // a frame's reader passes over it
  }
}

RecordCursor::Step RecordCursor::nextRecord(std::uint64_t limit, logfmt::Record& out) {
  if (buffer_.size() > kReadAheadBytes && offset_ >= bufferStart_ + bufferBytes_) {
    buffer_ = std::vector<char>(kReadAheadBytes);  // back to the fixed read-ahead once a large record is used
    bufferBytes_ = 0;
    bufferStart_ = offset_;
  }
  if (offset_ >= limit) return Step::End;
  if (limit - offset_ < logfmt::kRecordPrefixBytes) return Step::Torn;
  if (!ensure(logfmt::kRecordPrefixBytes)) return Step::Torn;
  const std::optional<std::uint32_t> announced = logfmt::announcedLength(buffer_.data() + (offset_ - bufferStart_));
  if (!announced) return Step::Corrupt;
  const std::uint32_t length = *announced;
  if (length < logfmt::kRecordFixedBytes || length > logfmt::kMaxRecordBytes) return Step::Corrupt;
  const std::uint64_t total = logfmt::kRecordPrefixBytes + std::uint64_t{length};
  if (total > limit - offset_) return Step::Torn;
  if (!ensure(static_cast<std::size_t>(total))) return Step::Torn;
  if (!logfmt::decodeRecord(buffer_.data() + (offset_ - bufferStart_), length, out)) return Step::Corrupt;
  offset_ += total;
  return Step::Record;
}

}  // namespace streamrelay
