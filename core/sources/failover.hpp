// SPDX-License-Identifier: Apache-2.0
#pragma once
// Failover: the order in which a connecting source (tcp, http, websocket)
// tries its endpoints, and when it probes the primary while a secondary is
// live. The first endpoint is the primary. A failed try moves to the next
// endpoint at once; only a round in which none answered waits for the
// backoff, and every round starts at the primary. While a secondary is live
// the primary is probed after the initial delay, then twice as long after
// each failed probe, up to the maximum: never faster than the backoff.
// Failures and the live endpoint are kept in the source's counters (/stats).
//
// Used by the source's thread only (the counters take their own lock).

#include <chrono>
#include <random>
#include <cstddef>
#include <string>
#include <vector>

#include "upstream_source.hpp"

namespace streamrelay {
class Settings;
class YamlMap;
}  // namespace streamrelay

namespace streamrelay {

// How one stream of a connecting source ended (http, websocket).
struct StreamOutcome {
  std::string error;         // "" when stopping
  std::size_t endpoint = 0;  // the endpoint last streamed from (or tried)
  bool streamed = false;     // the stream began (a 2xx response, an established connection)
  bool delivered = false;    // frames were published
};

class Failover {
 public:
  using Clock = std::chrono::steady_clock;

  // `reconnect`: the source's reconnect keys (initial_delay_ms, max_delay_ms).
  Failover(std::vector<std::string> addresses, const Settings& reconnect, SourceCounters& counters);

  std::size_t size() const { return addresses_.size(); }
  const std::string& address(std::size_t endpoint) const { return addresses_[endpoint]; }
  // "ADDRESS" alone, or "ADDRESS (endpoint 2 of 3)": how log lines name it.
  std::string describe(std::size_t endpoint) const;

  // The endpoint to try now.
  std::size_t next() const { return next_; }
  // A try of `endpoint` failed: true if the next one is to be tried at once;
  // false if the round is over (wait the backoff; the next round starts at the primary).
  bool failed(std::size_t endpoint);
  // `endpoint` is live now.
  void connected(std::size_t endpoint, Clock::time_point now = Clock::now());
  // The live connection ended: counted as a failure unless `stopping`; the
  // next round starts at the primary.
  void lost(bool stopping);

  // While a secondary is live: whether the primary is due for a probe, and in
  // how many ms (-1: no probe, the primary is live or there is none).
  bool probeDue(Clock::time_point now = Clock::now()) const;
  int msUntilProbe(Clock::time_point now = Clock::now()) const;
  // A probe of the primary failed: the next one waits twice as long.
  void probeFailed(Clock::time_point now = Clock::now());

  // The reconnect backoff: a wait drawn from the upper half of a delay that
  // doubles after each wait up to the maximum (full jitter keeps many relays
  // from reconnecting in step), back to the initial delay once a connection
  // delivered frames (deliveredFrames()).
  int nextWaitMs();
  void deliveredFrames() { delayMs_ = initialDelayMs_; }

  // After a stream ended: records it (a lost stream, a failed try) and says
  // what the source does next.
  enum class Next { Stop, TryNext, Wait };
  Next ended(const StreamOutcome& outcome, bool stopping);

 private:
  void setLive(const std::string& address);

  const std::vector<std::string> addresses_;
  const int initialDelayMs_;
  const int maxDelayMs_;
  SourceCounters& counters_;
  std::size_t next_ = 0;
  std::size_t live_ = SIZE_MAX;
  int probeDelayMs_;
  Clock::time_point nextProbe_;
  int delayMs_;
  std::mt19937 random_{std::random_device{}()};
};

// The config check of a URL source (http, websocket): `url` or `endpoints`,
// not both, and every address with one of the `schemes` ("http://", ...).
void checkUrlOrEndpoints(const Settings& s, const YamlMap& m, const std::vector<std::string>& schemes);

}  // namespace streamrelay
