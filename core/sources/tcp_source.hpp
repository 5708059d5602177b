// SPDX-License-Identifier: Apache-2.0
#pragma once
// TcpSource: connects out to the provider (host:port, [v6]:port or a hostname,
// or `endpoints:` in failover order), optionally over TLS, sends
// send_on_connect, and reads frames cut by the source's framing. The loop —
// reconnects, failover, idle timeout, a clean close — is ConnectingSource's.

#include <string>
#include <vector>

#include "connecting_source.hpp"

namespace streamrelay {

class TcpSource : public ConnectingSource {
 public:
  TcpSource(const SourceConfig& config, Bus& bus);
  ~TcpSource() override;

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;

 private:
  struct Endpoint {
    std::string host;  // without the brackets of "[::1]"
    int port;
  };
  static std::vector<Endpoint> endpointsOf(const Settings& settings);

  const std::vector<Endpoint> endpoints_;
  const std::string sendOnConnect_;
};

}  // namespace streamrelay
