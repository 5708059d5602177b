// SPDX-License-Identifier: Apache-2.0
#pragma once
// How the nats sink and the nats source reach the servers: the keys both
// take (servers, credentials, TLS), read in one place with one set of rules.
// Each plugin's key table lists them (plugin.hpp's ConfigKeys is a literal
// table); nats_connection_options.hpp applies them to cnats.

#include <string>
#include <vector>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

struct NatsConnectionConfig {
  std::vector<std::string> servers;  // required; tried in order, failover and reconnect by cnats
  std::string user, password, token, credsFile;
  std::string caFile, certFile, keyFile;  // tls: any of them turns TLS on
  bool tls = false;
};

// Reads servers, user, password, token, creds_file and tls.*; throws
// std::invalid_argument naming the key (never echoing a URL or a credential).
NatsConnectionConfig readNatsConnection(const ConfigReader& config);

// A server URL as log lines show it: without its userinfo.
std::string serverForLog(const std::string& url);

}  // namespace streamrelay::plugins
