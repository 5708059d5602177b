// SPDX-License-Identifier: Apache-2.0
#pragma once
// GeneratorSource: makes frames itself at `rate` frames/s of `size` bytes, so
// the relay works out of the box and can be load-tested without a provider.
// Each payload is readable text: "frame N at <UTC time>", padded with '.'.

#include "upstream_source.hpp"

namespace streamrelay {

class GeneratorSource : public UpstreamSource {
 public:
  GeneratorSource(const SourceConfig& config, Bus& bus);

 protected:
  void run() override;

 private:
  void appendFrame(FrameBatchBuilder& builder, std::uint64_t number, std::string& scratch) const;

  const double rate_;         // frames per second
  const std::size_t size_;    // payload bytes
  const std::uint64_t count_; // 0: endless
};

}  // namespace streamrelay
