// SPDX-License-Identifier: Apache-2.0
#pragma once
// SourceType: what a source type registers — its keys (a TypeSpec of the
// source schema) and how to build one. Every type is listed once, in
// source_types.def; see docs/development.md "Adding a source type".

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

}  // namespace streamrelay
