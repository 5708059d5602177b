#pragma once
// TcpSource: connects out to the provider (host:port, [v6]:port or a hostname),
// sends send_on_connect, reads frames, and reconnects with exponential backoff
// and jitter when the connection drops, idles out or breaks the protocol.

#include "upstream_source.hpp"

namespace streamrelay {

class TcpSource : public UpstreamSource {
 public:
  TcpSource(const UpstreamConfig& config, Bus& bus) : UpstreamSource(config, bus) {}

 protected:
  void run() override;

 private:
  int connectOnce(std::string& error);
  bool sendGreeting(int fd);
  // Reads until the connection ends; returns why, for the log.
  std::string readUntilDone(int fd, FrameReader& reader);
  std::string endpoint() const;
};

}  // namespace streamrelay
