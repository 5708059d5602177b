#pragma once
// ListenSource: the relay listens and publishers connect to push frames. Any
// number up to max_publishers at once; each has its own decoder, so their
// frames interleave only at frame boundaries. A publisher that breaks the
// protocol is disconnected alone.

#include <Poco/Net/ServerSocket.h>

#include <memory>
#include <vector>

#include "upstream_source.hpp"

namespace streamrelay {

class ListenSource : public UpstreamSource {
 public:
  ListenSource(const UpstreamConfig& config, Bus& bus) : UpstreamSource(config, bus) {}
  void prepare() override;
  std::uint16_t port() const { return port_; }

 protected:
  void run() override;

 private:
  struct Publisher {
    Poco::Net::StreamSocket socket;
    std::string peer;
    std::unique_ptr<FrameReader> reader;
  };
  void acceptPublisher();
  // False if the publisher is done (closed, error, protocol error).
  bool readPublisher(Publisher& publisher);

  Poco::Net::ServerSocket server_;
  std::uint16_t port_ = 0;
  std::vector<Publisher> publishers_;
};

}  // namespace streamrelay
