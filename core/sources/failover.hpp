// SPDX-License-Identifier: Apache-2.0
#pragma once
// Failover: the policy of a connecting source (tcp, http, websocket) — which
// endpoint to try, how long to wait, and when to go back to the primary. It
// decides; ConnectingSource acts. No sockets and no clock of its own (both
// the clock and the jitter's random source are injected), so that
// tests/unit/failover_test.cpp can drive it step by step.
//
// - Order: the first endpoint is the primary. A failed try moves to the next
//   endpoint at once; only a round in which none answered waits for the
//   backoff, and every round (and every try after a lost connection) starts
//   at the primary.
// - Backoff: each wait is drawn from the upper half of a delay that doubles
//   after every wait up to reconnect.max_delay_ms (jitter keeps many relays
//   from reconnecting in step); back to initial_delay_ms once a connection
//   delivered frames.
// - Going back to the primary while a secondary is live
//   (failover.return_to_primary):
//     on_disconnect (default): never two provider connections at once; the
//       primary is tried first when the secondary's connection ends;
//     when_quiet: as on_disconnect, and the secondary is also closed (cleanly)
//       to try the primary when it has sent nothing for quiet_ms, once a
//       return is due (see below); the secondary is closed first, so there
//       is still never a second connection;
//     probe: the primary is connected while the secondary still streams, and
//       taken as soon as it answers (two connections for that moment).
//   A return is due reconnect.initial_delay_ms after the secondary connected;
//   each return that failed (the primary did not answer) doubles that, up to
//   max_delay_ms, and a live primary resets it.
// - Counters (SourceCounters, shown by /stats): every endpoint's failures —
//   tries that failed, and connections that ended unplanned; a planned close
//   (the provider's own, or ours) is not a failure — and the live endpoint.
//
// Used by the source's thread only (the counters take their own lock).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "upstream_source.hpp"

namespace streamrelay {
class Settings;
class YamlMap;
struct Schema;
}  // namespace streamrelay

namespace streamrelay {

struct FailoverPolicy {
  enum class Return { OnDisconnect, WhenQuiet, Probe };
  Return returnToPrimary = Return::OnDisconnect;
  int quietMs = 1000;          // when_quiet: the secondary sent nothing for this long
  int initialDelayMs = 100;    // reconnect.initial_delay_ms
  int maxDelayMs = 30000;      // reconnect.max_delay_ms

  // From a connecting source's settings (its `reconnect` and `failover` groups).
  static FailoverPolicy from(const Settings& source);
};

class Failover {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;
  using Random = std::function<int(int lo, int hi)>;  // uniform in [lo, hi]

  // `now` and `random` default to the steady clock and a seeded generator.
  Failover(std::vector<std::string> addresses, const FailoverPolicy& policy, SourceCounters& counters,
           Now now = {}, Random random = {});

  std::size_t size() const { return addresses_.size(); }
  // Where to connect: the address as configured, secrets included.
  const std::string& address(std::size_t endpoint) const { return addresses_[endpoint]; }
  // How logs, /stats and /metrics show it: a URL's userinfo and secret query
  // values as "(set)" (secret_mask.hpp).
  const std::string& shown(std::size_t endpoint) const { return shown_[endpoint]; }
  // "ADDRESS" alone, or "ADDRESS (endpoint 2 of 3)", as shown(): how log lines name it.
  std::string describe(std::size_t endpoint) const;
  const FailoverPolicy& policy() const { return policy_; }

  // The endpoint to try now.
  std::size_t next() const { return next_; }
  // A try of `endpoint` failed (counted): true if next() is to be tried at
  // once; false if the round is over (wait nextWaitMs(); the next round
  // starts at the primary).
  bool failed(std::size_t endpoint);
  // `endpoint` is live now.
  void connected(std::size_t endpoint);
  // The live connection ended. `planned`: a close the provider or the relay
  // meant (not a failure). `delivered`: it published frames (the backoff
  // starts again from the initial delay). next() is the primary.
  void ended(bool planned, bool delivered);
  // The wait before the next round (see the backoff above).
  int nextWaitMs();

  // While a secondary is live: what to do about the primary now, given when
  // the secondary last sent a byte.
  enum class Action { Stay, CloseAndReturn, Probe };
  Action primaryAction(Clock::time_point lastByte) const;
  // How long until primaryAction() may change, in ms (-1: never).
  int msUntilAction(Clock::time_point lastByte) const;
  // The secondary is being closed to go back to the primary (CloseAndReturn):
  // ended() is called next as planned; if the primary then fails, the next
  // return waits twice as long.
  void returning() { returning_ = true; }
  // A probe of the primary failed (counted): the next one waits twice as long.
  void probeFailed();

  // The endpoint connected now, SIZE_MAX if none.
  std::size_t live() const { return live_; }

 private:
  void countFailure(std::size_t endpoint);
  void setLive(std::size_t endpoint);
  void returnFailed();

  const std::vector<std::string> addresses_;
  std::vector<std::string> shown_;  // index-aligned with addresses_
  const FailoverPolicy policy_;
  SourceCounters& counters_;
  Now now_;
  Random random_;
  std::size_t next_ = 0;
  std::size_t live_ = SIZE_MAX;
  int delayMs_;                     // the backoff's current delay
  int returnDelayMs_;               // how long after a secondary connected a return is due
  Clock::time_point returnDue_{};   // while a secondary is live
  bool returning_ = false;          // the secondary was closed to try the primary
};

// The `failover` group of a source with endpoints.
const Schema& failoverSchema();

}  // namespace streamrelay
