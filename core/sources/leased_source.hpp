// SPDX-License-Identifier: Apache-2.0
#pragma once
// LeasedSource: a source with `lease:` (docs/fleet.md "Standby for the
// provider connection"). Only the relay that holds the Redis lease
// (redis_lease.hpp) connects to the provider; the others follow it through
// `follow:` (a streamrelay source in mirror mode), so every relay's stream has
// the same (epoch, seq). When the lease is free a follower takes it, stops
// following and opens the provider: its frames go on in the followed epoch at
// the last seq + 1 (Bus::publish continues where publishAt left it). A lease
// lost (a renewal refused, failed or late) stops the provider connection at
// once, from the renewal thread; a clean stop releases the lease.
//
// The source runs its provider (a source of the configured type) and its
// follower as sources of their own, one at a time, created anew for each turn;
// they count into this source's counters. Its thread tries the lease every
// ttl/4 while it follows.

#include <memory>
#include <string>

#include "redis_lease.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class LeasedSource : public UpstreamSource {
 public:
  LeasedSource(const SourceConfig& config, Bus& bus);
  ~LeasedSource() override;
  // Builds a provider and a follower once, so that a bad TLS file stops the start.
  void prepare() override;
  // The position the stream's log kept: used for the first provider turn if
  // nothing was followed before it.
  void resumeProviderAfter(const std::string& position) override { logPosition_ = position; }

  // Whether `config` asks for a lease (a source type with the keys, and lease.url set).
  static bool wanted(const SourceConfig& config);

 private:
  void run() override;
  void follow();
  void stopFollowing();
  // Holds the provider until the lease is lost or the source stops.
  void holdProvider();
  std::unique_ptr<UpstreamSource> make(const SourceConfig& config);

  SourceConfig providerConfig_;  // this source's, without the lease
  SourceConfig followConfig_;    // a streamrelay source in mirror mode
  RedisLease lease_;
  std::unique_ptr<UpstreamSource> follower_;
  std::string logPosition_;
  std::uint64_t providerSeq_ = 0;  // the stream's last seq when the provider last published (or at start)
};

}  // namespace streamrelay
