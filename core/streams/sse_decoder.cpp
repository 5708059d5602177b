// SPDX-License-Identifier: Apache-2.0
#include "sse_decoder.hpp"

namespace streamrelay {

bool SseDecoder::decode(const char* data, std::size_t size, FrameBatchBuilder& out) {
  std::size_t i = 0;
  while (i < size) {
    if (skipLf_) {
      skipLf_ = false;
      if (data[i] == '\n') {
        ++i;
        ++offset_;
        continue;
      }
    }
    std::size_t end = i;
    while (end < size && data[end] != '\n' && data[end] != '\r') ++end;
    if (line_.size() + (end - i) > maxBytes_ + 6)  // "data: " and the payload
      return fail(offset_ - line_.size(), line_.size() + (end - i), "a line longer than max_frame_bytes");
    line_.append(data + i, end - i);
    offset_ += end - i;
    i = end;
    if (i == size) break;
    skipLf_ = data[i] == '\r';
    ++i;
    ++offset_;
    if (!processLine(out)) return false;
    line_.clear();
  }
  return true;
}

bool SseDecoder::processLine(FrameBatchBuilder& out) {
  if (line_.empty()) {  // the end of an event
    lastEventId_ = idBuffer_;
    if (hasData_) out.add(data_.data(), data_.size());
    data_.clear();
    hasData_ = false;
    eventStart_ = offset_;
    return true;
  }
  if (line_[0] == ':') return true;  // a comment: heartbeats
  const std::size_t colon = line_.find(':');
  const std::string field = line_.substr(0, colon);
  std::size_t valueAt = colon == std::string::npos ? line_.size() : colon + 1;
  if (valueAt < line_.size() && line_[valueAt] == ' ') ++valueAt;
  if (field == "data") {
    const std::size_t more = (hasData_ ? 1 : 0) + (line_.size() - valueAt);
    if (data_.size() + more > maxBytes_)
      return fail(eventStart_, data_.size() + more, "an event's data is longer than max_frame_bytes");
    if (hasData_) data_ += '\n';
    data_.append(line_, valueAt, std::string::npos);
    hasData_ = true;
  } else if (field == "id" && line_.find('\0', valueAt) == std::string::npos) {
    idBuffer_ = line_.substr(valueAt);
  }
  // event:, retry: and unknown fields do not change what the frame carries.
  return true;
}

void SseDecoder::reset() {
  line_.clear();
  data_.clear();
  hasData_ = false;
  skipLf_ = false;
  idBuffer_ = lastEventId_;
  eventStart_ = offset_;
}

}  // namespace streamrelay
