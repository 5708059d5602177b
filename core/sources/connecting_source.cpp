// SPDX-License-Identifier: Apache-2.0
#include "connecting_source.hpp"

#include <Poco/Logger.h>

#include <algorithm>
#include <stdexcept>

#include "client_socket.hpp"
#include "keys.hpp"
#include "lease_keys.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }

// A provider that takes longer than this to connect, shake hands (TLS, HTTP,
// WebSocket) and take the greeting is a failed try.
constexpr int kOpenTimeoutMs = 10000;
// How long a close may take to say goodbye: one the relay chose (a stop, a
// restart, a return to the primary), and one after a failure, when the
// provider may well be gone.
constexpr int kPlannedCloseMs = 1000;
constexpr int kFailedCloseMs = 200;

bool usesTls(const std::vector<std::string>& addresses) {
  return std::any_of(addresses.begin(), addresses.end(), [](const std::string& a) {
    return a.rfind("https://", 0) == 0 || a.rfind("wss://", 0) == 0;
  });
}

}  // namespace

ConnectingSource::ConnectingSource(const SourceConfig& config, Bus& bus, std::vector<std::string> addresses,
                                   std::unique_ptr<FrameDecoder> decoder)
    : UpstreamSource(config, bus),
      failover_(addresses, FailoverPolicy::from(config.settings), counters_),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))),
      tls_(TlsOptions::from(config.settings.group("tls"), usesTls(addresses))),
      reader_(decoder ? std::move(decoder) : FrameDecoder::create(config.framing), bus, counters_) {}

ConnectingSource::~ConnectingSource() { stop(); }

void ConnectingSource::prepare() {
  if (!tls_.verify)
    logger().warning("%s: tls.verify is false: the provider's certificate is NOT checked; anyone on the path "
                     "can read and change the stream",
                     label());
  if (!tls_.enabled) return;
  try {
    tlsContext_ = std::make_unique<TlsContext>(tls_);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(label() + ": " + e.what());
  }
}

std::unique_ptr<ProviderConnection> ConnectingSource::openWithin(std::size_t endpoint, OpenFailure& failure) {
  return open(endpoint, Clock::now() + std::chrono::milliseconds(kOpenTimeoutMs), failure);
}

void ConnectingSource::run() {
  std::unique_ptr<ProviderConnection> probed;  // the primary, connected by a probe
  while (!stop_.requested()) {
    const std::size_t endpoint = probed ? 0 : failover_.next();
    OpenFailure failure;
    std::unique_ptr<ProviderConnection> connection = probed ? std::move(probed) : openWithin(endpoint, failure);
    if (!connection && stop_.requested()) break;
    const int waitMs = connection ? streamFrom(endpoint, *connection, probed) : afterFailedTry(endpoint, failure);
    if (waitMs == kStop || (waitMs > 0 && stop_.waitFor(std::chrono::milliseconds(waitMs)))) break;
  }
  if (probed) probed->close(goodbyeFor(StreamEnd::stopped()), closeDeadline(StreamEnd::stopped()));
  logger().information("%s %s: stopped", label(), failover_.shown(0));
}

int ConnectingSource::afterFailedTry(std::size_t endpoint, const OpenFailure& failure) {
  const bool honourRetryAfter = failure.retryAfterMs >= 0;
  if (failover_.failed(endpoint) && !honourRetryAfter) {  // the next one at once: only a failed round waits
    logger().warning("%s %s: %s; trying %s", label(), failover_.describe(endpoint), failure.why,
                     failover_.describe(failover_.next()));
    return 0;
  }
  const int wait = honourRetryAfter ? failure.retryAfterMs : failover_.nextWaitMs();
  logger().warning("%s %s: %s; %s in %d ms%s", label(), failover_.describe(endpoint), failure.why,
                   std::string(retryVerb()), wait, std::string(honourRetryAfter ? " (Retry-After)" : ""));
  return wait;
}

int ConnectingSource::streamFrom(std::size_t endpoint, ProviderConnection& connection,
                                 std::unique_ptr<ProviderConnection>& probed) {
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  counters_.connected = true;
  failover_.connected(endpoint);
  const std::string how = connection.describe();
  logger().information("%s %s: connected%s", label(), failover_.describe(endpoint),
                       how.empty() ? std::string() : " (" + how + ")");
  const std::uint64_t framesBefore = bus_.framesPublished();
  const StreamEnd end = stream(connection, probed);
  counters_.connected = false;
  connection.close(goodbyeFor(end), closeDeadline(end));
  reader_.reset();  // a frame cut by the end of the connection is never published
  const bool delivered = bus_.framesPublished() > framesBefore;
  using How = StreamEnd::How;
  failover_.ended(end.how != How::Failed && (end.how != How::Orderly || delivered), delivered);
  if (end.how == How::Stopped) return kStop;
  if (end.how == How::Return) return 0;  // to the primary at once
  const int wait = failover_.nextWaitMs();
  logger().warning("%s %s: %s; %s in %d ms", label(), failover_.describe(endpoint), end.why, std::string(retryVerb()),
                   wait);
  return wait;
}

StreamEnd ConnectingSource::stream(ProviderConnection& connection, std::unique_ptr<ProviderConnection>& probed) {
  Clock::time_point lastByte = Clock::now();
  std::uint64_t bytes = counters_.bytesRead.load(std::memory_order_relaxed);
  for (;;) {
    int timeout = -1;
    if (idleTimeoutMs_ > 0) {
      const auto idleLeft = std::chrono::duration_cast<std::chrono::milliseconds>(
          lastByte + std::chrono::milliseconds(idleTimeoutMs_) - Clock::now()).count();
      if (idleLeft <= 0) return StreamEnd::failed("no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms");
      timeout = static_cast<int>(idleLeft);
    }
    if (std::optional<StreamEnd> end = actOnPrimary(lastByte, probed)) return *end;
    if (const int actionMs = failover_.msUntilAction(lastByte); actionMs >= 0)
      timeout = timeout < 0 ? actionMs : std::min(timeout, actionMs);
    if (std::optional<StreamEnd> end = connection.pump(timeout, stop_.fd())) return *end;
    if (const std::uint64_t now = counters_.bytesRead.load(std::memory_order_relaxed); now != bytes) {
      bytes = now;
      lastByte = Clock::now();
    }
  }
}

// While a secondary is live: closes it for the primary when quiet, or probes
// the primary and takes it when it answers, as the policy says.
std::optional<StreamEnd> ConnectingSource::actOnPrimary(Clock::time_point lastByte,
                                                        std::unique_ptr<ProviderConnection>& probed) {
  const std::size_t live = failover_.live();
  switch (failover_.primaryAction(lastByte)) {
    case Failover::Action::Stay:
      return std::nullopt;
    case Failover::Action::CloseAndReturn:
      logger().information("%s %s: nothing for quiet_ms %d ms: closing it to return to the primary %s", label(),
                           failover_.describe(live), failover_.policy().quietMs, failover_.shown(0));
      failover_.returning();
      return StreamEnd{StreamEnd::How::Return, "returning to the primary"};
    case Failover::Action::Probe: {
      OpenFailure failure;
      probed = openWithin(0, failure);
      if (stop_.requested()) return StreamEnd::stopped();
      if (probed) {
        logger().warning("%s %s: the primary %s answers again: switching back", label(), failover_.describe(live),
                         failover_.shown(0));
        return StreamEnd{StreamEnd::How::Return, "switching back to the primary"};
      }
      failover_.probeFailed();
      logger().debug("%s: the primary %s does not answer yet: %s", label(), failover_.shown(0), failure.why);
      return std::nullopt;
    }
  }
  return std::nullopt;
}

Goodbye ConnectingSource::goodbyeFor(const StreamEnd& end) const {
  if (end.how == StreamEnd::How::Stopped)
    return stopReason() == StopReason::Shutdown ? Goodbye{1001, "shutdown"} : Goodbye{1000, "restart"};
  if (end.how == StreamEnd::How::Return) return {1000, "returning to the primary"};
  return {1000, ""};
}

std::unique_ptr<ClientSocket> ConnectingSource::connect(const std::string& host, int port, const TlsContext* tls,
                                                        Clock::time_point deadline, OpenFailure& failure) {
  try {
    return std::make_unique<ClientSocket>(host, port, tls, deadline, stop_.fd());
  } catch (const std::runtime_error& e) {
    failure.why = e.what();
    return nullptr;
  }
}

ConnectingSource::Clock::time_point ConnectingSource::closeDeadline(const StreamEnd& end) const {
  const bool ours = end.how == StreamEnd::How::Stopped || end.how == StreamEnd::How::Return;
  const Clock::time_point budget = Clock::now() + std::chrono::milliseconds(ours ? kPlannedCloseMs : kFailedCloseMs);
  return end.how == StreamEnd::How::Stopped ? std::min(budget, closeBy()) : budget;
}

void addConnectingKeys(std::vector<KeySpec>& keys, const Schema& tlsSchema) {
  keys.push_back(groupKey("tls", tlsSchema));
  keys.push_back(groupKey("reconnect", reconnectSchema()));
  keys.push_back(groupKey("failover", failoverSchema()));
  keys.push_back(key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                     .doc("reconnect after this long without a byte from the provider (0: never)"));
  addLeaseKeys(keys);
}

void checkUrlOrEndpoints(const Settings& s, const YamlMap& m, const std::vector<std::string>& schemes) {
  if (s.string("url").empty() == s.strings("endpoints").empty())
    m.failHere(s.string("url").empty() ? "missing required key 'url' (or endpoints)" : "use either url or endpoints");
  for (const std::string& url : urlsOf(s)) {
    const bool known = std::any_of(schemes.begin(), schemes.end(),
                                   [&](const std::string& scheme) { return url.rfind(scheme, 0) == 0; });
    if (!known)
      m.fail(s.string("url").empty() ? "endpoints" : "url",
             "must start with " + schemes.at(0) + " or " + schemes.at(1) + ", got '" + url + "'");
  }
}

void checkFailover(const Settings& s, const YamlMap& m) {
  if (s.group("failover").string("return_to_primary") != "on_disconnect" && s.strings("endpoints").size() < 2)
    m.fail("failover", "needs endpoints (at least two): there is nothing to fail over to");
}

std::vector<std::string> urlsOf(const Settings& s) {
  std::vector<std::string> urls = s.strings("endpoints");
  if (urls.empty()) urls.push_back(s.string("url"));
  return urls;
}

}  // namespace streamrelay
