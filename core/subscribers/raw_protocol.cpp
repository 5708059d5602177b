// SPDX-License-Identifier: Apache-2.0
// The `raw` listener protocol (the default): frames only, in the listener's
// framing, no handshake; the client never has to send anything. With the
// default framing (a 4-byte big-endian length) a frame goes out exactly as
// the batch holds it; other framings are encoded once per listener.
#include "framing.hpp"
#include "listener_protocol.hpp"
#include "config.hpp"
#include "streamrelay/wire.hpp"

namespace streamrelay {

namespace {

class RawCodec : public FrameCodec {
 public:
  explicit RawCodec(const FramingSpec& framing) : framing_(framing), wireForm_(framing.isWireForm()) {}

  bool wireForm() const override { return wireForm_; }

  void encodeFrame(const FrameBatch& batch, std::size_t i, FrameWriter& out) const override {
    const std::string_view payload = batch.payload(i);
    if (!canEncode(payload)) return out.skip();
    if (framing_.type == FramingType::LengthPrefix) {
      char prefix[8];
      wire::putUnsigned(prefix, payload.size(), framing_.width, framing_.byteOrder == ByteOrder::Big);
      out.put(std::string_view(prefix, static_cast<std::size_t>(framing_.width)));
    }
    out.payload(payload);
    if (framing_.type == FramingType::Delimiter) out.put(framing_.delimiter);
  }

 private:
  // False if the framing cannot carry the payload: too big for the prefix
  // width or max_frame_bytes, not the fixed size, or one a reader would cut
  // elsewhere (wire::delimiterEndsFrameExactly).
  bool canEncode(std::string_view payload) const {
    if (payload.size() > framing_.largestEncodable()) return false;
    if (framing_.type == FramingType::Fixed) return payload.size() == framing_.fixedSize;
    if (framing_.type == FramingType::Delimiter) return wire::delimiterEndsFrameExactly(payload, framing_.delimiter);
    return framing_.type == FramingType::LengthPrefix;
  }

  const FramingSpec framing_;
  const bool wireForm_;
};

// A raw client says nothing: it is admitted once connected (and through
// TLS, if the listener has it).
class RawConversation : public Conversation {
 public:
  Step setupInput(std::string_view) override { return {}; }
  std::string answer(const AdmissionResult&) override { return {}; }
};

class RawProtocol : public ListenerProtocol {
 public:
  explicit RawProtocol(const FramingSpec& framing) : codec_(framing), described_(framing.describe()) {}
  bool hasSetup() const override { return false; }
  std::unique_ptr<Conversation> open(const ListenerConfig&) const override {
    return std::make_unique<RawConversation>();
  }
  const FrameCodec& codec() const override { return codec_; }
  std::string describe() const override { return described_; }

 private:
  RawCodec codec_;
  const std::string described_;
};

}  // namespace

ListenerProtocolType raw_listener_protocol() {
  ListenerProtocolType type;
  type.spec = {"raw", "frames only, in the listener's framing; the client sends nothing", {}, {}};
  type.create = [](const ListenerConfig& config, std::vector<const StreamId*>) {
    return std::make_unique<RawProtocol>(config.framing);
  };
  return type;
}

}  // namespace streamrelay
