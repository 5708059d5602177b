// SPDX-License-Identifier: Apache-2.0
#pragma once
// TcpSource: connects out to the provider (host:port, [v6]:port or a hostname),
// optionally over TLS, sends send_on_connect, reads frames, and reconnects with
// exponential backoff and jitter when the connection drops, idles out or
// breaks the protocol.
//
// With `endpoints:` (instead of host/port) it fails over in order: the first
// endpoint is the primary; when it cannot be reached the next is tried at
// once, and only a round in which none answered waits for the backoff. While
// a secondary is live the primary is probed (first after reconnect's initial
// delay, then twice as long after each failed probe, up to its max delay) and
// taken back as soon as it answers. A connection change never publishes part
// of a frame: what was cut mid-frame is dropped with the old connection.

#include <memory>
#include <vector>

#include "failover.hpp"
#include "tls_client.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class TcpSource : public UpstreamSource {
 public:
  TcpSource(const SourceConfig& config, Bus& bus);
  ~TcpSource() override;
  // Builds the TLS context: a certificate file that cannot be used stops the start.
  void prepare() override;

 protected:
  void run() override;

 private:
  struct Endpoint {
    std::string host;  // without the brackets of "[::1]"
    int port;
    std::string text;  // as the log and /stats show it
  };
  // One live connection: the socket, and TLS over it if configured.
  struct Connection {
    int fd = -1;
    std::unique_ptr<TlsConnection> tls;
    std::size_t endpoint = 0;
    ~Connection();
  };

  // Connects, handshakes and greets; null with `error` set if any step fails.
  std::unique_ptr<Connection> connect(std::size_t endpoint, std::string& error);
  int connectSocket(const Endpoint& endpoint, std::string& error);
  bool sendGreeting(Connection& connection, std::string& error);
  // Reads until the connection ends; returns why, for the log ("" when
  // stopping). On a secondary it probes the primary and, when that answers,
  // returns with `next` holding the primary's connection.
  std::string readUntilDone(Connection& connection, FrameReader& reader, std::unique_ptr<Connection>& next);
  std::string readAvailable(Connection& connection, FrameReader& reader);
  static std::vector<Endpoint> endpointsOf(const Settings& settings);

  const std::vector<Endpoint> endpoints_;
  const std::string sendOnConnect_;
  const int idleTimeoutMs_;  // 0: never
  const TlsOptions tlsOptions_;
  std::unique_ptr<TlsContext> tls_;  // set by prepare() when tls.enabled
  Failover failover_;
};

}  // namespace streamrelay
