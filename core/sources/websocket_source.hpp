// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebSocketSource: a provider's ws:// or wss:// feed. Each message (text or
// binary; fragmented messages joined) is one frame. After every connect the
// `send_on_connect` messages (subscribe, auth) are sent in order; the relay
// pings every ping_interval_ms and answers the provider's pings; a close code
// is logged; the connection is made again with backoff. With `endpoints:` it
// fails over as failover.hpp says.
//
// Built on libwebsockets (Debian's 4.1): non-blocking, it answers PINGs,
// reports fragments as they arrive (so a message is checked against
// max_frame_bytes before any of it is kept, from the length the frame header
// announces) and does TLS with OpenSSL. POCO 1.11's WebSocket neither answers
// PINGs nor joins continuation frames, and a receive timeout mid-frame breaks
// its stream, which would leave a quiet feed unable to notice a stop.

#include <memory>
#include <string>
#include <vector>

#include <libwebsockets.h>

#include "failover.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class WebSocketSource : public UpstreamSource {
 public:
  WebSocketSource(const SourceConfig& config, Bus& bus);
  ~WebSocketSource() override;

  struct Session;  // one connection's state, shared with libwebsockets' callback

  // For the callback: the handshake headers ("Name:", value, ...), the
  // greeting messages, the message size limit.
  const std::vector<std::string>& headersForHandshake() const { return headers_; }
  const std::vector<std::string>& greeting() const { return greeting_; }
  std::size_t maxMessageBytes() const { return maxMessageBytes_; }

 protected:
  void run() override;

 private:
  // How one stream (one endpoint, or the primary taken back) ended.
  using Outcome = StreamOutcome;
  // Reads from `endpoint` until its connection ends, taking the primary back
  // when a probe of it connects (failover.hpp).
  Outcome stream(lws_context* context, std::size_t endpoint);
  std::unique_ptr<Session> open(lws_context* context, std::size_t endpoint, std::string& error);
  static void close(Session& session);

  std::vector<std::string> headers_;        // "Name:" and value pairs, flattened
  const std::vector<std::string> greeting_;  // send_on_connect messages
  const std::size_t maxMessageBytes_;
  const int pingIntervalMs_;
  const std::string caFile_, certFile_, keyFile_;
  const bool verify_;
  const int idleTimeoutMs_;
  Failover failover_;  // `url`, or `endpoints` in order
  lws_retry_bo_t pings_{};
};

}  // namespace streamrelay
