// SPDX-License-Identifier: Apache-2.0
#pragma once
// StreamrelaySource: follows another relay's `streamrelay` listener (one of
// `endpoints`, in failover order): says the hello (token, the one input it
// wants, and where to resume), reads the answer and then the headered frames
// (docs/fleet.md). The loop — reconnects, failover, idle timeout, TLS — is
// ConnectingSource's; the hello and the answer are client_hello.hpp's, shared
// with the client library; the frame header is wire.hpp's.
//
// mirror: true (the default): the stream keeps the upstream's epoch, seq and
// receive times (Bus::publishAt), so a frame is the same (epoch, seq) on every
// relay of a tree. After a lost link it resumes after the last seq it
// published; a jump it is given is a gap: logged once, counted (MirrorStatus),
// and passed down (the bus replays no resume across it). mirror: false: the
// frames are numbered by this relay, as any source's.
//
// The source thread runs everything but the constructor and prepare().

#include <string>
#include <vector>

#include "connecting_source.hpp"
#include "host_port.hpp"
#include "mirror_position.hpp"
#include "streamrelay/client_hello.hpp"

namespace streamrelay {

class StreamrelaySource : public ConnectingSource {
 public:
  StreamrelaySource(const SourceConfig& config, Bus& bus);
  ~StreamrelaySource() override;

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;

 private:
  friend class StreamrelayConnection;

  const std::vector<HostPort> endpoints_;
  const client::HelloRequest request_;
  const bool mirror_;
  const std::size_t maxFrameBytes_;
  MirrorPosition position_;  // in the upstream's numbering
};

}  // namespace streamrelay
