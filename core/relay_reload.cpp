// SPDX-License-Identifier: Apache-2.0
// Relay::reload: applies a new config while the relay runs, as far as it can
// without touching the sources (the one upstream connection).
#include <Poco/Logger.h>

#include <algorithm>

#include "logging.hpp"
#include "relay.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay"); }

template <class Item>
std::string printedAll(const std::vector<Item>& items) {
  std::string text;
  for (const Item& item : items) text += printedSettings(item.settings) + "\n";
  return text;
}

const ListenerConfig* findListener(const std::vector<ListenerConfig>& list, const std::string& name) {
  for (const ListenerConfig& l : list)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace

int Relay::reloadSources(const Config& next) {
  int changes = 0;
  auto find = [](const std::vector<SourceConfig>& list, const std::string& name) -> const SourceConfig* {
    for (const SourceConfig& s : list)
      if (s.name == name) return &s;
    return nullptr;
  };
  auto replayOf = [&](const std::string& stream) {
    for (const StreamConfig& kept : next.streams)
      if (kept.name == stream) return kept.replay;
    return ReplayLimits{};
  };
  // Starts `config` on its stream; false (logged) if it cannot be set up.
  auto launch = [&](const SourceConfig& config, const char* what) {
    Bus* bus;
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      auto it = streams_.find(config.name);
      if (it == streams_.end())
        it = streams_.emplace(config.name, std::make_unique<Bus>(StreamId{config.name, epoch_}, &frameSizes_,
                                                                  replayOf(config.name))).first;
      bus = it->second.get();
    }
    std::unique_ptr<UpstreamSource> source;
    try {
      source = UpstreamSource::create(config, *bus);
      source->prepare();
    } catch (const std::exception& e) {
      logger().error("config reload: source %s not %s: %s", config.name, std::string(what), oneLine(e.what()));
      return false;
    }
    source->start();
    std::lock_guard<std::mutex> lock(streamsMutex_);
    sources_.push_back(std::move(source));
    config_.sources.push_back(config);
    return true;
  };
  for (const SourceConfig& old : std::vector<SourceConfig>(config_.sources)) {
    const SourceConfig* now = find(next.sources, old.name);
    if (now && printedSettings(now->settings) == printedSettings(old.settings)) continue;
    std::unique_ptr<UpstreamSource> retired;
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      for (std::size_t i = 0; i < config_.sources.size(); ++i)
        if (config_.sources[i].name == old.name) {
          retired = std::move(sources_[i]);
          sources_.erase(sources_.begin() + static_cast<std::ptrdiff_t>(i));
          config_.sources.erase(config_.sources.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
    }
    retired->stop(StopReason::Restart);  // a frame it had half read is dropped with it
    retired.reset();
    ++changes;
    if (!now) {
      logger().information("config reload: source %s removed (its stream stays for whoever still reads it)", old.name);
    } else if (launch(*now, "restarted")) {
      logger().information("config reload: source %s changed: it alone reconnects, its stream goes on", old.name);
    }
  }
  for (const SourceConfig& s : next.sources) {
    if (find(config_.sources, s.name)) continue;
    ++changes;
    if (launch(s, "added")) logger().information("config reload: source %s added (%s)", s.name, s.type());
  }
  return changes;
}

void Relay::reload(const Config& next) {
  int changes = 0;
  // What a restart applies: said once each, never half applied.
  auto notApplied = [&](bool changed, const char* what) {
    if (!changed) return;
    ++changes;
    logger().warning("config reload: %s changed: not applied while running (a restart applies it)", std::string(what));
  };
  notApplied(printedAll(config_.streams) != printedAll(next.streams), "streams");
  notApplied(printedSettings(config_.plugins.settings) != printedSettings(next.plugins.settings), "plugins (directory, allow_insecure, rescan_ms)");
  notApplied(config_.writerThreads != next.writerThreads, "writer_threads");
  notApplied(config_.watchConfig != next.watchConfig, "watch_config");

  if (next.logLevel != config_.logLevel) {
    setLogLevel(next.logLevel);
    logger().notice("config reload: log level %s (was %s)", next.logLevel, config_.logLevel);
    config_.logLevel = next.logLevel;
    ++changes;
  }
  if (next.shutdownTimeoutMs != config_.shutdownTimeoutMs) {
    logger().information("config reload: shutdown_timeout_ms %d (was %d)", next.shutdownTimeoutMs,
                         config_.shutdownTimeoutMs);
    config_.shutdownTimeoutMs = next.shutdownTimeoutMs;
    ++changes;
  }

  // Sources: a changed one reconnects alone (its stream goes on, seq and all),
  // an added one starts, a removed one stops; the others are not touched.
  changes += reloadSources(next);

  // Plugin instances, before the listeners (a new listener may read a new
  // instance's stream): new streams first, then the plugins' hot replace.
  if (plugins_ && printedAll(config_.plugins.instances) != printedAll(next.plugins.instances)) {
    std::map<std::string, Bus*> buses;
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      for (const PluginInstanceConfig& instance : next.plugins.instances) {
        if (streams_.count(instance.name)) continue;
        ReplayLimits replay;
        for (const StreamConfig& kept : next.streams)
          if (kept.name == instance.name) replay = kept.replay;
        streams_.emplace(instance.name, std::make_unique<Bus>(StreamId{instance.name, epoch_}, nullptr, replay));
      }
      for (auto& entry : streams_) buses.emplace(entry.first, entry.second.get());
    }
    std::vector<std::string> names = plugins_->reconfigure(next.plugins.instances, std::move(buses));
    config_.plugins.instances = next.plugins.instances;
    if (!names.empty()) {
      std::string list;
      for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
      logger().information("config reload: plugin instances %s added, removed or changed: their plugins reload in place",
                           list);
      ++changes;
    }
  }

  // Listeners: removed and changed ones go first (a changed one may keep its port).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdownTimeoutMs);
  std::vector<std::string> replaced;
  for (const ListenerConfig& old : std::vector<ListenerConfig>(config_.listeners)) {
    const ListenerConfig* now = findListener(next.listeners, old.name);
    const bool changed = now && printedSettings(now->settings) != printedSettings(old.settings);
    if (now && !changed) {
      // Unchanged keys may name files that changed (a renewed certificate,
      // a rotated tokens file), and secret keys print the same when changed.
      std::lock_guard<std::mutex> lock(listenersMutex_);
      for (auto& l : listeners_)
        if (l->config().name == old.name) l->reloadCredentials(*now);
      continue;
    }
    if (changed && SubscriberListener::changesInPlace(old, *now)) {
      int closed = 0;
      {
        std::lock_guard<std::mutex> lock(listenersMutex_);
        for (auto& l : listeners_)
          if (l->config().name == old.name) closed = l->update(*now);
      }
      *std::find_if(config_.listeners.begin(), config_.listeners.end(),
                    [&](const ListenerConfig& l) { return l.name == old.name; }) = *now;
      logger().information("config reload: listener %s changed in place (allow, queue, write_deadline_ms, "
                           "send_buffer_bytes): %d subscriber(s) the allow list now refuses closed; new subscribers "
                           "get the new settings",
                           old.name, closed);
      ++changes;
      continue;
    }
    std::unique_ptr<SubscriberListener> listener;
    {
      std::lock_guard<std::mutex> lock(listenersMutex_);
      auto it = std::find_if(listeners_.begin(), listeners_.end(),
                             [&](const auto& l) { return l->config().name == old.name; });
      listener = std::move(*it);
      listeners_.erase(it);
    }
    listener->stopAccepting();
    const int closed = listener->closeSubscribers(CloseReason::Removed, deadline);
    if (closed < 0) {
      // Writers still hold sessions of it: keep it alive (not accepting) until the relay stops.
      logger().warning("config reload: listener %s: subscribers still closing at the deadline", old.name);
      std::lock_guard<std::mutex> lock(listenersMutex_);
      listeners_.push_back(std::move(listener));
    }
    config_.listeners.erase(std::find_if(config_.listeners.begin(), config_.listeners.end(),
                                         [&](const ListenerConfig& l) { return l.name == old.name; }));
    if (changed) {
      replaced.push_back(old.name);
    } else {
      logger().information("config reload: listener %s removed (%d subscriber(s) closed)", old.name,
                           std::max(closed, 0));
      ++changes;
    }
  }
  for (const ListenerConfig& l : next.listeners) {
    if (findListener(config_.listeners, l.name)) continue;
    const bool isReplacement = std::find(replaced.begin(), replaced.end(), l.name) != replaced.end();
    ++changes;
    auto missing = std::find_if(l.inputs.begin(), l.inputs.end(), [&](const std::string& s) { return !streams_.count(s); });
    if (missing != l.inputs.end()) {
      logger().error("config reload: listener %s not %s: input '%s' is not a stream of the running relay", l.name,
                     std::string(isReplacement ? "replaced (removed)" : "added"), *missing);
      continue;
    }
    try {
      auto listener = std::make_unique<SubscriberListener>(l, buses(l.inputs), writers_, writeLatency_);
      listener->start();
      std::lock_guard<std::mutex> lock(listenersMutex_);
      listeners_.push_back(std::move(listener));
    } catch (const std::exception& e) {
      logger().error("config reload: listener %s not %s: %s", l.name,
                     std::string(isReplacement ? "replaced (removed)" : "added"), oneLine(e.what()));
      continue;
    }
    config_.listeners.push_back(l);
    logger().information("config reload: listener %s %s (%s)", l.name,
                         std::string(isReplacement ? "changed: replaced, its subscribers closed" : "added"), l.bind);
  }
  if (changes == 0) logger().information("config reload: no change");
}

}  // namespace streamrelay
