// SPDX-License-Identifier: Apache-2.0
#pragma once
// ListenerProtocol: what a listener speaks to its subscribers
// (listeners[].protocol). One class per protocol, in NAME_protocol.cpp,
// registered by one line in listener_protocols.def with its config keys
// (a ListenerProtocolType, listener_protocol_type.hpp);
// nothing else in the relay names a protocol. A protocol is
//   - a FrameCodec: how a frame goes out, encoded once per listener and
//     shared by its subscribers (frame_codec.hpp);
//   - a Conversation per subscriber: what the client says before it is
//     admitted (a hello, an HTTP request) and after (WebSocket pings, a
//     close), and what the relay says to it (the answer or a refusal in the
//     protocol's words, a heartbeat, a last word before closing).
// What every protocol shares is elsewhere: the transport, plain or TLS
// (subscriber_transport.hpp); admission, hello -> auth -> inputs -> resume
// (subscriber_admission.hpp); the session that writes frames and control
// bytes in order (subscriber_session.hpp); limits, deadlines and counters
// (subscriber_listener.hpp). docs/listener-protocols.md says how to add one.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frame_codec.hpp"
#include "hello.hpp"
#include "listener_protocol_type.hpp"
#include "schema.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

struct ListenerConfig;

// What admission decided (SubscriberAdmission): the streams a client gets
// and where each starts, or why it is refused.
struct AdmissionResult {
  CloseReason refused = CloseReason::None;
  std::string error;                          // refused: one line for the client and the log (no secret)
  std::optional<std::uint64_t> epoch;         // admitted: the epoch its streams share (none: several)
  std::vector<protocol::StreamStart> starts;  // admitted: one per stream it gets
  std::vector<std::string> select;            // admitted: the key patterns it gets (empty: every frame)
  int heartbeatMs = 0;                        // announced in the answer (0: no heartbeats)
  std::uint32_t maxRatePerKeyMs = 0;          // admitted: the hello's max_rate_per_key (0: none)
  std::string described;                      // for the "connected" log line: where each stream starts
};

// One subscriber's side of a protocol. Created for each connection, used
// only by its session's writer thread.
class Conversation {
 public:
  virtual ~Conversation() = default;

  // Set-up (ListenerProtocol::hasSetup): the client's bytes as they come,
  // until the result is Admit or Refuse. The conversation keeps what it
  // needs, bounded (a hello, a request head: wire::kMaxHelloBytes); bytes
  // after what it needed may be kept for input().
  struct Step {
    enum class Next { More, Admit, Refuse };
    Next next = Next::More;
    std::string reply;      // bytes to send now, before anything else (an HTTP 101 answer; a refusal)
    protocol::Hello hello;  // Admit: what the client asks for
    CloseReason refused = CloseReason::None;  // Refuse: why (the reply tells the client)
    std::string detail;     // Refuse: one line for the log
  };
  virtual Step setupInput(std::string_view bytes) = 0;
  // The client ended the connection (or reset it) during set-up: what it
  // had not sent yet, for the log. It counts as peer_closed, whatever the
  // protocol, so that a network that drops clients is not taken for bad ones.
  virtual std::string endedDuringSetup() const { return "closed the connection before its hello"; }
  // The bytes that tell the client what admission decided, sent before its
  // first frame; for a refusal, the last bytes before the connection closes.
  virtual std::string answer(const AdmissionResult& result) = 0;

  // Streaming: bytes the client sent. What to send back goes to `reply`
  // (sent between two frames); a reason other than None closes the session
  // once `reply` is out. Default: whatever a client sends is read and dropped.
  struct Input {
    CloseReason close = CloseReason::None;
    std::string detail;
  };
  virtual Input input(std::string_view /*bytes*/, std::string& /*reply*/) { return {}; }
  // The last bytes before the connection closes for `reason` (a WebSocket
  // close frame); "" for none. Sent only between two frames, without
  // waiting.
  virtual std::string farewell(CloseReason /*reason*/) { return {}; }
};

// Thread safe: immutable once created; shared by the listener's sessions.
class ListenerProtocol {
 public:
  virtual ~ListenerProtocol() = default;
  // True if a client speaks before it is admitted (a hello, an HTTP
  // request); false: admitted as soon as it is connected (raw).
  virtual bool hasSetup() const = 0;
  // A conversation with a new subscriber, under the listener's config as
  // it is now (keys that reload in place apply to the next client).
  virtual std::unique_ptr<Conversation> open(const ListenerConfig& now) const = 0;
  virtual const FrameCodec& codec() const = 0;
  // A heartbeat in this protocol, sent to a subscriber that was sent
  // nothing for heartbeat_ms; empty: none. Valid as long as the protocol.
  virtual std::string_view heartbeat() const { return {}; }
  // For the listener's start-up line: "websocket at /, envelope json".
  virtual std::string describe() const = 0;
};

// For the checks of protocols that frame their messages themselves: true if
// the listener's `framing` was given as anything but the default (the
// effective config, --check-config's output, prints the default framing for
// every listener, and must load again).
bool framingGiven(const Settings& listener);

}  // namespace streamrelay
