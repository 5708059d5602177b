// SPDX-License-Identifier: Apache-2.0
#pragma once
// The nats plugin's configuration, read from its `config:` YAML.

#include <chrono>
#include <string>
#include <vector>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

struct NatsSinkConfig {
  std::vector<std::string> servers;                           // required; tried in order, failover and reconnect by cnats
  std::string subject = "streamrelay.{stream}";              // {stream}: the frame's stream
  bool jetstream = false;                                     // `jetstream:` given: publish with acks
  std::string stream;                                         // jetstream.stream: the stream that must answer (empty: any)
  std::chrono::milliseconds ackTimeout{5000};                 // jetstream.ack_timeout_ms: then published again
  int maxPending = 4096;                                      // unacknowledged publishes at most (JetStream)
  std::string user, password, token, credsFile;
  std::string caFile, certFile, keyFile;                      // tls: any of them turns TLS on
  bool tls = false;
};

// Its keys: `password` and `token` are secrets, `servers` may hold them
// (nats://USER:PASSWORD@host, nats://TOKEN@host).
const ConfigKeys& natsSinkConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value
// (never echoing a server's URL or a credential).
NatsSinkConfig parseNatsSinkConfig(const std::string& yaml);

// A server URL as log lines show it: without its userinfo.
std::string serverForLog(const std::string& url);

}  // namespace streamrelay::plugins
