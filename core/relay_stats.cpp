// SPDX-License-Identifier: Apache-2.0
// Relay::statsJson: every figure the relay keeps, as one JSON document. The
// plugin host API hands it to plugins (the metrics plugin renders it); its
// schema is documented in docs/operations.md ("Stats").
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <map>
#include <set>
#include <sstream>

#include "relay.hpp"

namespace streamrelay {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

Object::Ptr sourceJson(const SourceConfig& config, const SourceCounters& c) {
  Object::Ptr o = new Object;
  o->set("name", config.name);
  o->set("type", config.type());
  o->set("connected", c.connected.load());
  o->set("connects", c.connects.load());
  o->set("protocol_errors", c.protocolErrors.load());
  o->set("bytes_read", c.bytesRead.load());
  if (config.type() == "listen") o->set("refused_publishers", c.refusedPublishers.load());
  if (config.type() == "streamrelay" || config.type() == "redis" || config.fromPlugin || !c.leaseKey.empty()) {  // where it follows its upstream
    if (config.type() == "streamrelay") o->set("mirror", config.settings.boolean("mirror"));
    o->set("upstream_epoch", std::to_string(c.upstreamEpoch.load()));
    o->set("upstream_seq", c.upstreamSeq.load());
    o->set("gaps", c.gaps.load());
    o->set("frames_missed", c.framesMissed.load());
    o->set("new_epochs", c.newEpochs.load());
    o->set("lag_ms", static_cast<double>(c.lagNs.load()) / 1e6);
    if (config.fromPlugin) {
      o->set("repeats", c.repeats.load());
      o->set("refused", c.refused.load());
    }
  }
  if (!c.leaseKey.empty()) {  // a source with a lease: does this relay hold the provider connection?
    Object::Ptr lease = new Object;
    lease->set("key", c.leaseKey);
    const bool holding = c.leaseHolding.load();
    lease->set("holding", holding);
    const std::int64_t since = c.leaseSinceUnixMs.load();
    if (holding && since > 0) lease->set("holder_since_unix_ms", since);
    else lease->set("holder_since_unix_ms", Poco::Dynamic::Var());
    lease->set("acquisitions", c.leaseAcquisitions.load());
    lease->set("losses", c.leaseLosses.load());
    o->set("lease", lease);
  }
  std::lock_guard<std::mutex> lock(c.endpointsMutex);
  if (config.type() == "redis") o->set("last_id", c.providerPosition);
  if (config.fromPlugin) {  // a source type of a plugin library: where it stands, and its own counters
    o->set("provider_position", c.providerPosition);
    Object::Ptr counters = new Object;
    for (const auto& [name, value] : c.pluginCounters) counters->set(name, value);
    o->set("plugin", counters);
  }
  if (!c.endpoints.empty()) {  // a connecting source
    o->set("endpoint", c.liveEndpoint);
    Array::Ptr endpoints = new Array;
    for (const EndpointStatus& e : c.endpoints) {
      Object::Ptr item = new Object;
      item->set("address", e.address);
      item->set("failures", e.failures);
      item->set("live", e.address == c.liveEndpoint);
      endpoints->add(item);
    }
    o->set("endpoints", endpoints);
  }
  return o;
}

Object::Ptr logJson(const StreamLog& log, const LogReplays* replays) {
  const LogStats stats = log.stats();
  Object::Ptr o = new Object;
  o->set("first_seq", stats.firstSeq);
  o->set("last_seq", stats.lastSeq);
  o->set("fsynced_seq", stats.fsyncedSeq);
  o->set("bytes", stats.bytes);
  o->set("segments", stats.segments);
  o->set("write_errors", stats.writeErrors);
  o->set("frames_written", stats.framesWritten);
  o->set("bytes_written", stats.bytesWritten);
  o->set("reserved_seq", stats.reservedSeq);
  if (replays) {
    o->set("readers", static_cast<std::uint64_t>(replays->readers()));
    o->set("frames_read", replays->framesRead());
    o->set("read_ahead_bytes", static_cast<std::uint64_t>(replays->readAheadBytes()));
  }
  return o;
}

// `log`: the stream's, if it keeps one, with its readers.
Object::Ptr streamJson(const Bus& bus, const StreamLog* log, const LogReplays* replays) {
  Object::Ptr o = new Object;
  o->set("name", bus.stream().name);
  o->set("epoch", std::to_string(bus.stream().epoch));  // a logged stream's own, else the run's
  o->set("frames", bus.framesPublished());
  o->set("bytes", bus.bytesPublished());
  o->set("last_seq", bus.lastSeq());
  o->set("consumers", static_cast<std::uint64_t>(bus.queues().size()));
  const Bus::SelectionCounts selection = bus.selectionCounts();
  o->set("selecting_consumers", static_cast<std::uint64_t>(selection.subscriptions));
  o->set("indexed_patterns", static_cast<std::uint64_t>(selection.patterns));
  const Bus::LastValueCounts last = bus.lastValueCounts();
  if (last.maxKeys > 0) {
    Object::Ptr lastValue = new Object;
    lastValue->set("keys", static_cast<std::uint64_t>(last.keys));
    lastValue->set("max_keys", static_cast<std::uint64_t>(last.maxKeys));
    lastValue->set("evictions", last.evictions);
    o->set("last_value", lastValue);
  }
  if (bus.replayLimits().enabled()) {
    const auto [frames, bytes] = bus.replayHeld();
    Object::Ptr replay = new Object;
    replay->set("frames", static_cast<std::uint64_t>(frames));
    replay->set("bytes", static_cast<std::uint64_t>(bytes));
    o->set("replay", replay);
  }
  if (const KeyCounts* counts = bus.keyCounts()) {
    Object::Ptr keys = new Object;
    keys->set("keyed", counts->keyed());
    keys->set("without_key", counts->withoutKey());
    keys->set("distinct", counts->distinct());
    if (counts->capped()) keys->set("distinct_capped", true);
    o->set("keys", keys);
  }
  if (log) o->set("log", logJson(*log, replays));
  return o;
}

Object::Ptr listenerJson(const SubscriberListener& l) {
  const ListenerCounters& c = l.counters();
  Object::Ptr o = new Object;
  o->set("name", l.config().name);
  o->set("protocol", l.config().protocol);
  o->set("port", static_cast<int>(l.port()));
  Array::Ptr inputs = new Array;
  for (const std::string& input : l.config().inputs) inputs->add(input);
  o->set("inputs", inputs);
  o->set("clients", l.clients());
  o->set("pending", l.pending());
  o->set("accepted", c.accepted.load());
  o->set("refused_max_clients", c.refusedMaxClients.load());
  o->set("refused_max_pending_clients", c.refusedMaxPending.load());
  o->set("refused_allow", c.refusedAllow.load());
  o->set("lost_before_admission", c.lostBeforeAdmission.load());
  o->set("near_peers", c.nearPeers.load());
  Object::Ptr disconnects = new Object;
  for (int r = 1; r < kCloseReasonCount; ++r)
    disconnects->set(toString(static_cast<CloseReason>(r)), c.disconnects[r].load());
  o->set("disconnects", disconnects);
  return o;
}

// A subscriber's listener (null for a plugin's queue).
Object::Ptr consumerJson(const SubscriptionQueue& q, const SubscriberListener* listener) {
  const QueueCounters& c = q.counters();
  Object::Ptr o = new Object;
  o->set("name", q.name());
  const bool plugin = q.name().rfind("plugin ", 0) == 0, log = !listener && q.name().rfind("log ", 0) == 0;
  o->set("kind", plugin ? "plugin" : log ? "log" : "subscriber");  // log: a stream's log writer (LogWriter)
  if (listener) {
    o->set("listener", listener->config().name);
    o->set("protocol", listener->config().protocol);
  }
  o->set("policy", std::string(toString(q.limits().onFull)));
  const std::vector<std::string> selection = q.selection();
  if (!selection.empty()) {
    Array::Ptr patterns = new Array;
    for (const std::string& pattern : selection) patterns->add(pattern);
    o->set("select", patterns);
  }
  o->set("queue_frames", static_cast<std::uint64_t>(q.queuedFrames()));
  o->set("queue_bytes", static_cast<std::uint64_t>(q.queuedBytes()));
  // How far behind it is: queue_frames frames, the oldest waiting this long.
  const std::int64_t oldest = q.oldestWaitingSteadyNs();
  o->set("lag_seconds", oldest == 0 ? 0.0 : static_cast<double>(steadyNowNs() - oldest) / 1e9);
  o->set("enqueued", c.enqueued.load());
  o->set("delivered", c.delivered.load());
  o->set("dropped", c.dropped.load());
  // Skipped for a newer frame of their key: on_full conflate; hello max_rate_per_key.
  o->set("conflated", c.conflated.load());
  o->set("rate_skipped", c.rateSkipped.load());
  // `block`: its queue is full and the stream's publisher waits for room now.
  o->set("holding_publisher", c.holdingPublisher.load());
  return o;
}

Object::Ptr pluginJson(const HostedInstance& p) {
  Object::Ptr o = new Object;
  o->set("name", p.name());
  o->set("type", p.type());
  o->set("failures", p.metrics().failures());
  o->set("disabled", p.disabled());
  Object::Ptr counters = new Object;
  for (const auto& entry : p.metrics().counters()) counters->set(entry.first, entry.second);
  o->set("counters", counters);
  Object::Ptr gauges = new Object;
  for (const auto& entry : p.metrics().gauges()) gauges->set(entry.first, entry.second);
  o->set("gauges", gauges);
  const IsolationStatus isolation = p.isolation();
  o->set("isolation", isolation.isolated ? "process" : "in_process");
  if (isolation.isolated) {
    Object::Ptr process = new Object;
    process->set("pid", isolation.pid);
    process->set("frames_in_flight", isolation.framesInFlight);
    process->set("restarts", isolation.restarts);
    process->set("watchdog_kills", isolation.watchdogKills);
    process->set("memory_limit_kills", isolation.memoryLimitKills);
    process->set("last_exit", isolation.lastExit);
    o->set("process", process);
  }
  return o;
}

Array::Ptr loadFailuresJson(const std::map<std::string, std::string>& failures) {
  Array::Ptr list = new Array;
  for (const auto& entry : failures) {
    Object::Ptr o = new Object;
    o->set("file", entry.first);
    o->set("error", entry.second);
    list->add(o);
  }
  return list;
}

Object::Ptr histogramJson(const Histogram& h) {
  Object::Ptr o = new Object;
  Array::Ptr bounds = new Array, counts = new Array;
  for (double b : h.bounds()) bounds->add(b);
  for (std::uint64_t c : h.counts()) counts->add(c);
  o->set("bounds", bounds);
  o->set("counts", counts);  // per bucket, the last one above every bound
  o->set("sum", h.sum());
  o->set("count", h.count());
  return o;
}

}  // namespace

std::string Relay::statsJson() const {
  std::lock_guard<std::mutex> streamsLock(streamsMutex_);
  Object root;
  root.set("epoch", std::to_string(epoch_));  // a string, as in every JSON answer: 64 bits do not fit a JSON number's 53
  std::uint64_t bytes = 0;  // received: from the sources, not what plugins emit
  for (const SourceConfig& source : config_.sources) bytes += streams_.at(source.name)->bytesPublished();
  Array::Ptr streams = new Array;
  for (const auto& entry : streams_) {
    const auto log = logs_.find(entry.first);
    const auto replays = replays_.find(entry.first);
    streams->add(streamJson(*entry.second, log == logs_.end() ? nullptr : &log->second->log(),
                            replays == replays_.end() ? nullptr : replays->second.get()));
  }
  root.set("frames_received", framesReceived());
  root.set("bytes_received", bytes);
  Array::Ptr sources = new Array;
  for (std::size_t i = 0; i < sources_.size(); ++i) sources->add(sourceJson(config_.sources[i], sources_[i]->counters()));
  root.set("sources", sources);
  root.set("streams", streams);
  Array::Ptr listeners = new Array;
  std::map<const SubscriptionQueue*, const SubscriberListener*> listenerOf;
  std::lock_guard<std::mutex> lock(listenersMutex_);  // held until the consumers are listed: listenerOf points into them
  for (const auto& l : listeners_) {
    listeners->add(listenerJson(*l));
    for (const SubscriptionQueue* q : l->subscriberQueues()) listenerOf[q] = l.get();
  }
  root.set("listeners", listeners);
  // A consumer of several streams is listed once.
  Array::Ptr consumers = new Array;
  std::set<const SubscriptionQueue*> listed;
  for (const auto& entry : streams_)
    for (const QueuePtr& q : entry.second->queues())
      if (listed.insert(q.get()).second) {
        const auto owner = listenerOf.find(q.get());
        consumers->add(consumerJson(*q, owner == listenerOf.end() ? nullptr : owner->second));
      }
  root.set("consumers", consumers);
  Array::Ptr plugins = new Array;
  if (plugins_)
    for (const auto& p : plugins_->instances()) plugins->add(pluginJson(*p));
  root.set("plugins", plugins);
  root.set("plugin_load_failures", loadFailuresJson(plugins_ ? plugins_->loadFailures() : std::map<std::string, std::string>{}));
  root.set("frame_size_bytes", histogramJson(frameSizes_));
  root.set("write_latency_seconds", histogramJson(writeLatency_));
  std::ostringstream out;
  root.stringify(out);
  return out.str();
}

}  // namespace streamrelay
