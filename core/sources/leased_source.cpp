// SPDX-License-Identifier: Apache-2.0
#include "leased_source.hpp"

#include <Poco/Logger.h>
#include <poll.h>
#include <yaml-cpp/yaml.h>

#include <mutex>

#include "keys.hpp"
#include "redis_url.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }

LeaseOptions leaseOptionsOf(const Settings& s) {
  const Settings& lease = s.group("lease");
  LeaseOptions options;
  parseRedisUrl(lease.string("url"), options.host, options.port);  // checked with the config
  options.key = lease.string("key");
  options.ttlMs = static_cast<int>(lease.integer("ttl_ms"));
  options.password = lease.string("password");
  options.token = newLeaseToken();
  return options;
}

// A streamrelay source in mirror mode from `follow`, read as the config's are.
SourceConfig followConfigOf(const SourceConfig& config) {
  const Settings& follow = config.settings.group("follow");
  YAML::Node node;
  node["type"] = "streamrelay";
  for (const std::string& e : follow.strings("endpoints")) node["endpoints"].push_back(e);
  for (const std::string& i : follow.strings("inputs")) node["inputs"].push_back(i);
  node["token"] = follow.string("token");
  node["mirror"] = true;
  YAML::Node tls(YAML::NodeType::Map);
  for (const Settings::Entry& e : follow.group("tls").entries()) {
    if (!e.value.given) continue;
    if (e.spec->kind == KeyKind::Bool) tls[e.spec->name] = e.value.boolean;
    else tls[e.spec->name] = e.value.text;
  }
  node["tls"] = tls;
  // A follower reconnects soon: the relay it follows may be the next holder's.
  const int ttlMs = static_cast<int>(config.settings.group("lease").integer("ttl_ms"));
  node["reconnect"]["initial_delay_ms"] = 50;
  node["reconnect"]["max_delay_ms"] = std::max(100, ttlMs);
  SourceConfig out;
  out.name = config.name;
  out.framing = config.framing;
  out.settings = readSettings(YamlMap(node, "sources." + config.name + ".follow", "(follow)"), sourceSchema());
  out.sharedCounters = config.sharedCounters;
  return out;
}

std::int64_t unixNowMs() { return unixNowNs() / 1000000; }

}  // namespace

bool LeasedSource::wanted(const SourceConfig& config) {
  return config.settings.has("lease") && !config.settings.group("lease").string("url").empty();
}

LeasedSource::LeasedSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus), providerConfig_(config), lease_(leaseOptionsOf(config.settings)) {
  // The provider and the follower count into this source's counters, which outlive them.
  providerConfig_.sharedCounters = std::shared_ptr<SourceCounters>(std::shared_ptr<void>(), &counters_);
  followConfig_ = followConfigOf(providerConfig_);
  counters_.leaseKey = lease_.options().key;
  providerSeq_ = bus.lastSeq();
}

LeasedSource::~LeasedSource() { stop(); }

std::unique_ptr<UpstreamSource> LeasedSource::make(const SourceConfig& config) {
  {
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);  // the new one lists its own
    counters_.endpoints.clear();
    counters_.liveEndpoint.clear();
  }
  for (const SourceType& type : sourceTypes())
    if (type.spec.name == config.type()) return type.create(config, bus_);
  throw std::logic_error("source type '" + config.type() + "' is not registered");
}

void LeasedSource::prepare() {
  make(providerConfig_)->prepare();
  make(followConfig_)->prepare();
}

void LeasedSource::run() {
  const auto retry = std::chrono::milliseconds(std::max(10, lease_.options().ttlMs / 4));
  std::string lastWhy;
  while (!stop_.requested()) {
    std::string why;
    if (lease_.tryAcquire(stop_.fd(), why)) {
      lastWhy.clear();
      holdProvider();
      continue;
    }
    if (stop_.requested()) break;
    if (!why.empty() && why != lastWhy)
      logger().warning("%s: cannot ask Redis for the lease %s: %s; following meanwhile", label(),
                       lease_.options().key, why);
    lastWhy = why;
    follow();
    if (stop_.waitFor(retry)) break;
  }
  stopFollowing();
  logger().information("%s: stopped", label());
}

void LeasedSource::follow() {
  if (follower_) return;
  try {
    follower_ = make(followConfig_);
    follower_->prepare();
  } catch (const std::runtime_error& e) {
    logger().error("%s: cannot follow: %s", label(), std::string(e.what()));
    follower_.reset();
    return;
  }
  follower_->start();
}

void LeasedSource::stopFollowing() {
  if (!follower_) return;
  follower_->stop(stopReason());
  follower_.reset();
}

void LeasedSource::holdProvider() {
  stopFollowing();  // joined: every frame it took is published
  counters_.leaseAcquisitions.fetch_add(1);
  counters_.leaseSinceUnixMs = unixNowMs();
  counters_.leaseHolding = true;
  // The provider's position after the stream's last frame: the one the
  // followed relay sent after it (a control frame), or the provider's own.
  std::string position = bus_.providerPositionAfter(bus_.lastSeq());
  if (position.empty() && bus_.lastSeq() == providerSeq_) position = logPosition_;
  logger().information("%s: took the lease %s: opening the provider, going on in epoch %s after seq %s%s", label(),
                       lease_.options().key, std::to_string(bus_.stream().epoch), std::to_string(bus_.lastSeq()),
                       position.empty() ? std::string(" (the provider starts where it starts: no position of it here)")
                                        : " (resuming the provider after " + position + ")");
  std::unique_ptr<UpstreamSource> provider;
  try {
    provider = make(providerConfig_);
    provider->prepare();
    if (!position.empty()) provider->resumeProviderAfter(position);
  } catch (const std::runtime_error& e) {
    logger().error("%s: cannot open the provider: %s; giving the lease back", label(), std::string(e.what()));
    lease_.release();
    counters_.leaseHolding = false;
    counters_.leaseSinceUnixMs = 0;
    stop_.waitFor(std::chrono::milliseconds(lease_.options().ttlMs));
    return;
  }
  StopSignal lost;
  std::mutex lostMutex;
  std::string lostWhy;
  UpstreamSource& held = *provider;
  lease_.hold([&](const std::string& why) {
    held.requestStop(StopReason::Shutdown, std::chrono::steady_clock::now());  // closed at once
    {
      std::lock_guard<std::mutex> lock(lostMutex);
      lostWhy = why;
    }
    lost.request();
  });
  provider->start();
  pollfd fds[2] = {{stop_.fd(), POLLIN, 0}, {lost.fd(), POLLIN, 0}};
  while (!stop_.requested() && !lost.requested()) ::poll(fds, 2, -1);
  if (lost.requested()) {
    provider->stop();
    lease_.release();  // joins the renewal thread (the lease is no longer held: nothing is deleted)
    counters_.leaseLosses.fetch_add(1);
    std::lock_guard<std::mutex> lock(lostMutex);
    logger().warning("%s: lost the lease %s: %s; the provider connection is closed, following", label(),
                     lease_.options().key, lostWhy);
  } else {
    provider->requestStop(stopReason(), closeBy());
    provider->stop(stopReason());  // closed before the lease is given back: never two holders' connections at once
    const std::string why = lease_.release();
    if (why.empty()) logger().information("%s: released the lease %s", label(), lease_.options().key);
    else logger().warning("%s: the lease %s was not released (%s): it expires in ttl_ms", label(),
                          lease_.options().key, why);
  }
  providerSeq_ = bus_.lastSeq();
  counters_.leaseHolding = false;
  counters_.leaseSinceUnixMs = 0;
}

}  // namespace streamrelay
