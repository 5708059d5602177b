// SPDX-License-Identifier: Apache-2.0
#include "framing.hpp"

#include "sse_decoder.hpp"
#include "streamrelay/wire.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace streamrelay {

namespace {

std::string tooLarge(std::uint64_t announced, std::size_t max) {
  return "frame of " + std::to_string(announced) + " bytes exceeds max_frame_bytes " + std::to_string(max);
}

class LengthPrefixDecoder : public FrameDecoder {
 public:
  explicit LengthPrefixDecoder(const FramingSpec& spec) : spec_(spec) {}

  bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) override {
    const char* p = data;
    const char* end = data + size;
    while (p < end) {
      if (!inPayload_) {
        std::size_t take = std::min<std::size_t>(spec_.width - headerHave_, end - p);
        std::memcpy(header_ + headerHave_, p, take);
        headerHave_ += take;
        p += take;
        offset_ += take;
        if (headerHave_ < static_cast<std::size_t>(spec_.width)) break;
        const std::uint64_t announced = wire::getUnsigned(header_, spec_.width, spec_.byteOrder == ByteOrder::Big);
        if (announced > spec_.maxFrameBytes)
          return fail(frameStart_, announced, tooLarge(announced, spec_.maxFrameBytes));
        headerHave_ = 0;
        remaining_ = announced;
        inPayload_ = true;
        out.beginFrame();
      }
      std::size_t take = std::min<std::uint64_t>(remaining_, end - p);
      out.appendToFrame(p, take);
      p += take;
      offset_ += take;
      remaining_ -= take;
      if (remaining_ == 0) {
        out.endFrame();
        inPayload_ = false;
        frameStart_ = offset_;
      }
    }
    return true;
  }

  void reset() override {
    headerHave_ = 0;
    inPayload_ = false;
    remaining_ = 0;
    offset_ = frameStart_ = 0;
  }

 private:
  FramingSpec spec_;
  char header_[8] = {};
  std::size_t headerHave_ = 0;
  bool inPayload_ = false;
  std::uint64_t remaining_ = 0;
  std::uint64_t offset_ = 0;      // stream bytes consumed
  std::uint64_t frameStart_ = 0;  // stream offset of the current frame's header
};

class FixedDecoder : public FrameDecoder {
 public:
  explicit FixedDecoder(const FramingSpec& spec) : size_(spec.fixedSize) {}

  bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) override {
    const char* p = data;
    const char* end = data + size;
    while (p < end) {
      if (have_ == 0) out.beginFrame();
      std::size_t take = std::min<std::size_t>(size_ - have_, end - p);
      out.appendToFrame(p, take);
      p += take;
      have_ += take;
      if (have_ == size_) {
        out.endFrame();
        have_ = 0;
      }
    }
    return true;
  }
  void reset() override { have_ = 0; }

 private:
  std::size_t size_;
  std::size_t have_ = 0;
};

// Finds a delimiter of any length across read boundaries with the
// Knuth-Morris-Pratt automaton; memchr skips to candidate first bytes.
class DelimiterDecoder : public FrameDecoder {
 public:
  explicit DelimiterDecoder(const FramingSpec& spec) : spec_(spec), failure_(spec.delimiter.size(), 0) {
    const std::string& d = spec_.delimiter;
    for (std::size_t i = 1, k = 0; i < d.size(); ++i) {
      while (k > 0 && d[i] != d[k]) k = failure_[k - 1];
      if (d[i] == d[k]) ++k;
      failure_[i] = k;
    }
  }

  bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) override {
    const std::string& d = spec_.delimiter;
    std::size_t segment = 0;  // start of this call's bytes not yet appended
    std::size_t i = 0;
    while (i < size) {
      if (!inFrame_) {
        out.beginFrame();
        inFrame_ = true;
      }
      if (matched_ == 0) {
        const void* hit = std::memchr(data + i, d[0], size - i);
        std::size_t next = hit ? static_cast<const char*>(hit) - data : size;
        frameBytes_ += next - i;
        i = next;
        if (!checkSize()) return false;
        if (!hit) break;
      }
      char c = data[i++];
      ++frameBytes_;
      while (matched_ > 0 && c != d[matched_]) matched_ = failure_[matched_ - 1];
      if (c == d[matched_]) ++matched_;
      if (matched_ == d.size()) {
        out.appendToFrame(data + segment, i - segment);
        segment = i;
        if (spec_.strip) out.truncateFrame(d.size());
        out.endFrame();
        offset_ += frameBytes_;
        frameBytes_ = 0;
        matched_ = 0;
        inFrame_ = false;
      } else if (!checkSize()) {
        return false;
      }
    }
    if (segment < size) out.appendToFrame(data + segment, size - segment);
    return true;
  }

  void reset() override {
    matched_ = frameBytes_ = 0;
    offset_ = 0;
    inFrame_ = false;
  }

 private:
  // Bytes that are payload for sure (not a possible delimiter start) over the cap.
  bool checkSize() {
    std::uint64_t payload = frameBytes_ - matched_;
    if (payload <= spec_.maxFrameBytes) return true;
    return fail(offset_, payload,
                "no delimiter within max_frame_bytes " + std::to_string(spec_.maxFrameBytes));
  }

  FramingSpec spec_;
  std::vector<std::size_t> failure_;
  std::size_t matched_ = 0;
  std::uint64_t frameBytes_ = 0;  // bytes of the current frame so far, delimiter included
  std::uint64_t offset_ = 0;      // stream offset of the current frame
  bool inFrame_ = false;
};

}  // namespace

std::size_t FramingSpec::largestEncodable() const {
  if (type == FramingType::LengthPrefix && width < 8)
    return std::min<std::uint64_t>(maxFrameBytes, (std::uint64_t{1} << (8 * width)) - 1);
  if (type == FramingType::Fixed) return fixedSize;
  return maxFrameBytes;
}

bool FramingSpec::isWireForm() const {
  return type == FramingType::LengthPrefix && width == 4 && byteOrder == ByteOrder::Big;
}

std::string FramingSpec::describe() const {
  switch (type) {
    case FramingType::LengthPrefix:
      return "length-prefix width " + std::to_string(width) +
             (byteOrder == ByteOrder::Big ? " big" : " little") + "-endian";
    case FramingType::Delimiter:
      return "delimiter of " + std::to_string(delimiter.size()) + " byte(s)";
    case FramingType::Fixed:
      return "fixed " + std::to_string(fixedSize) + " bytes";
    case FramingType::Sse:
      return "server-sent events";
  }
  return "?";
}

bool FrameDecoder::fail(std::uint64_t offset, std::uint64_t announced, std::string message) {
  error_ = {offset, announced, std::move(message)};
  return false;
}

std::unique_ptr<FrameDecoder> FrameDecoder::create(const FramingSpec& spec) {
  switch (spec.type) {
    case FramingType::LengthPrefix:
      return std::make_unique<LengthPrefixDecoder>(spec);
    case FramingType::Delimiter:
      return std::make_unique<DelimiterDecoder>(spec);
    case FramingType::Fixed:
      return std::make_unique<FixedDecoder>(spec);
    case FramingType::Sse:
      return std::make_unique<SseDecoder>(spec);
  }
  return nullptr;
}

}  // namespace streamrelay
