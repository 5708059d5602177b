// SPDX-License-Identifier: Apache-2.0
#pragma once
// ListenSource: the relay listens and publishers connect to push frames. Any
// number up to max_publishers at once; each has its own decoder, so their
// frames interleave only at frame boundaries. A publisher that breaks the
// protocol, sends nothing for idle_timeout_ms, or is not in the allow list is
// disconnected alone. When the relay stops, what publishers had already sent
// (what waits in their sockets) is still read and published.

#include <Poco/Net/ServerSocket.h>

#include <chrono>
#include <memory>
#include <vector>

#include "log_limiter.hpp"
#include "cidr.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class ListenSource : public UpstreamSource {
 public:
  ListenSource(const SourceConfig& config, Bus& bus);
  void prepare() override;
  std::uint16_t port() const { return port_; }

 protected:
  void run() override;

 private:
  struct Publisher {
    Poco::Net::StreamSocket socket;
    std::string peer;
    std::unique_ptr<FrameReader> reader;
    std::chrono::steady_clock::time_point lastByte;
  };
  void acceptPublisher();
  // False if the publisher is done (closed, error, protocol error). Reads at
  // most `maxReads` times.
  bool readPublisher(Publisher& publisher, int maxReads);
  // Closes publishers that sent nothing for idle_timeout_ms; returns the poll
  // timeout until the next one could be due (-1: none).
  int closeIdlePublishers();
  void readWhatWasSent();

  Poco::Net::ServerSocket server_;
  std::uint16_t port_ = 0;
  std::vector<Publisher> publishers_;
  LogLimiter refusalLog_;
  const std::string bind_;
  const std::size_t maxPublishers_;
  const CidrList allow_;     // empty: everyone
  const int idleTimeoutMs_;  // 0: never
};

}  // namespace streamrelay
