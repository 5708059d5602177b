// SPDX-License-Identifier: Apache-2.0
#include "child_channel.hpp"

#include <cstring>

#include "frame_batch.hpp"
#include "streamrelay/plugin.h"

namespace streamrelay {

MessageBuilder::MessageBuilder(ChildMessage type) {
  out_.reserve(64);
  u32(static_cast<std::uint32_t>(type));
  u32(0);  // the length, filled in by finish()
}

MessageBuilder& MessageBuilder::bytes(const char* data, std::size_t size) {
  out_.append(data, size);
  return *this;
}

MessageBuilder& MessageBuilder::u32(std::uint32_t v) { return bytes(reinterpret_cast<const char*>(&v), sizeof v); }
MessageBuilder& MessageBuilder::u64(std::uint64_t v) { return bytes(reinterpret_cast<const char*>(&v), sizeof v); }
MessageBuilder& MessageBuilder::i64(std::int64_t v) { return bytes(reinterpret_cast<const char*>(&v), sizeof v); }
MessageBuilder& MessageBuilder::f64(double v) { return bytes(reinterpret_cast<const char*>(&v), sizeof v); }

MessageBuilder& MessageBuilder::str(std::string_view v) {
  u32(static_cast<std::uint32_t>(v.size()));
  return bytes(v.data(), v.size());
}

const std::string& MessageBuilder::finish() {
  const auto length = static_cast<std::uint32_t>(out_.size() - kMessageHeaderBytes);
  std::memcpy(&out_[4], &length, sizeof length);
  return out_;
}

bool MessageParser::take(void* v, std::size_t size) {
  if (left() < size) return false;
  std::memcpy(v, at_, size);
  at_ += size;
  return true;
}

bool MessageParser::u32(std::uint32_t& v) { return take(&v, sizeof v); }
bool MessageParser::u64(std::uint64_t& v) { return take(&v, sizeof v); }
bool MessageParser::i64(std::int64_t& v) { return take(&v, sizeof v); }
bool MessageParser::f64(double& v) { return take(&v, sizeof v); }

bool MessageParser::str(std::string& v) {
  std::uint32_t size = 0;
  if (!u32(size) || left() < size) return false;
  v.assign(at_, size);
  at_ += size;
  return true;
}

std::string encodeStart(const ChildStart& s) {
  MessageBuilder m(ChildMessage::Start);
  m.str(s.name).str(s.type).str(s.libraryPath).str(s.configYaml).u32(s.maxFailures);
  m.u64(s.maxEmitBytes).u32(s.allowInsecureFiles ? 1 : 0);
  m.u64(s.queueMaxFrames).u64(s.queueMaxBytes).u32(static_cast<std::uint32_t>(s.inputs.size()));
  for (const std::string& input : s.inputs) m.str(input);
  m.u32(s.hasOutput ? 1 : 0).u64(s.ringCapacity).u64(s.firstRingSeq);
  m.u32(static_cast<std::uint32_t>(s.logLevel)).u32(s.seccomp ? 1 : 0).u64(s.memoryLimitBytes);
  return m.finish();
}

bool decodeStart(MessageParser& p, ChildStart& s) {
  std::uint32_t inputs = 0, hasOutput = 0, logLevel = 0, seccomp = 0, allowInsecure = 0;
  if (!(p.str(s.name) && p.str(s.type) && p.str(s.libraryPath) && p.str(s.configYaml) && p.u32(s.maxFailures) &&
        p.u64(s.maxEmitBytes) && p.u32(allowInsecure) && p.u64(s.queueMaxFrames) && p.u64(s.queueMaxBytes) && p.u32(inputs)))
    return false;
  s.inputs.resize(inputs > 4096 ? 0 : inputs);
  for (std::string& input : s.inputs)
    if (!p.str(input)) return false;
  if (!(p.u32(hasOutput) && p.u64(s.ringCapacity) && p.u64(s.firstRingSeq) && p.u32(logLevel) && p.u32(seccomp) &&
        p.u64(s.memoryLimitBytes)))
    return false;
  s.hasOutput = hasOutput != 0;
  s.allowInsecureFiles = allowInsecure != 0;
  s.logLevel = static_cast<std::int32_t>(logLevel);
  s.seccomp = seccomp != 0;
  return p.done();
}

void appendEmittedFrame(std::string& message, std::string_view wireForm, std::string_view key) {
  const auto keySize = static_cast<std::uint16_t>(key.size());  // at most STREAMRELAY_MAX_KEY_SIZE: emit checked
  message.append(wireForm.data(), wireForm.size());
  message.append(reinterpret_cast<const char*>(&keySize), sizeof keySize);
  message.append(key.data(), key.size());
}

bool EmittedFrames::next(std::string_view& payload, std::string_view& key) {
  if (rest_.empty() || malformed_) return false;
  std::uint16_t keySize = 0;
  std::size_t size = 0;
  if (rest_.size() >= kWireHeaderBytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(rest_.data());
    size = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
  }
  const std::size_t keyAt = kWireHeaderBytes + size;
  if (rest_.size() < kWireHeaderBytes || rest_.size() - kWireHeaderBytes < size ||
      rest_.size() - keyAt < sizeof keySize) {
    malformed_ = true;
    return false;
  }
  std::memcpy(&keySize, rest_.data() + keyAt, sizeof keySize);
  const std::size_t end = keyAt + sizeof keySize + keySize;
  if (keySize > STREAMRELAY_MAX_KEY_SIZE || rest_.size() < end) {
    malformed_ = true;
    return false;
  }
  payload = rest_.substr(kWireHeaderBytes, size);
  key = rest_.substr(keyAt + sizeof keySize, keySize);
  rest_.remove_prefix(end);
  return true;
}

bool EmittedFrames::wellFormed(std::string_view frames) {
  EmittedFrames reader(frames);
  std::string_view payload, key;
  while (reader.next(payload, key)) {
  }
  return !reader.malformed();
}

void MessageStream::append(const char* data, std::size_t size) {
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data, size);
}

bool MessageStream::next(ChildMessage& type, std::string_view& payload, std::string& error) {
  if (consumed_ == buffer_.size() && buffer_.capacity() > kMaxControlMessageBytes) {
    std::string().swap(buffer_);  // after a large emitted frame, give the memory back
    consumed_ = 0;
  }
  if (buffered() < kMessageHeaderBytes) return false;
  std::uint32_t kind = 0, length = 0;
  std::memcpy(&kind, buffer_.data() + consumed_, 4);
  std::memcpy(&length, buffer_.data() + consumed_ + 4, 4);
  type = static_cast<ChildMessage>(kind);
  if (kind < static_cast<std::uint32_t>(ChildMessage::Ready) || kind > static_cast<std::uint32_t>(ChildMessage::Ended)) {
    error = "unknown message type " + std::to_string(kind);
    return false;
  }
  const std::size_t cap = type == ChildMessage::Emit ? kMaxEmitMessageBytes : kMaxControlMessageBytes;
  if (length > cap) {
    error = "message of " + std::to_string(length) + " bytes (at most " + std::to_string(cap) + ")";
    return false;
  }
  if (buffered() < kMessageHeaderBytes + length) return false;
  payload = std::string_view(buffer_.data() + consumed_ + kMessageHeaderBytes, length);
  consumed_ += kMessageHeaderBytes + length;
  return true;
}

}  // namespace streamrelay
