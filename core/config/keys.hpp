// SPDX-License-Identifier: Apache-2.0
#pragma once
// The config's key tables (see schema.hpp): the top level, framings, queues,
// listeners, plugins and their instances, and the keys sources share. Source
// types declare their own keys in their files (sources/source_types.def).

#include "framing.hpp"
#include "key_extractor.hpp"
#include "log_options.hpp"
#include "replay_ring.hpp"
#include "schema.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

constexpr std::int64_t kIntMax = 2147483647;
constexpr std::int64_t kMaxFrameBytesLimit = 1LL << 30;  // frames are stored with a 32-bit length

const Schema& topSchema();
const Schema& sourceSchema();       // `type`, `framing`, and every registered source type
const Schema& framingSchema();      // default length-prefix
const Schema& lineFramingSchema();  // the same types, default delimiter "\n" (http: NDJSON)
const Schema& listenerFramingSchema();  // what a listener can write: not sse
const Schema& reconnectSchema();    // for sources that connect out
const Schema& tlsSchema();          // for sources that connect out over TCP (tcp)
const Schema& urlTlsSchema();       // for sources whose URL says whether TLS is used (http)
const Schema& listenerSchema();
const Schema& streamSchema();       // streams.NAME
const Schema& pluginsSchema();
const Schema& instanceSchema();     // plugins.instances[]
const Schema& sidecarInstanceSchema();  // NAME.yaml's instances[]: `type` is implied

FramingSpec framingFrom(const Settings& framing);
QueueLimits queueFrom(const Settings& queue);
ReplayLimits replayFrom(const Settings& replay);
KeyRule keyRuleFrom(const Settings& key);  // streams.NAME.key
LogOptions logOptionsFrom(const Settings& log);  // streams.NAME.log
struct PluginProcessConfig;
PluginProcessConfig pluginProcessFrom(const Settings& process);  // plugins.instances[].process

}  // namespace streamrelay
