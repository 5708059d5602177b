// SPDX-License-Identifier: Apache-2.0
#include "failover.hpp"

#include <algorithm>
#include <random>

#include "keys.hpp"
#include "schema.hpp"
#include "secret_mask.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

int doubled(int delayMs, int maxMs) { return static_cast<int>(std::min<long long>(2LL * delayMs, maxMs)); }

int msBetween(Failover::Clock::time_point from, Failover::Clock::time_point to) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, kIntMax));
}

}  // namespace

FailoverPolicy FailoverPolicy::from(const Settings& source) {
  FailoverPolicy p;
  const Settings& reconnect = source.group("reconnect");
  p.initialDelayMs = static_cast<int>(reconnect.integer("initial_delay_ms"));
  p.maxDelayMs = static_cast<int>(reconnect.integer("max_delay_ms"));
  const Settings& failover = source.group("failover");
  const std::string& mode = failover.string("return_to_primary");
  p.returnToPrimary = mode == "probe" ? Return::Probe : mode == "when_quiet" ? Return::WhenQuiet : Return::OnDisconnect;
  p.quietMs = static_cast<int>(failover.integer("quiet_ms"));
  return p;
}

Failover::Failover(std::vector<std::string> addresses, const FailoverPolicy& policy, SourceCounters& counters, Now now,
                   Random random)
    : addresses_(std::move(addresses)),
      policy_(policy),
      counters_(counters),
      now_(now ? std::move(now) : Now(&Clock::now)),
      random_(std::move(random)),
      delayMs_(policy.initialDelayMs),
      returnDelayMs_(policy.initialDelayMs) {
  if (!random_) {
    random_ = [engine = std::mt19937(std::random_device{}())](int lo, int hi) mutable {
      return std::uniform_int_distribution<int>(lo, hi)(engine);
    };
  }
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  for (const std::string& address : addresses_) shown_.push_back(maskUrlSecrets(address));
  for (const std::string& address : shown_) counters_.endpoints.push_back({address, 0});
}

std::string Failover::describe(std::size_t endpoint) const {
  if (addresses_.size() == 1) return shown_[endpoint];
  return shown_[endpoint] + " (endpoint " + std::to_string(endpoint + 1) + " of " +
         std::to_string(addresses_.size()) + ")";
}

bool Failover::failed(std::size_t endpoint) {
  countFailure(endpoint);
  if (endpoint == 0 && returning_) returnFailed();
  returning_ = false;
  next_ = endpoint + 1 < addresses_.size() ? endpoint + 1 : 0;
  return next_ != 0;
}

void Failover::connected(std::size_t endpoint) {
  returning_ = false;
  if (endpoint == 0) returnDelayMs_ = policy_.initialDelayMs;
  returnDue_ = now_() + std::chrono::milliseconds(returnDelayMs_);
  setLive(endpoint);
}

void Failover::ended(bool planned, bool delivered) {
  if (live_ != SIZE_MAX && !planned) countFailure(live_);
  if (delivered) delayMs_ = policy_.initialDelayMs;
  next_ = 0;
  setLive(SIZE_MAX);
}

int Failover::nextWaitMs() {
  const int wait = random_(delayMs_ / 2, delayMs_);
  delayMs_ = doubled(delayMs_, policy_.maxDelayMs);
  return wait;
}

Failover::Action Failover::primaryAction(Clock::time_point lastByte) const {
  if (live_ == SIZE_MAX || live_ == 0) return Action::Stay;
  const Clock::time_point now = now_();
  switch (policy_.returnToPrimary) {
    case FailoverPolicy::Return::OnDisconnect:
      return Action::Stay;
    case FailoverPolicy::Return::Probe:
      return now >= returnDue_ ? Action::Probe : Action::Stay;
    case FailoverPolicy::Return::WhenQuiet:
      return now >= returnDue_ && now - lastByte >= std::chrono::milliseconds(policy_.quietMs)
                 ? Action::CloseAndReturn
                 : Action::Stay;
  }
  return Action::Stay;
}

int Failover::msUntilAction(Clock::time_point lastByte) const {
  if (live_ == SIZE_MAX || live_ == 0) return -1;
  const Clock::time_point now = now_();
  switch (policy_.returnToPrimary) {
    case FailoverPolicy::Return::OnDisconnect:
      return -1;
    case FailoverPolicy::Return::Probe:
      return msBetween(now, returnDue_);
    case FailoverPolicy::Return::WhenQuiet:
      return msBetween(now, std::max(returnDue_, lastByte + std::chrono::milliseconds(policy_.quietMs)));
  }
  return -1;
}

void Failover::probeFailed() {
  countFailure(0);
  returnFailed();
  returnDue_ = now_() + std::chrono::milliseconds(returnDelayMs_);
}

void Failover::returnFailed() { returnDelayMs_ = doubled(returnDelayMs_, policy_.maxDelayMs); }

void Failover::countFailure(std::size_t endpoint) {
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  ++counters_.endpoints[endpoint].failures;
}

void Failover::setLive(std::size_t endpoint) {
  live_ = endpoint;
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  counters_.liveEndpoint = endpoint == SIZE_MAX ? std::string() : shown_[endpoint];
}

const Schema& failoverSchema() {
  static const Schema schema{
      "failover",
      {key("return_to_primary")
           .def("on_disconnect")
           .oneOf({"on_disconnect", "when_quiet", "probe"})
           .doc("when a secondary is left for the primary: on_disconnect (when its connection ends; never two "
                "connections), when_quiet (also after quiet_ms without data, closing it first), probe (connect "
                "the primary while the secondary streams: two connections for a moment)"),
       key("quiet_ms", KeyKind::Int).def("1000").range(1, kIntMax)
           .doc("when_quiet: how long the secondary must have sent nothing")},
      {},
      [](const Settings& f, const YamlMap& m) {
        // (--check-config prints the default quiet_ms beside any mode)
        if (f.integer("quiet_ms") != 1000 && f.string("return_to_primary") != "when_quiet")
          m.fail("quiet_ms", "applies only with return_to_primary: when_quiet");
      }};
  return schema;
}

}  // namespace streamrelay
