// SPDX-License-Identifier: Apache-2.0
#pragma once
// The nats plugin's configuration, read from its `config:` YAML.

#include <chrono>
#include <string>
#include <vector>

#include "nats_connection_config.hpp"

namespace streamrelay::plugins {

struct NatsSinkConfig : NatsConnectionConfig {
  std::string subject = "streamrelay.{stream}";              // {stream}: the frame's stream
  bool jetstream = false;                                     // `jetstream:` given: publish with acks
  std::string stream;                                         // jetstream.stream: the stream that must answer (empty: any)
  std::chrono::milliseconds ackTimeout{5000};                 // jetstream.ack_timeout_ms: then published again
  int maxPending = 4096;                                      // unacknowledged publishes at most (JetStream)
};

// Its keys: `password` and `token` are secrets, `servers` may hold them
// (nats://USER:PASSWORD@host, nats://TOKEN@host).
const ConfigKeys& natsSinkConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value
// (never echoing a server's URL or a credential).
NatsSinkConfig parseNatsSinkConfig(const std::string& yaml);

}  // namespace streamrelay::plugins
