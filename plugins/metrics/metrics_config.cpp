// SPDX-License-Identifier: Apache-2.0
#include "metrics_config.hpp"

namespace streamrelay::plugins {

const ConfigKeys& metricsConfigKeys() {
  static const ConfigKeys keys{
      stringKey("bind").def("127.0.0.1:9100").doc("HOST:PORT the HTTP server listens on (port 0: any free one)"),
      intKey("request_timeout_ms", 5000, 100, 600000).doc("a client's whole request, and its whole response, within"),
      intKey("max_connections", 64, 1, 10000).doc("connections at once; one more closes the slowest request"),
      stringKey("pages").doc("a directory whose files are served as /pages/NAME (a web page beside the relay)"),
  };
  return keys;
}

MetricsConfig parseMetricsConfig(const std::string& yaml) {
  const ConfigReader config(yaml, metricsConfigKeys());
  MetricsConfig c;
  c.bind = config.string("bind");
  if (c.bind.empty()) ConfigReader::fail("bind", "must be HOST:PORT");
  c.requestTimeout = std::chrono::milliseconds(config.integer("request_timeout_ms"));
  c.maxConnections = static_cast<std::size_t>(config.integer("max_connections"));
  c.pages = config.string("pages");
  return c;
}

}  // namespace streamrelay::plugins
