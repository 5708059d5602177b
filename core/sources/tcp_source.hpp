// SPDX-License-Identifier: Apache-2.0
#pragma once
// TcpSource: connects out to the provider (host:port, [v6]:port or a hostname,
// or `endpoints:` in failover order), optionally over TLS, sends
// send_on_connect, and reads frames cut by the source's framing. The loop —
// reconnects, failover, idle timeout, a clean close — is ConnectingSource's.

#include <string>
#include <vector>

#include "connecting_source.hpp"
#include "host_port.hpp"

namespace streamrelay {

class TcpSource : public ConnectingSource {
 public:
  TcpSource(const SourceConfig& config, Bus& bus);
  ~TcpSource() override;

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;

 private:
  static std::vector<HostPort> endpointsOf(const Settings& settings);

  const std::vector<HostPort> endpoints_;
  const std::string sendOnConnect_;
};

}  // namespace streamrelay
