#pragma once
// TcpSource: connects out to the provider (host:port, [v6]:port or a hostname),
// sends send_on_connect, reads frames, and reconnects with exponential backoff
// and jitter when the connection drops, idles out or breaks the protocol.

#include "upstream_source.hpp"

namespace streamrelay {

class TcpSource : public UpstreamSource {
 public:
  TcpSource(const SourceConfig& config, Bus& bus);

 protected:
  void run() override;

 private:
  int connectOnce(std::string& error);
  bool sendGreeting(int fd);
  // Reads until the connection ends; returns why, for the log.
  std::string readUntilDone(int fd, FrameReader& reader);
  std::string endpoint() const;

  const std::string host_;  // without the brackets of "[::1]"
  const int port_;
  const std::string sendOnConnect_;
  const int initialDelayMs_;
  const int maxDelayMs_;
  const int idleTimeoutMs_;  // 0: never
};

}  // namespace streamrelay
