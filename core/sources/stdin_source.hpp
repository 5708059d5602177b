// SPDX-License-Identifier: Apache-2.0
#pragma once
// StdinSource: frames from standard input (`producer | streamrelay`). At end of
// input the source ends; the relay keeps serving until it is stopped.

#include "upstream_source.hpp"

namespace streamrelay {

class StdinSource : public UpstreamSource {
 public:
  StdinSource(const SourceConfig& config, Bus& bus) : UpstreamSource(config, bus) {}

 protected:
  void run() override;
};

}  // namespace streamrelay
