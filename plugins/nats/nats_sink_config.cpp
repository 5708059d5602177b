// SPDX-License-Identifier: Apache-2.0
#include "nats_sink_config.hpp"

#include <map>


namespace streamrelay::plugins {

const std::vector<ConfigKey>& natsSinkConfigKeys() {
  static const std::vector<ConfigKey> keys{urlKey("servers"), "subject", "jetstream", "max_pending", "user",
                                           secretKey("password"), secretKey("token"), "creds_file", "tls"};
  return keys;
}

std::string serverForLog(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const std::size_t at = url.find('@', start);
  if (at == std::string::npos || at > url.find('/', start)) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

NatsSinkConfig parseNatsSinkConfig(const std::string& yaml) {
  const ConfigReader config(yaml, natsSinkConfigKeys());
  auto fail = &ConfigReader::fail;
  NatsSinkConfig c;
  // Required: a sink dropped into the plugins directory without a
  // configured instance must not start publishing to whatever listens on 4222.
  c.servers = config.read<std::vector<std::string>>("servers", {});
  if (c.servers.empty()) fail("servers", "is required: a list of nats://HOST:PORT");
  for (std::size_t i = 0; i < c.servers.size(); ++i)
    if (c.servers[i].rfind("nats://", 0) != 0 && c.servers[i].rfind("tls://", 0) != 0)
      fail("servers[" + std::to_string(i) + "]", "is not nats://HOST:PORT or tls://HOST:PORT");
  c.subject = config.read<std::string>("subject", c.subject);
  if (c.subject.empty() || c.subject.find_first_of(" \t\r\n") != std::string::npos)
    fail("subject", "must be a NATS subject (no spaces)");
  const auto js = config.read<std::map<std::string, std::string>>("jetstream", {});
  c.jetstream = config.has("jetstream");
  for (const auto& [key, value] : js) {
    if (key == "stream") c.stream = value;
    else if (key == "ack_timeout_ms") {
      long long ms = 0;
      try {
        ms = std::stoll(value);
      } catch (const std::exception&) {
        fail("jetstream.ack_timeout_ms", "expected milliseconds");
      }
      if (ms < 100 || ms > 3600000) fail("jetstream.ack_timeout_ms", "must be 100..3600000");
      c.ackTimeout = std::chrono::milliseconds(ms);
    } else {
      fail("jetstream." + key, "unknown key (expected stream, ack_timeout_ms)");
    }
  }
  c.maxPending = static_cast<int>(config.readInt("max_pending", 4096, 1, 1000000));
  c.user = config.read<std::string>("user", "");
  c.password = config.read<std::string>("password", "");
  c.token = config.read<std::string>("token", "");
  c.credsFile = config.read<std::string>("creds_file", "");
  if (c.password.empty() != c.user.empty()) fail(c.user.empty() ? "password" : "user", "user and password go together");
  const auto tls = config.read<std::map<std::string, std::string>>("tls", {});
  for (const auto& [key, value] : tls) {
    if (key == "ca_file") c.caFile = value;
    else if (key == "cert_file") c.certFile = value;
    else if (key == "key_file") c.keyFile = value;
    else if (key == "enabled") c.tls = value == "true";
    else fail("tls." + key, "unknown key (expected enabled, ca_file, cert_file, key_file)");
  }
  c.tls = c.tls || !tls.empty();
  if (c.certFile.empty() != c.keyFile.empty()) fail("tls", "cert_file and key_file go together");
  return c;
}

}  // namespace streamrelay::plugins
