// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConnectingSource: the one loop of every source that connects out to a
// provider (tcp, http, websocket). It owns what they share: the endpoints
// and their order, the backoff and the return to the primary (a Failover),
// idle_timeout_ms, the stop signal, the `tls` group read once, the decoder
// (a frame cut by a change of connection is never published) and the
// counters, each with one meaning for every type (upstream_source.hpp).
//
// A type supplies its transport: open() connects to endpoint i (socket, TLS,
// HTTP or WebSocket handshake, greeting) and returns a ProviderConnection
// that streams until it ends and closes cleanly. Adding a connecting source
// type is one small file pair (docs/development.md "Adding a source type").
//
// The source thread runs run(); the constructor and prepare() run on main.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "failover.hpp"
#include "tls_client.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class ClientSocket;
struct KeySpec;

// How a stream from a provider ended.
struct StreamEnd {
  enum class How {
    Orderly,  // the provider ended it in order (EOF, close_notify, a complete HTTP response): planned if frames flowed
    Planned,  // the provider said it meant to (WebSocket 1000, 1001, 1012): never a failure
    Failed,   // an error, a protocol error, a drop: an endpoint failure
    Return,   // the relay leaves this secondary for the primary (failover.return_to_primary)
    Stopped,  // the source is asked to stop
  };
  How how = How::Failed;
  std::string why;  // for the log ("" when stopped)

  static StreamEnd stopped() { return {How::Stopped, ""}; }
  static StreamEnd failed(std::string why) { return {How::Failed, std::move(why)}; }
};

// Why the relay closes a connection, as a WebSocket close frame says it.
struct Goodbye {
  int code;            // 1000 normal closure, 1001 going away
  const char* reason;  // "shutdown", "restart", ...
};

// One live connection to a provider, its handshake done. Used by the source
// thread only. Destroying it drops the connection at once; close() first
// says goodbye.
class ProviderConnection {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~ProviderConnection() = default;
  // Waits up to `timeoutMs` (-1: no limit) for the provider, or until
  // `stopFd` is readable (then Stopped), and publishes every whole frame
  // that arrived. Returns how the stream ended, or nothing while it goes on.
  virtual std::optional<StreamEnd> pump(int timeoutMs, int stopFd) = 0;
  // Closes in order, best effort, by `deadline`: a WebSocket close frame
  // saying `goodbye`, TLS close_notify.
  virtual void close(const Goodbye& goodbye, Clock::time_point deadline) = 0;
  // For the connect log line: "TLSv1.3, TLS_AES_256_GCM_SHA384", "HTTP 200"; "" for nothing.
  virtual std::string describe() const = 0;
};

// Why a try failed, for the log and the retry.
struct OpenFailure {
  std::string why;
  int retryAfterMs = -1;  // the provider asked to wait this long (HTTP Retry-After)
};

class ConnectingSource : public UpstreamSource {
 public:
  ~ConnectingSource() override;
  // Builds the TLS context (a certificate file that cannot be used stops the start).
  void prepare() override;
  // The framing's (SSE: the first request's Last-Event-ID).
  void resumeProviderAfter(const std::string& position) override { reader_.decoder().resumeAfter(position); }

 protected:
  using Clock = std::chrono::steady_clock;
  // `addresses`: the endpoints in order, as the log and /stats name them.
  // `decoder`: null for the source's framing.
  ConnectingSource(const SourceConfig& config, Bus& bus, std::vector<std::string> addresses,
                   std::unique_ptr<FrameDecoder> decoder = nullptr);

  // Connects to `endpoint` and completes every handshake by `deadline`
  // (giving up once stop_ is requested); null with `failure` set if it
  // cannot. Frames that arrive with the handshake wait for the first pump().
  virtual std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                                   OpenFailure& failure) = 0;

  // A ClientSocket to host:port (over TLS with `tls`), connected by
  // `deadline` and giving up once stop_ is requested; null with `failure`
  // set if it cannot be.
  std::unique_ptr<ClientSocket> connect(const std::string& host, int port, const TlsContext* tls,
                                        Clock::time_point deadline, OpenFailure& failure);

  // How the log says that the next try comes: "reconnecting" (http: "retrying").
  virtual const char* retryVerb() const { return "reconnecting"; }

  const Failover& failover() const { return failover_; }
  const TlsOptions& tlsOptions() const { return tls_; }
  const TlsContext* tlsContext() const { return tlsContext_.get(); }  // null without TLS
  FrameReader& reader() { return reader_; }

 private:
  // What run() does next: kStop, or wait this many ms (0: at once).
  static constexpr int kStop = -1;

  void run() final;
  std::unique_ptr<ProviderConnection> openWithin(std::size_t endpoint, OpenFailure& failure);
  int afterFailedTry(std::size_t endpoint, const OpenFailure& failure);
  // Streams from a connection to `endpoint` until it ends, then closes it.
  int streamFrom(std::size_t endpoint, ProviderConnection& connection, std::unique_ptr<ProviderConnection>& probed);
  // Pumps `connection` until it ends, is idle too long, or gives way to the
  // primary; a probe's connection to the primary lands in `probed`.
  StreamEnd stream(ProviderConnection& connection, std::unique_ptr<ProviderConnection>& probed);
  std::optional<StreamEnd> actOnPrimary(Clock::time_point lastByte, std::unique_ptr<ProviderConnection>& probed);
  Goodbye goodbyeFor(const StreamEnd& end) const;
  Clock::time_point closeDeadline(const StreamEnd& end) const;

  Failover failover_;
  const int idleTimeoutMs_;  // 0: never
  const TlsOptions tls_;
  std::unique_ptr<TlsContext> tlsContext_;
  FrameReader reader_;
};

// Keys every connecting source has, after its own: tls (`tlsSchema`),
// reconnect, failover, idle_timeout_ms.
void addConnectingKeys(std::vector<KeySpec>& keys, const Schema& tlsSchema);

// The config check of a URL source (http, websocket): `url` or `endpoints`,
// not both, and every address with one of the `schemes` ("http://", ...).
void checkUrlOrEndpoints(const Settings& s, const YamlMap& m, const std::vector<std::string>& schemes);
// A `failover` policy only with several endpoints.
void checkFailover(const Settings& s, const YamlMap& m);
// The addresses of a URL source: `endpoints`, or `url` alone.
std::vector<std::string> urlsOf(const Settings& s);

}  // namespace streamrelay
