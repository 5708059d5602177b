// SPDX-License-Identifier: Apache-2.0
#pragma once
// The metrics plugin's configuration, read from its `config:` YAML.

#include <chrono>
#include <cstddef>
#include <string>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

struct MetricsConfig {
  std::string bind = "127.0.0.1:9100";
  // A client must have sent its whole request head within this long of its
  // connect, and taken its whole response within this long of the answer.
  std::chrono::milliseconds requestTimeout{5000};
  // Connections held at once; one more closes the oldest that is still
  // sending its request (a slow client never holds a scrape out).
  std::size_t maxConnections = 64;
  // A directory whose files are served as /pages/NAME (a web page beside
  // the relay's figures, e.g. sdk/examples/browser); empty: none.
  std::string pages;
};

// Its keys (none holds a secret).
const ConfigKeys& metricsConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value.
MetricsConfig parseMetricsConfig(const std::string& yaml);

}  // namespace streamrelay::plugins
