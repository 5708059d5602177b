// SPDX-License-Identifier: Apache-2.0
#include "failover.hpp"

#include <algorithm>

#include "schema.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

Failover::Failover(std::vector<std::string> addresses, const Settings& reconnect, SourceCounters& counters)
    : addresses_(std::move(addresses)),
      initialDelayMs_(static_cast<int>(reconnect.integer("initial_delay_ms"))),
      maxDelayMs_(static_cast<int>(reconnect.integer("max_delay_ms"))),
      counters_(counters),
      probeDelayMs_(initialDelayMs_),
      delayMs_(initialDelayMs_) {
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  for (const std::string& address : addresses_) counters_.endpoints.push_back({address, 0});
}

std::string Failover::describe(std::size_t endpoint) const {
  if (addresses_.size() == 1) return addresses_[endpoint];
  return addresses_[endpoint] + " (endpoint " + std::to_string(endpoint + 1) + " of " +
         std::to_string(addresses_.size()) + ")";
}

bool Failover::failed(std::size_t endpoint) {
  {
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
    ++counters_.endpoints[endpoint].failures;
  }
  next_ = endpoint + 1 < addresses_.size() ? endpoint + 1 : 0;
  return next_ != 0;
}

void Failover::connected(std::size_t endpoint, Clock::time_point now) {
  live_ = endpoint;
  probeDelayMs_ = initialDelayMs_;
  nextProbe_ = now + std::chrono::milliseconds(probeDelayMs_);
  setLive(addresses_[endpoint]);
}

void Failover::lost(bool stopping) {
  if (live_ != SIZE_MAX && !stopping) {
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
    ++counters_.endpoints[live_].failures;
  }
  live_ = SIZE_MAX;
  next_ = 0;
  setLive("");
}

bool Failover::probeDue(Clock::time_point now) const { return live_ != SIZE_MAX && live_ != 0 && now >= nextProbe_; }

int Failover::msUntilProbe(Clock::time_point now) const {
  if (live_ == SIZE_MAX || live_ == 0) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(nextProbe_ - now).count();
  return static_cast<int>(std::max<long long>(0, left));
}

void Failover::probeFailed(Clock::time_point now) {
  probeDelayMs_ = static_cast<int>(std::min<long long>(2LL * probeDelayMs_, maxDelayMs_));
  nextProbe_ = now + std::chrono::milliseconds(probeDelayMs_);
}

int Failover::nextWaitMs() {
  const int wait = std::uniform_int_distribution<int>(delayMs_ / 2, delayMs_)(random_);
  delayMs_ = static_cast<int>(std::min<long long>(2LL * delayMs_, maxDelayMs_));
  return wait;
}

Failover::Next Failover::ended(const StreamOutcome& outcome, bool stopping) {
  if (outcome.streamed) lost(stopping);
  if (stopping) return Next::Stop;
  if (outcome.delivered) deliveredFrames();
  if (!outcome.streamed && failed(outcome.endpoint)) return Next::TryNext;
  return Next::Wait;
}

void Failover::setLive(const std::string& address) {
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  counters_.liveEndpoint = address;
}

void checkUrlOrEndpoints(const Settings& s, const YamlMap& m, const std::vector<std::string>& schemes) {
  if (s.string("url").empty() == s.strings("endpoints").empty())
    m.failHere(s.string("url").empty() ? "missing required key 'url' (or endpoints)" : "use either url or endpoints");
  std::vector<std::string> urls = s.strings("endpoints");
  if (urls.empty()) urls.push_back(s.string("url"));
  for (const std::string& url : urls) {
    const bool known = std::any_of(schemes.begin(), schemes.end(),
                                   [&](const std::string& scheme) { return url.rfind(scheme, 0) == 0; });
    if (!known)
      m.fail(s.string("url").empty() ? "endpoints" : "url",
             "must start with " + schemes.at(0) + " or " + schemes.at(1) + ", got '" + url + "'");
  }
}

}  // namespace streamrelay
