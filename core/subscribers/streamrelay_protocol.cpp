// SPDX-License-Identifier: Apache-2.0
// The `streamrelay` listener protocol: the client sends one line of JSON,
// the hello (hello.hpp); the relay answers with a control frame, then sends
// every frame with the 24-byte header of wire.hpp (stream id, seq, receive
// time), and a heartbeat control frame after heartbeat_ms without one. A
// batch with a provider position is followed by a control frame naming it.
#include <Poco/JSON/Object.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "config.hpp"
#include "listener_protocol.hpp"
#include "streamrelay/wire.hpp"

namespace streamrelay {

namespace {

// A stream's id is its place in the listener's inputs, the same on every
// connection (the answer maps names to ids).
class HeaderCodec : public FrameCodec {
 public:
  explicit HeaderCodec(std::vector<const StreamId*> inputs) : inputs_(std::move(inputs)) {}

  void encodeFrame(const FrameBatch& batch, std::size_t i, FrameWriter& out) const override {
    const std::string_view payload = batch.payload(i);
    wire::FrameHeader header;
    header.payloadBytes = static_cast<std::uint32_t>(payload.size());
    header.stream = streamIdOf(batch.stream());
    header.flags = out.flags();
    header.seq = batch.seq(i);
    header.receivedUnixNs = batch.receivedUnixNs();
    char bytes[wire::kFrameHeaderBytes];
    wire::writeFrameHeader(bytes, header);
    out.put(std::string_view(bytes, sizeof bytes));
    out.payload(payload);
    // After a batch's last frame, its provider position (an SSE event id),
    // for a relay that follows this one and may take the provider over
    // (docs/fleet.md "Standby"); clients skip a control frame of a type they
    // do not know.
    if (i + 1 == batch.frameCount() && !batch.providerPosition().empty()) {
      Poco::JSON::Object message;
      message.set("type", "provider_position");
      message.set("stream_id", static_cast<unsigned>(header.stream));
      message.set("after_seq", header.seq);
      message.set("position", batch.providerPosition());
      std::ostringstream json;
      message.stringify(json);
      out.put(wire::controlFrame(json.str()));
    }
  }

 private:
  std::uint16_t streamIdOf(const StreamId* stream) const {
    const auto it = std::find(inputs_.begin(), inputs_.end(), stream);
    return it == inputs_.end() ? 0 : static_cast<std::uint16_t>(it - inputs_.begin());
  }

  const std::vector<const StreamId*> inputs_;
};

// Reads the hello line, never keeping more than wire::kMaxHelloBytes of it.
class HelloLineConversation : public Conversation {
 public:
  Step setupInput(std::string_view bytes) override {
    Step step;
    const std::size_t end = bytes.find('\n');
    line_.append(bytes.substr(0, std::min(end, wire::kMaxHelloBytes + 1 - line_.size())));
    if (line_.size() > wire::kMaxHelloBytes)
      return refuse("hello line longer than " + std::to_string(wire::kMaxHelloBytes) + " bytes");
    if (end == std::string_view::npos) return step;
    try {
      step.hello = protocol::parseHello(line_);
    } catch (const protocol::HelloError& e) {
      return refuse(e.what());
    }
    line_.clear();
    line_.shrink_to_fit();
    step.next = Step::Next::Admit;
    return step;
  }

  std::string answer(const AdmissionResult& result) override {
    if (result.refused != CloseReason::None) return protocol::errorAnswer(result.error);
    return protocol::okAnswer(result.epoch, result.starts, result.heartbeatMs);
  }

 private:
  Step refuse(const std::string& error) {
    Step step;
    step.next = Step::Next::Refuse;
    step.refused = CloseReason::BadHello;
    step.detail = error;
    step.reply = protocol::errorAnswer(error);
    return step;
  }

  std::string line_;
};

class StreamrelayProtocol : public ListenerProtocol {
 public:
  explicit StreamrelayProtocol(std::vector<const StreamId*> inputs) : codec_(std::move(inputs)) {}
  bool hasSetup() const override { return true; }
  std::unique_ptr<Conversation> open(const ListenerConfig&) const override {
    return std::make_unique<HelloLineConversation>();
  }
  const FrameCodec& codec() const override { return codec_; }
  std::string_view heartbeat() const override { return protocol::heartbeatFrame(); }
  std::string describe() const override { return "streamrelay"; }

 private:
  HeaderCodec codec_;
};

}  // namespace

ListenerProtocolType streamrelay_listener_protocol() {
  ListenerProtocolType type;
  type.spec = {"streamrelay", "a hello line, an answer, then frames with stream, seq and time", {}, {}};
  type.readsHello = true;
  type.create = [](const ListenerConfig&, std::vector<const StreamId*> inputs) {
    return std::make_unique<StreamrelayProtocol>(std::move(inputs));
  };
  return type;
}

}  // namespace streamrelay
