// SPDX-License-Identifier: Apache-2.0
#pragma once
// RedisSource: reads a Redis stream (`key`) with XREAD BLOCK, in a loop,
// over the relay's own bounded RESP client (core/lease/resp_client.hpp: the
// relay does not link hiredis). What another relay's redis sink wrote
// (fields seq, epoch, received_ns, payload) is mirrored as a `streamrelay`
// source in mirror mode mirrors: the stream keeps the writer's epoch, seq
// and receive times (Bus::publishAt); a jump in seq is a gap (logged once,
// counted, passed down), another epoch is counted. An entry without those
// marks is numbered here, as any source's frame (its `payload` field, or
// all its fields as a JSON object).
//
// The last entry id read is the batch's provider position: a stream log
// keeps it with the frame, and a restarted relay goes on with XREAD after
// it (resumeProviderAfter). After a lost connection the source reconnects
// (ConnectingSource: backoff, failover between `endpoints`) and goes on
// after the last id it read.
//
// `channel` instead of `key`: SUBSCRIBE; each message is a frame numbered
// here, and nothing resumes (pub/sub keeps nothing).
//
// The source thread runs everything but the constructor and prepare().

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "connecting_source.hpp"
#include "host_port.hpp"
#include "mirror_position.hpp"

namespace streamrelay {

class RedisSource : public ConnectingSource {
 public:
  RedisSource(const SourceConfig& config, Bus& bus);
  ~RedisSource() override;
  // Before start(): goes on after the entry id a stream's log kept.
  void resumeProviderAfter(const std::string& position) override;

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;

 private:
  friend class RedisConnection;
  friend class RedisChannelConnection;
  std::unique_ptr<ProviderConnection> subscribe(std::size_t endpoint, Clock::time_point deadline, OpenFailure& failure);

  const std::vector<HostPort> endpoints_;
  const std::string key_;
  const std::string channel_;  // pub/sub instead of key ("": none)
  const std::string password_;
  const std::size_t count_;        // entries per XREAD
  const std::size_t maxFrameBytes_;  // the largest field value taken
  MirrorPosition position_;        // in the writer's numbering
  std::string lastId_;             // the source thread's: "$" until resolved, then an entry id
};

// An entry id as XREAD takes it after: "MS-SEQ" or "MS" (digits), or "0". False if not one.
bool isRedisEntryId(std::string_view id);
// Entry ids compared as Redis orders them (both valid ids).
bool redisIdAfter(std::string_view a, std::string_view b);

}  // namespace streamrelay
