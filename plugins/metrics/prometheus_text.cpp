// SPDX-License-Identifier: Apache-2.0
#include "prometheus_text.hpp"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cmath>
#include <iomanip>
#include <sstream>

namespace streamrelay::plugins {

namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

std::string escapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Writes metric families; each family's HELP and TYPE come once, before its samples.
class Exposition {
 public:
  void family(const std::string& name, const char* type, const char* help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void sample(const std::string& name, const std::string& labels, double value) {
    out_ << name;
    if (!labels.empty()) out_ << "{" << labels << "}";
    out_ << " ";
    if (value == std::floor(value) && std::fabs(value) < 1e15) out_ << static_cast<long long>(value);
    else out_ << std::setprecision(10) << value;
    out_ << "\n";
  }
  void metric(const std::string& name, const char* type, const char* help, double value) {
    family(name, type, help);
    sample(name, "", value);
  }
  void histogram(const std::string& name, const char* help, const Object::Ptr& h) {
    family(name, "histogram", help);
    Array::Ptr bounds = h->getArray("bounds"), counts = h->getArray("counts");
    double cumulative = 0;
    for (std::size_t i = 0; i < counts->size(); ++i) {
      cumulative += counts->getElement<double>(static_cast<unsigned>(i));
      std::ostringstream le;
      if (i < bounds->size()) le << bounds->getElement<double>(static_cast<unsigned>(i));
      else le << "+Inf";
      sample(name + "_bucket", "le=\"" + le.str() + "\"", cumulative);
    }
    sample(name + "_sum", "", h->getValue<double>("sum"));
    sample(name + "_count", "", h->getValue<double>("count"));
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string label(const std::string& key, const std::string& value) { return key + "=\"" + escapeLabel(value) + "\""; }

// One gauge or counter family with a sample per item of a stats array.
struct Field {
  const char* name;
  const char* type;
  const char* help;
  const char* key;  // in each item
};

// One gauge or counter family with a sample per item of a stats array; with
// `group`, per item that has that object (a stream's `keys` when it has a key
// rule), its fields: items without it give no sample.
template <std::size_t N>
void renderFields(Exposition& e, const Field (&fields)[N], const Array::Ptr& items,
                  std::string (*labels)(const Object::Ptr&), const char* group = nullptr) {
  for (const Field& f : fields) {
    e.family(f.name, f.type, f.help);
    for (std::size_t i = 0; i < items->size(); ++i) {
      Object::Ptr item = items->getObject(static_cast<unsigned>(i));
      if (Object::Ptr values = group ? item->getObject(group) : item)
        e.sample(f.name, labels(item), values->getValue<double>(f.key));
    }
  }
}

std::string sourceLabel(const Object::Ptr& s) { return label("source", s->getValue<std::string>("name")); }
std::string streamLabel(const Object::Ptr& s) { return label("stream", s->getValue<std::string>("name")); }

// `streamrelay` sources: where each stands in its upstream relay's numbering.
void renderMirrors(Exposition& e, const Array::Ptr& sources) {
  static const Field fields[] = {
      {"streamrelay_mirror_upstream_seq", "gauge", "The upstream relay's seq of the newest frame the source published.",
       "upstream_seq"},
      {"streamrelay_mirror_gaps_total", "counter", "Jumps in seq the upstream relay gave (frames it could no longer give).",
       "gaps"},
      {"streamrelay_mirror_frames_missed_total", "counter", "Frames skipped by those jumps.", "frames_missed"},
      {"streamrelay_mirror_new_epochs_total", "counter", "Times the upstream relay's stream started a new epoch.",
       "new_epochs"}};
  Array::Ptr mirrors = new Array;
  for (std::size_t i = 0; i < sources->size(); ++i) {
    Object::Ptr s = sources->getObject(static_cast<unsigned>(i));
    if (s->has("upstream_seq")) mirrors->add(s);
  }
  renderFields(e, fields, mirrors, &sourceLabel);
  e.family("streamrelay_mirror_lag_seconds", "gauge",
           "At the newest frame: when it arrived here minus when the root relay received it.");
  for (std::size_t i = 0; i < mirrors->size(); ++i) {
    Object::Ptr s = mirrors->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_mirror_lag_seconds", sourceLabel(s), s->getValue<double>("lag_ms") / 1000);
  }
}

void renderSources(Exposition& e, const Array::Ptr& sources) {
  static const Field fields[] = {
      {"streamrelay_upstream_connects_total", "counter", "Source connections made (reconnects included).", "connects"},
      {"streamrelay_upstream_protocol_errors_total", "counter", "Source protocol errors (e.g. oversize frames).",
       "protocol_errors"},
      {"streamrelay_upstream_bytes_read_total", "counter", "Bytes read by the source.", "bytes_read"}};
  e.family("streamrelay_upstream_connected", "gauge", "1 while the source is connected.");
  for (std::size_t i = 0; i < sources->size(); ++i) {
    Object::Ptr s = sources->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_upstream_connected", sourceLabel(s), s->getValue<bool>("connected") ? 1 : 0);
  }
  renderFields(e, fields, sources, &sourceLabel);
  // Sources with a lease (docs/fleet.md "Standby"): whether this relay holds it.
  static const Field leaseFields[] = {
      {"streamrelay_upstream_lease_acquisitions_total", "counter", "Times this relay took the source's lease.",
       "acquisitions"},
      {"streamrelay_upstream_lease_losses_total", "counter",
       "Leases lost (a renewal refused, failed or late), releases not counted.", "losses"}};
  renderFields(e, leaseFields, sources, &sourceLabel, "lease");
  e.family("streamrelay_upstream_lease_holding", "gauge",
           "1 while this relay holds the source's lease (and may connect to its provider).");
  for (std::size_t i = 0; i < sources->size(); ++i) {
    Object::Ptr s = sources->getObject(static_cast<unsigned>(i));
    if (Object::Ptr lease = s->getObject("lease"))
      e.sample("streamrelay_upstream_lease_holding", sourceLabel(s), lease->getValue<bool>("holding") ? 1 : 0);
  }
  // Connecting sources: which endpoint is live, and how often each failed.
  auto eachEndpoint = [&](auto&& sample) {
    for (std::size_t i = 0; i < sources->size(); ++i) {
      Object::Ptr s = sources->getObject(static_cast<unsigned>(i));
      if (!s->has("endpoints")) continue;
      Array::Ptr endpoints = s->getArray("endpoints");
      for (std::size_t j = 0; j < endpoints->size(); ++j) {
        Object::Ptr ep = endpoints->getObject(static_cast<unsigned>(j));
        sample(sourceLabel(s) + "," + label("endpoint", ep->getValue<std::string>("address")), ep);
      }
    }
  };
  e.family("streamrelay_upstream_endpoint_live", "gauge", "1 for the endpoint the source is connected to.");
  eachEndpoint([&](const std::string& labels, const Object::Ptr& ep) {
    e.sample("streamrelay_upstream_endpoint_live", labels, ep->getValue<bool>("live") ? 1 : 0);
  });
  e.family("streamrelay_upstream_endpoint_failures_total", "counter",
           "Tries of the endpoint that failed, and connections to it that ended unplanned.");
  eachEndpoint([&](const std::string& labels, const Object::Ptr& ep) {
    e.sample("streamrelay_upstream_endpoint_failures_total", labels, ep->getValue<double>("failures"));
  });
  renderMirrors(e, sources);
}

void renderStreams(Exposition& e, const Array::Ptr& streams) {
  static const Field fields[] = {
      {"streamrelay_stream_frames_total", "counter", "Frames published on the stream.", "frames"},
      {"streamrelay_stream_bytes_total", "counter", "Payload bytes published on the stream.", "bytes"},
      {"streamrelay_stream_last_seq", "gauge", "Seq of the newest frame of the stream.", "last_seq"},
      {"streamrelay_stream_consumers", "gauge", "Consumers (subscribers, plugins) of the stream.", "consumers"},
      {"streamrelay_stream_selecting_consumers", "gauge", "Consumers of the stream that select frames by key.",
       "selecting_consumers"},
      {"streamrelay_stream_indexed_patterns", "gauge", "Distinct key patterns the stream's selecting consumers index.",
       "indexed_patterns"}};
  renderFields(e, fields, streams, &streamLabel);
  static const Field keys[] = {
      {"streamrelay_stream_keyed_frames_total", "counter", "Frames of the stream whose key was found.", "keyed"},
      {"streamrelay_stream_frames_without_key_total", "counter", "Frames of the stream whose key could not be found.",
       "without_key"},
      {"streamrelay_stream_distinct_keys", "gauge", "Distinct keys seen on the stream (a bounded count).", "distinct"}};
  renderFields(e, keys, streams, &streamLabel, "keys");
  static const Field lastValues[] = {
      {"streamrelay_stream_last_value_keys", "gauge", "Keys whose newest frame the stream keeps for snapshots.", "keys"},
      {"streamrelay_stream_last_value_evictions_total", "counter",
       "Keys dropped from the stream's last values for newer ones (max_keys reached).", "evictions"}};
  renderFields(e, lastValues, streams, &streamLabel, "last_value");
  static const Field log[] = {
      {"streamrelay_stream_log_first_seq", "gauge", "Seq of the oldest frame the stream's log keeps.", "first_seq"},
      {"streamrelay_stream_log_last_seq", "gauge", "Seq of the newest frame the stream's log has written.", "last_seq"},
      {"streamrelay_stream_log_fsynced_seq", "gauge", "Every frame up to this seq the log wrote is on the disk.",
       "fsynced_seq"},
      {"streamrelay_stream_log_reserved_seq", "gauge",
       "The stream may hand out seqs up to this one; a restart after a crash goes on after it.", "reserved_seq"},
      {"streamrelay_stream_log_bytes", "gauge", "Bytes the stream's log keeps on the disk.", "bytes"},
      {"streamrelay_stream_log_segments", "gauge", "Segment files the stream's log keeps.", "segments"},
      {"streamrelay_stream_log_frames_written_total", "counter", "Frames the stream's log wrote since the start.",
       "frames_written"},
      {"streamrelay_stream_log_bytes_written_total", "counter", "Bytes the stream's log wrote since the start.",
       "bytes_written"},
      {"streamrelay_stream_log_write_errors_total", "counter",
       "Writes of the stream's log that failed (disk full, I/O error): their frames are a gap in the log.",
       "write_errors"},
      {"streamrelay_stream_log_readers", "gauge", "Subscribers being served from the stream's log now.", "readers"},
      {"streamrelay_stream_log_frames_read_total", "counter",
       "Frames read from the stream's log for subscribers since the start.", "frames_read"},
      {"streamrelay_stream_log_read_ahead_bytes", "gauge",
       "Bytes the log's readers hold that their subscribers have not taken yet.", "read_ahead_bytes"}};
  renderFields(e, log, streams, &streamLabel, "log");
}

std::string listenerLabel(const Object::Ptr& l) { return label("listener", l->getValue<std::string>("name")); }

std::string consumerLabels(const Object::Ptr& c) {
  return label("consumer", c->getValue<std::string>("name")) + "," + label("kind", c->getValue<std::string>("kind"));
}

void renderListeners(Exposition& e, const Array::Ptr& listeners) {
  static const Field fields[] = {
      {"streamrelay_listener_clients", "gauge", "Subscribers connected to the listener.", "clients"},
      {"streamrelay_listener_pending_clients", "gauge",
       "Connections in their set-up (TLS handshake, hello, authentication), not yet admitted.", "pending"},
      {"streamrelay_listener_accepted_total", "counter", "Subscribers admitted by the listener.", "accepted"}};
  renderFields(e, fields, listeners, &listenerLabel);
  e.family("streamrelay_listener_refused_total", "counter", "Connections closed at accept, by reason.");
  for (std::size_t i = 0; i < listeners->size(); ++i) {
    Object::Ptr l = listeners->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_listener_refused_total", listenerLabel(l) + ",reason=\"max_clients\"",
             l->getValue<double>("refused_max_clients"));
    e.sample("streamrelay_listener_refused_total", listenerLabel(l) + ",reason=\"max_pending_clients\"",
             l->getValue<double>("refused_max_pending_clients"));
    e.sample("streamrelay_listener_refused_total", listenerLabel(l) + ",reason=\"allow\"", l->getValue<double>("refused_allow"));
    e.sample("streamrelay_listener_refused_total", listenerLabel(l) + ",reason=\"lost_before_admission\"",
             l->getValue<double>("lost_before_admission"));
  }
  e.family("streamrelay_listener_disconnects_total", "counter", "Subscribers disconnected, by reason.");
  for (std::size_t i = 0; i < listeners->size(); ++i) {
    Object::Ptr l = listeners->getObject(static_cast<unsigned>(i));
    for (const auto& reason : *l->getObject("disconnects"))
      e.sample("streamrelay_listener_disconnects_total", listenerLabel(l) + "," + label("reason", reason.first),
               reason.second.convert<double>());
  }
}

void renderConsumers(Exposition& e, const Array::Ptr& consumers) {
  static const Field fields[] = {
      {"streamrelay_consumer_queue_frames", "gauge", "Frames waiting in the consumer's queue.", "queue_frames"},
      {"streamrelay_consumer_queue_bytes", "gauge", "Bytes waiting in the consumer's queue.", "queue_bytes"},
      {"streamrelay_consumer_lag_seconds", "gauge", "How long the oldest frame waiting in the consumer's queue has waited.",
       "lag_seconds"},
      {"streamrelay_consumer_delivered_frames_total", "counter",
       "Frames written to the subscriber or handed to the plugin.", "delivered"},
      {"streamrelay_consumer_dropped_frames_total", "counter", "Frames the consumer lost to its overflow policy.",
       "dropped"},
      {"streamrelay_consumer_conflated_frames_total", "counter",
       "Frames skipped for a newer frame of their key while the consumer was behind (on_full: conflate).", "conflated"},
      {"streamrelay_consumer_rate_skipped_frames_total", "counter",
       "Frames skipped for a newer frame of their key within the subscriber's max_rate_per_key.", "rate_skipped"}};
  renderFields(e, fields, consumers, &consumerLabels);
}

// isolation: process — the instances whose plugin runs in a child process of its own.
void renderIsolation(Exposition& e, const Array::Ptr& plugins) {
  e.family("streamrelay_plugin_isolated", "gauge", "1 if the plugin instance runs in a child process of its own.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_plugin_isolated", label("plugin", p->getValue<std::string>("name")), p->has("process") ? 1 : 0);
  }
  e.family("streamrelay_plugin_restarts_total", "counter",
           "Child processes of an isolated plugin instance started again after one ended.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    if (Object::Ptr c = p->getObject("process"))
      e.sample("streamrelay_plugin_restarts_total", label("plugin", p->getValue<std::string>("name")),
               c->getValue<double>("restarts"));
  }
  e.family("streamrelay_plugin_kills_total", "counter",
           "Child processes of an isolated plugin instance killed by the relay, by reason.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    Object::Ptr c = p->getObject("process");
    if (!c) continue;
    const std::string plugin = label("plugin", p->getValue<std::string>("name"));
    e.sample("streamrelay_plugin_kills_total", plugin + "," + label("reason", "watchdog"),
             c->getValue<double>("watchdog_kills"));
    e.sample("streamrelay_plugin_kills_total", plugin + "," + label("reason", "memory_limit"),
             c->getValue<double>("memory_limit_kills"));
  }
  e.family("streamrelay_plugin_last_exit_info", "gauge",
           "How the last child process of an isolated plugin instance ended (the reason label; 1).");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    Object::Ptr c = p->getObject("process");
    if (c && !c->getValue<std::string>("last_exit").empty())
      e.sample("streamrelay_plugin_last_exit_info",
               label("plugin", p->getValue<std::string>("name")) + "," + label("reason", c->getValue<std::string>("last_exit")), 1);
  }
}

void renderPlugins(Exposition& e, const Array::Ptr& plugins) {
  e.family("streamrelay_plugin_failures_total", "counter", "Plugin callbacks that failed.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_plugin_failures_total", label("plugin", p->getValue<std::string>("name")), p->getValue<double>("failures"));
  }
  e.family("streamrelay_plugin_disabled", "gauge", "1 if the plugin instance was disabled.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    e.sample("streamrelay_plugin_disabled", label("plugin", p->getValue<std::string>("name")), p->getValue<bool>("disabled") ? 1 : 0);
  }
  e.family("streamrelay_plugin_gauge", "gauge", "Gauges set by plugins through the host API.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    for (const auto& gauge : *p->getObject("gauges"))
      e.sample("streamrelay_plugin_gauge", label("plugin", p->getValue<std::string>("name")) + "," + label("gauge", gauge.first),
               gauge.second.convert<double>());
  }
  e.family("streamrelay_plugin_events_total", "counter", "Counters kept by plugins through the host API.");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    for (const auto& counter : *p->getObject("counters"))
      e.sample("streamrelay_plugin_events_total",
               label("plugin", p->getValue<std::string>("name")) + "," + label("event", counter.first),
               counter.second.convert<double>());
  }
  renderIsolation(e, plugins);
}

}  // namespace

std::string renderPrometheus(const std::string& statsJson) {
  Poco::JSON::Parser parser;
  Object::Ptr stats = parser.parse(statsJson).extract<Object::Ptr>();
  Exposition e;
  e.metric("streamrelay_frames_received_total", "counter", "Frames received from the upstream.",
           stats->getValue<double>("frames_received"));
  e.metric("streamrelay_bytes_received_total", "counter", "Payload bytes received from the upstream.",
           stats->getValue<double>("bytes_received"));
  renderSources(e, stats->getArray("sources"));
  renderStreams(e, stats->getArray("streams"));
  renderListeners(e, stats->getArray("listeners"));
  renderConsumers(e, stats->getArray("consumers"));
  renderPlugins(e, stats->getArray("plugins"));
  Array::Ptr loadFailures = stats->getArray("plugin_load_failures");
  e.family("streamrelay_plugin_load_failed", "gauge", "1 for each plugin file whose current version did not load.");
  for (std::size_t i = 0; i < loadFailures->size(); ++i)
    e.sample("streamrelay_plugin_load_failed",
             label("file", loadFailures->getObject(static_cast<unsigned>(i))->getValue<std::string>("file")), 1);
  e.histogram("streamrelay_frame_size_bytes", "Sizes of the frames received.", stats->getObject("frame_size_bytes"));
  e.histogram("streamrelay_write_latency_seconds", "From receiving a frame to writing it to a subscriber.",
              stats->getObject("write_latency_seconds"));
  return e.str();
}

}  // namespace streamrelay::plugins
