// SPDX-License-Identifier: Apache-2.0
#include "nats_connection_config.hpp"

namespace streamrelay::plugins {

NatsConnectionConfig readNatsConnection(const ConfigReader& config) {
  auto fail = &ConfigReader::fail;
  NatsConnectionConfig c;
  c.servers = config.strings("servers");
  if (c.servers.empty()) fail("servers", "must list at least one nats://HOST:PORT");
  for (std::size_t i = 0; i < c.servers.size(); ++i)
    if (c.servers[i].rfind("nats://", 0) != 0 && c.servers[i].rfind("tls://", 0) != 0)
      fail("servers[" + std::to_string(i) + "]", "is not nats://HOST:PORT or tls://HOST:PORT");
  c.user = config.string("user");
  c.password = config.string("password");
  c.token = config.string("token");
  c.credsFile = config.string("creds_file");
  if (c.password.empty() != c.user.empty()) fail(c.user.empty() ? "password" : "user", "user and password go together");
  c.caFile = config.string("tls.ca_file");
  c.certFile = config.string("tls.cert_file");
  c.keyFile = config.string("tls.key_file");
  c.tls = config.given("tls") && config.boolean("tls.enabled");
  if (c.certFile.empty() != c.keyFile.empty()) fail("tls", "cert_file and key_file go together");
  return c;
}

std::string serverForLog(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const std::size_t at = url.find('@', start);
  if (at == std::string::npos || at > url.find('/', start)) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

}  // namespace streamrelay::plugins
