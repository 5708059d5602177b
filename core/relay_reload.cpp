// SPDX-License-Identifier: Apache-2.0
// Relay::reload: applies a new config while the relay runs, driven by the one
// diff of the running config and the new one (config_diff.hpp). Each
// component applies what it can in place, is restarted alone when it must
// be, and what only a restart of the relay applies is said once.
#include <Poco/Logger.h>

#include <algorithm>

#include "logging.hpp"
#include "relay.hpp"

namespace streamrelay {

namespace {

using Kind = ComponentChange::Kind;
using What = ComponentChange::What;

Poco::Logger& logger() { return Poco::Logger::get("streamrelay"); }

template <class Item>
const Item* named(const std::vector<Item>& items, const std::string& name) {
  auto it = std::find_if(items.begin(), items.end(), [&](const Item& i) { return i.name == name; });
  return it == items.end() ? nullptr : &*it;
}

template <class Item>
void eraseNamed(std::vector<Item>& items, const std::string& name) {
  items.erase(std::remove_if(items.begin(), items.end(), [&](const Item& i) { return i.name == name; }), items.end());
}

template <class Item>
void putNamed(std::vector<Item>& items, const Item& item) {
  auto it = std::find_if(items.begin(), items.end(), [&](const Item& i) { return i.name == item.name; });
  if (it == items.end()) items.push_back(item);
  else *it = item;
}

// What needs a restart of the relay, as "writer_threads, streams.upstream.replay.frames".
std::string restartOnlyKeys(const ConfigDiff& diff) {
  std::string list;
  for (const ComponentChange& c : diff.changes)
    for (const KeyChange& k : c.keys) {
      if (k.how != Reload::Process) continue;
      const std::string prefix = c.kind == Kind::Stream ? "streams." + c.name + "." : "";
      list += (list.empty() ? "" : ", ") + prefix + k.key;
    }
  return list;
}

}  // namespace

void Relay::reload(const Config& next) {
  const ConfigDiff diff = diffConfigs(config_, next);
  if (diff.empty()) {
    logger().information("config reload: no change");
  } else if (const std::string keys = restartOnlyKeys(diff); !keys.empty()) {
    logger().warning("config reload: %s changed: not applied while running (a restart of the relay applies it)", keys);
  }
  if (const ComponentChange* own = diff.find(Kind::Relay, "")) reloadRelayKeys(*own, next);
  // Sources before the consumers: a new listener or instance may read a new source's stream.
  for (const ComponentChange* c : diff.of(Kind::Source)) reloadSource(*c, next);
  // Plugin instances before the listeners: a new listener may read a new instance's stream.
  if (!diff.of(Kind::PluginInstance).empty()) reloadPluginInstances(next);
  // Streams made by this reload (new sources, new instances) took their settings from `next`.
  for (const StreamConfig& stream : next.streams)
    if (!named(config_.streams, stream.name) && streams_.count(stream.name)) config_.streams.push_back(stream);
  for (const ComponentChange* c : diff.of(Kind::Listener)) reloadListener(*c, next);
  // Unchanged listeners may name files that changed (a renewed certificate, a rotated tokens file).
  std::lock_guard<std::mutex> lock(listenersMutex_);
  for (auto& l : listeners_)
    if (!diff.find(Kind::Listener, l->config().name)) l->reloadCredentials();
}

// The relay's own keys: those marked in place apply now; the others wait for
// a restart (reload() said so) and stay as they run.
void Relay::reloadRelayKeys(const ComponentChange& change, const Config& next) {
  std::vector<KeyChange> applied;
  for (const KeyChange& k : change.keys)
    if (k.how == Reload::InPlace) applied.push_back(k);
  if (applied.empty()) return;
  if (next.logLevel != config_.logLevel) {
    setLogLevel(next.logLevel);
    logger().notice("config reload: log level %s (was %s)", next.logLevel, config_.logLevel);
    config_.logLevel = next.logLevel;
  }
  if (next.shutdownTimeoutMs != config_.shutdownTimeoutMs) {
    logger().information("config reload: shutdown_timeout_ms %d (was %d)", next.shutdownTimeoutMs,
                         config_.shutdownTimeoutMs);
    config_.shutdownTimeoutMs = next.shutdownTimeoutMs;
  }
  config_.settings = adoptChanges(config_.settings, next.settings, applied);
}

// A changed source is stopped and started again alone, on the same stream
// (its seq goes on; the other sources' connections are not touched).
void Relay::reloadSource(const ComponentChange& change, const Config& next) {
  if (change.what != What::Added) {
    std::unique_ptr<UpstreamSource> retired;
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      for (std::size_t i = 0; i < config_.sources.size(); ++i)
        if (config_.sources[i].name == change.name) {
          retired = std::move(sources_[i]);
          sources_.erase(sources_.begin() + static_cast<std::ptrdiff_t>(i));
          config_.sources.erase(config_.sources.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
    }
    retired->stop(StopReason::Restart);  // a frame it had half read is dropped with it
  }
  if (change.what == What::Removed) {
    logger().information("config reload: source %s removed (its stream stays for whoever still reads it)",
                         change.name);
    return;
  }
  const SourceConfig& config = *named(next.sources, change.name);
  if (!launchSource(config, next)) return;
  if (change.what == What::Added)
    logger().information("config reload: source %s added (%s)", config.name, config.type());
  else
    logger().information("config reload: source %s changed (%s): it alone reconnects, its stream goes on",
                         config.name, change.keyList());
}

// Starts `config` on its stream (made if new); false (logged) if it cannot be set up.
bool Relay::launchSource(const SourceConfig& config, const Config& next) {
  Bus* bus;
  {
    std::lock_guard<std::mutex> lock(streamsMutex_);
    auto it = streams_.find(config.name);
    if (it == streams_.end())
      it = streams_.emplace(config.name, newBus(next, config.name, &frameSizes_)).first;
    bus = it->second.get();
  }
  std::unique_ptr<UpstreamSource> source;
  try {
    source = UpstreamSource::create(config, *bus);
    // Where the source before it left its provider: no gap, no duplicate.
    if (const std::string position = bus->providerPosition(); !position.empty()) source->resumeProviderAfter(position);
    source->prepare();
  } catch (const std::exception& e) {
    logger().error("config reload: source %s not started: %s", config.name, oneLine(e.what()));
    return false;
  }
  source->start();
  std::lock_guard<std::mutex> lock(streamsMutex_);
  sources_.push_back(std::move(source));
  config_.sources.push_back(config);
  return true;
}

// Plugin instances go through the plugins' hot replace (gapless, all or
// nothing): the streams of new instances first, then the host reloads each
// plugin whose instances changed.
void Relay::reloadPluginInstances(const Config& next) {
  if (!plugins_) {  // a relay started without a plugins directory: reload() said a restart applies one
    logger().warning("config reload: plugin instances not applied: the relay runs without plugins.directory");
    return;
  }
  std::map<std::string, Bus*> buses;
  {
    std::lock_guard<std::mutex> lock(streamsMutex_);
    for (const PluginInstanceConfig& instance : next.plugins.instances)
      if (!streams_.count(instance.name))
        streams_.emplace(instance.name, newBus(next, instance.name, nullptr));
    for (auto& entry : streams_) buses.emplace(entry.first, entry.second.get());
  }
  std::vector<std::string> names = plugins_->reconfigure(next.plugins.instances, std::move(buses));
  config_.plugins.instances = next.plugins.instances;
  if (names.empty()) return;
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  logger().information("config reload: plugin instances %s added, removed or changed: their plugins reload in place",
                       list);
}

void Relay::reloadListener(const ComponentChange& change, const Config& next) {
  const ListenerConfig* now = named(next.listeners, change.name);
  if (change.what == What::Added) return addListener(*now);
  if (change.what == What::Removed) {
    std::unique_ptr<SubscriberListener> listener = takeListener(change.name);
    listener->closeSocket();  // the port is free at once
    const int closed = retireListener(std::move(listener));
    eraseNamed(config_.listeners, change.name);
    logger().information("config reload: listener %s removed (%d subscriber(s) closed)", change.name,
                         std::max(closed, 0));
    return;
  }
  if (change.how() != Reload::InPlace) return restartListener(change, *now);
  SubscriberListener::UpdateResult result;
  {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    for (auto& l : listeners_)
      if (l->config().name == change.name) {
        result = l->update(*now);
        putNamed(config_.listeners, l->liveConfig());  // without credentials that did not load
      }
  }
  if (!result.credentialsProblem.empty())
    logger().error("config reload: listener %s: %s changed in place, but its credentials were not reloaded: %s; the "
                   "previous ones stay",
                   change.name, change.keyList(), result.credentialsProblem);
  else
    logger().information("config reload: listener %s: %s changed in place (%d subscriber(s) the allow list now "
                         "refuses closed; new clients get the new settings)",
                         change.name, change.keyList(), result.closed);
}

void Relay::addListener(const ListenerConfig& config) {
  auto missing = std::find_if(config.inputs.begin(), config.inputs.end(),
                              [&](const std::string& s) { return !streams_.count(s); });
  if (missing != config.inputs.end()) {
    logger().error("config reload: listener %s not added: input '%s' is not a stream of the running relay",
                   config.name, *missing);
    return;
  }
  try {
    auto listener = std::make_unique<SubscriberListener>(config, buses(config.inputs), writers_, writeLatency_);
    listener->start();
    std::lock_guard<std::mutex> lock(listenersMutex_);
    listeners_.push_back(std::move(listener));
  } catch (const std::exception& e) {
    logger().error("config reload: listener %s not added: %s", config.name, oneLine(e.what()));
    return;
  }
  config_.listeners.push_back(config);
  logger().information("config reload: listener %s added (%s)", config.name, config.bind);
}

// A listener whose changed keys a running one cannot take is replaced. On
// the same address the successor takes over the listening socket, as nginx
// hands its sockets to a new configuration: the port never closes, and
// connections that arrive meanwhile wait in its backlog for the successor.
// The predecessor's sessions (set-ups under way included) are closed with
// reason `removed`. A successor that cannot be made leaves the listener as
// it runs (or, when it had to free its address first, removed).
void Relay::restartListener(const ComponentChange& change, const ListenerConfig& config) {
  auto missing = std::find_if(config.inputs.begin(), config.inputs.end(),
                              [&](const std::string& s) { return !streams_.count(s); });
  if (missing != config.inputs.end()) {
    logger().error("config reload: listener %s not changed: input '%s' is not a stream of the running relay; it "
                   "goes on as it was",
                   config.name, *missing);
    return;
  }
  SubscriberListener* running = nullptr;
  {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    for (auto& l : listeners_)
      if (l->config().name == config.name) running = l.get();
  }
  const bool sameSocket = running->listensOn(config.bind);
  std::unique_ptr<SubscriberListener> successor;
  std::unique_ptr<SubscriberListener> predecessor;
  std::string problem;
  bool addressTaken = false;
  auto build = [&](const Poco::Net::ServerSocket* inherited) {
    try {
      successor = std::make_unique<SubscriberListener>(config, buses(config.inputs), writers_, writeLatency_, inherited);
    } catch (const ListenError& e) {
      problem = oneLine(e.what());
      addressTaken = true;
    } catch (const std::exception& e) {
      problem = oneLine(e.what());
    }
  };
  build(sameSocket ? &running->listeningSocket() : nullptr);
  if (!successor && addressTaken) {
    // The new address may overlap the old one (0.0.0.0 and 127.0.0.1, same port): free it first.
    predecessor = takeListener(config.name);
    predecessor->closeSocket();
    build(nullptr);
  }
  if (!successor) {
    if (!predecessor) {
      logger().error("config reload: listener %s not changed: %s; it goes on as it was", config.name, problem);
      return;
    }
    const int closed = retireListener(std::move(predecessor));
    eraseNamed(config_.listeners, config.name);
    logger().error("config reload: listener %s not changed: %s; removed (%d subscriber(s) closed)", config.name,
                   problem, std::max(closed, 0));
    return;
  }
  if (!predecessor) predecessor = takeListener(config.name);  // stops accepting: its backlog is the successor's
  // Listed before it accepts: /stats never serves a client of a listener it
  // does not show (its port is known since it was built).
  SubscriberListener& started = *successor;
  {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    listeners_.push_back(std::move(successor));
  }
  started.start();
  const int closed = retireListener(std::move(predecessor));
  putNamed(config_.listeners, config);
  logger().information("config reload: listener %s: %s changed: restarted %s (%d subscriber(s) closed)", config.name,
                       change.keyList(),
                       std::string(sameSocket ? "on the same listening socket" : "on " + config.bind),
                       std::max(closed, 0));
}

// Unlists listener `name` and stops its accepting (which may take a POCO
// poll interval, so outside the lock statsJson takes).
std::unique_ptr<SubscriberListener> Relay::takeListener(const std::string& name) {
  std::unique_ptr<SubscriberListener> listener;
  {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    auto it = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& l) { return l->config().name == name; });
    listener = std::move(*it);
    listeners_.erase(it);
  }
  listener->stopAccepting();
  return listener;
}

int Relay::retireListener(std::unique_ptr<SubscriberListener> listener) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdownTimeoutMs);
  const int closed = listener->closeSubscribers(CloseReason::Removed, deadline);
  if (closed < 0) {
    logger().warning("config reload: listener %s: subscribers still closing at the deadline", listener->config().name);
    std::lock_guard<std::mutex> lock(listenersMutex_);
    retiredListeners_.push_back(std::move(listener));
  }
  return closed;
}

}  // namespace streamrelay
