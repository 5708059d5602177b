// SPDX-License-Identifier: Apache-2.0
#include "resp_batch.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <vector>

namespace streamrelay::plugins {

namespace {

// Compacting heads_ moves what is still held to its front; worth it once
// this much is dead space.
constexpr std::size_t kCompactAbove = 64 * 1024;

void appendNumber(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, static_cast<std::size_t>(end - digits));
}

// "$LENGTH\r\n" (a bulk string's header).
void appendBulkHeader(std::string& out, std::size_t length) {
  out += '$';
  appendNumber(out, length);
  out += "\r\n";
}

void appendBulk(std::string& out, std::string_view data) {
  appendBulkHeader(out, data.size());
  out.append(data.data(), data.size());
  out += "\r\n";
}

std::string bulk(std::string_view data) {
  std::string out;
  appendBulk(out, data);
  return out;
}

}  // namespace

RespBatch::RespBatch(Mode mode, long long maxlen) : mode_(mode), maxlen_(maxlen) {}

// "*N XADD KEY [MAXLEN ~ M] * seq" (in RESP), for `key`.
const std::string& RespBatch::prefixFor(const std::string& key) {
  if (key == prefixKey_ && !prefix_.empty()) return prefix_;
  prefix_ = maxlen_ > 0 ? "*14\r\n$4\r\nXADD\r\n" : "*11\r\n$4\r\nXADD\r\n";
  appendBulk(prefix_, key);
  if (maxlen_ > 0) prefix_ += "$6\r\nMAXLEN\r\n$1\r\n~\r\n" + bulk(std::to_string(maxlen_));
  prefix_ += "$1\r\n*\r\n$3\r\nseq\r\n";
  prefixKey_ = key;
  return prefix_;
}

void RespBatch::add(const Frame& frame, const std::string& key, Retained retained) {
  if (mode_ == Mode::Publish) {
    heads_ += "*3\r\n$7\r\nPUBLISH\r\n";
    appendBulk(heads_, key);
  } else {
    heads_ += prefixFor(key);
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, frame.seq).ptr;
    appendBulk(heads_, std::string_view(digits, static_cast<std::size_t>(end - digits)));
    if (frame.stream != epochStream_ || frame.epoch != epoch_ || epochWords_.empty()) {
      epochStream_ = std::string(frame.stream);
      epoch_ = frame.epoch;
      epochWords_ = "$5\r\nepoch\r\n" + bulk(std::to_string(epoch_)) + "$11\r\nreceived_ns\r\n";
    }
    heads_ += epochWords_;
    if (frame.receivedUnixNs != lastReceived_) {
      lastReceived_ = frame.receivedUnixNs;
      receivedWords_ = bulk(std::to_string(lastReceived_)) + "$7\r\npayload\r\n";
    }
    heads_ += receivedWords_;
  }
  Command command{kCopied, 0, {}, {}};
  const bool copy = !retained.held() || frame.data.size() < kCopyBelow;
  if (copy) {
    appendBulk(heads_, frame.data);
  } else {
    appendBulkHeader(heads_, frame.data.size());
    command.split = heads_.size();
    command.payload = frame.data;
    command.retained = std::move(retained);
    heads_ += "\r\n";
  }
  command.end = heads_.size();
  frames_.push_back(std::move(command));
}

bool RespBatch::writeUnwritten(int fd, std::string& error, std::size_t limit) {
  if (unwritten() == 0 || limit == 0) return true;
  const std::size_t end = written_ + std::min(limit, unwritten());
  std::vector<iovec> iov;
  auto push = [&](const char* data, std::size_t size) {
    if (size > 0) iov.push_back({const_cast<char*>(data), size});
  };
  std::size_t at = startOf(written_);
  for (std::size_t i = written_; i < end; ++i) {
    const Command& c = frames_[i];
    if (c.split == kCopied) continue;  // its bytes run on in heads_
    push(heads_.data() + at, c.split - at);
    push(c.payload.data(), c.payload.size());
    at = c.split;
  }
  push(heads_.data() + at, frames_[end - 1].end - at);
  for (std::size_t next = 0; next < iov.size();) {
    msghdr message{};
    message.msg_iov = &iov[next];
    message.msg_iovlen = std::min<std::size_t>(iov.size() - next, IOV_MAX);
    ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      error = errno == EAGAIN || errno == EWOULDBLOCK ? "write timed out" : std::strerror(errno);
      return false;
    }
    for (auto left = static_cast<std::size_t>(sent); left > 0;) {
      iovec& v = iov[next];
      if (left >= v.iov_len) {
        left -= v.iov_len;
        ++next;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + left;
        v.iov_len -= left;
        left = 0;
      }
    }
  }
  written_ = end;
  return true;
}

void RespBatch::dropAcknowledged(std::size_t count) {
  count = std::min(count, frames_.size());
  if (count == 0) return;
  base_ = frames_[count - 1].end;
  frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(count));  // releases the payloads
  written_ -= std::min(written_, count);
  if (frames_.empty()) {
    heads_.clear();
    base_ = 0;
  } else if (base_ > kCompactAbove && base_ > heads_.size() / 2) {
    heads_.erase(0, base_);
    for (Command& c : frames_) {
      if (c.split != kCopied) c.split -= base_;
      c.end -= base_;
    }
    base_ = 0;
  }
}

std::string RespBatch::unwrittenBytes() const {
  std::string out;
  std::size_t at = startOf(written_);
  for (std::size_t i = written_; i < frames_.size(); ++i) {
    const Command& c = frames_[i];
    if (c.split == kCopied) continue;
    out.append(heads_, at, c.split - at);
    out.append(c.payload.data(), c.payload.size());
    at = c.split;
  }
  if (!frames_.empty()) out.append(heads_, at, frames_.back().end - at);
  return out;
}

}  // namespace streamrelay::plugins
