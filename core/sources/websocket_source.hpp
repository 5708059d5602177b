// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebSocketSource: a provider's ws:// or wss:// feed. Each message (text or
// binary; fragmented messages joined) is one frame. After every connect the
// `send_on_connect` messages (subscribe, auth) are sent in order; the
// provider's PINGs are answered, and the relay pings after ping_interval_ms
// without a byte and hangs up if nothing comes back within as long. A close
// is logged with the code and reason the provider sent; 1000, 1001 and 1012
// (service restart) are planned closes, not failures. The relay says goodbye
// itself with a close frame (1001 at shutdown, 1000 otherwise) and, over TLS,
// close_notify. The loop — reconnects, failover, idle timeout — is
// ConnectingSource's.
//
// RFC 6455 over the same socket and TLS as the tcp source (client_socket.hpp,
// websocket_frames.hpp): libwebsockets 4.1 rewrites a received close code
// 1012-1014 into 1002 before the application sees it, and hides the close
// handshake from the caller.

#include <string>
#include <utility>
#include <vector>

#include "connecting_source.hpp"

namespace streamrelay {

class ClientSocket;
class WebSocketDecoder;

class WebSocketSource : public ConnectingSource {
 public:
  WebSocketSource(const SourceConfig& config, Bus& bus);
  ~WebSocketSource() override;

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;

 private:
  class Connection;
  // An endpoint's URL, cut up for the connect and the handshake.
  struct Endpoint {
    std::string host;        // to connect to (an IPv6 address without brackets)
    int port = 0;
    bool tls = false;        // wss://
    std::string hostHeader;  // Host: as the URL names it
    std::string target;      // the path and query
    std::string error;       // why the URL cannot be used ("" if it can)
  };
  static Endpoint endpointOf(const std::string& url);
  std::string handshakeRequest(const Endpoint& endpoint, const std::string& key) const;
  std::string awaitUpgrade(ClientSocket& socket, const std::string& key, Clock::time_point deadline,
                           std::string& early);

  std::vector<Endpoint> endpoints_;
  std::vector<std::pair<std::string, std::string>> headers_;
  const std::vector<std::string> greeting_;  // send_on_connect messages
  const int pingIntervalMs_;
  WebSocketDecoder& decoder_;                // the reader's
};

}  // namespace streamrelay
