// SPDX-License-Identifier: Apache-2.0
#pragma once
// SourceType: what a source type registers — its keys (a TypeSpec of the
// source schema) and how to build one. The config reads the keys; the relay
// builds the source. Every type is listed once, in sources/source_types.def,
// and sources/source_types.cpp answers sourceTypes(); see
// docs/development.md "Adding a source type".

#include <functional>
#include <memory>
#include <vector>

#include "schema.hpp"

namespace streamrelay {

class Bus;
class UpstreamSource;
struct SourceConfig;

struct SourceType {
  TypeSpec spec;  // name, summary, its own keys (beside `type` and `framing`), checks
  std::function<std::unique_ptr<UpstreamSource>(const SourceConfig&, Bus&)> create;
};

// Every registered type, in source_types.def order.
const std::vector<SourceType>& sourceTypes();

// A source whose `type` is none of sourceTypes(): read by the keys of the
// type a library in `plugins.directory` provides (sources/plugin_source_types.cpp),
// with that plugin's own check. False if `type` is one of the relay's; fails
// `m` if no library provides it.
bool readPluginSource(const YamlMap& m, SourceConfig& source, const Settings& plugins);

}  // namespace streamrelay
