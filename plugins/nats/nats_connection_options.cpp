// SPDX-License-Identifier: Apache-2.0
#include "nats_connection_options.hpp"

#include <vector>

namespace streamrelay::plugins {

natsStatus applyNatsConnection(const NatsConnectionConfig& c, natsOptions* opts) {
  std::vector<const char*> servers;
  for (const std::string& s : c.servers) servers.push_back(s.c_str());
  natsStatus s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);  // the first server is the primary
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);   // forever: the relay holds the frames
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 200);
  if (s == NATS_OK && !c.user.empty()) s = natsOptions_SetUserInfo(opts, c.user.c_str(), c.password.c_str());
  if (s == NATS_OK && !c.token.empty()) s = natsOptions_SetToken(opts, c.token.c_str());
  if (s == NATS_OK && !c.credsFile.empty()) s = natsOptions_SetUserCredentialsFromFiles(opts, c.credsFile.c_str(), nullptr);
  if (s == NATS_OK && c.tls) s = natsOptions_SetSecure(opts, true);
  if (s == NATS_OK && !c.caFile.empty()) s = natsOptions_LoadCATrustedCertificates(opts, c.caFile.c_str());
  if (s == NATS_OK && !c.certFile.empty())
    s = natsOptions_LoadCertificatesChain(opts, c.certFile.c_str(), c.keyFile.c_str());
  return s;
}

}  // namespace streamrelay::plugins
