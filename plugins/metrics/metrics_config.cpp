// SPDX-License-Identifier: Apache-2.0
#include "metrics_config.hpp"

namespace streamrelay::plugins {

const std::vector<ConfigKey>& metricsConfigKeys() {
  static const std::vector<ConfigKey> keys{"bind", "request_timeout_ms", "max_connections", "pages"};
  return keys;
}

MetricsConfig parseMetricsConfig(const std::string& yaml) {
  const ConfigReader config(yaml, metricsConfigKeys());
  MetricsConfig c;
  c.bind = config.read<std::string>("bind", c.bind);
  if (c.bind.empty()) ConfigReader::fail("bind", "must be HOST:PORT");
  c.requestTimeout = std::chrono::milliseconds(config.readInt("request_timeout_ms", 5000, 100, 600000));
  c.maxConnections = static_cast<std::size_t>(config.readInt("max_connections", 64, 1, 10000));
  c.pages = config.read<std::string>("pages", c.pages);
  return c;
}

}  // namespace streamrelay::plugins
