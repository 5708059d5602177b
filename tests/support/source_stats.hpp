// SPDX-License-Identifier: Apache-2.0
#pragma once
// SourceStats: a relay's /stats for the connecting-source tests. The relay
// runs the built-in metrics plugin (from a fresh plugins directory); the
// test asks for one source's counters instead of reading log lines.
// Catch2 assertions inside: include only from test files.

#include <Poco/JSON/Object.h>

#include <cstdint>
#include <string>

#include "relay_fixture.hpp"

namespace streamrelay::test {

class SourceStats {
 public:
  SourceStats();
  // The `plugins:` section that serves /stats: append it to the relay's config.
  std::string pluginsSection() const;
  // Call once the relay has started (it logs the metrics plugin's port).
  void attach(const RunningRelay& relay);
  // /stats `sources[]` entry of `source` (null if there is none).
  Poco::JSON::Object::Ptr source(const std::string& source = "upstream") const;
  // A counter of the source ("connects", "protocol_errors", ...).
  std::uint64_t counter(const std::string& name, const std::string& source = "upstream") const;
  // `failures` of the endpoint at `index` (0: the primary).
  std::uint64_t endpointFailures(std::size_t index, const std::string& source = "upstream") const;

 private:
  PluginDir dir_;
  int port_ = 0;
};

}  // namespace streamrelay::test
