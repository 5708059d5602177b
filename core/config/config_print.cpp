// effectiveConfigYaml: the configuration as the relay will run it, defaults
// filled in (what --check-config prints).
#include <yaml-cpp/yaml.h>

#include "config.hpp"

namespace streamrelay {

namespace {

void emitFraming(YAML::Emitter& out, const FramingSpec& f) {
  out << YAML::Key << "framing" << YAML::Value << YAML::Flow << YAML::BeginMap;
  switch (f.type) {
    case FramingType::LengthPrefix:
      out << YAML::Key << "type" << YAML::Value << "length-prefix";
      out << YAML::Key << "width" << YAML::Value << f.width;
      out << YAML::Key << "byte_order" << YAML::Value << (f.byteOrder == ByteOrder::Big ? "big" : "little");
      break;
    case FramingType::Delimiter:
      out << YAML::Key << "type" << YAML::Value << "delimiter";
      out << YAML::Key << "delimiter" << YAML::Value << YAML::DoubleQuoted << f.delimiter;
      out << YAML::Key << "strip" << YAML::Value << f.strip;
      break;
    case FramingType::Fixed:
      out << YAML::Key << "type" << YAML::Value << "fixed";
      out << YAML::Key << "size" << YAML::Value << f.fixedSize;
      break;
  }
  out << YAML::Key << "max_frame_bytes" << YAML::Value << f.maxFrameBytes << YAML::EndMap;
}

void emitAllow(YAML::Emitter& out, const CidrList& allow) {
  out << YAML::Key << "allow" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const Cidr& rule : allow.rules()) out << rule.text();
  out << YAML::EndSeq;
}

void emitInputs(YAML::Emitter& out, const std::vector<std::string>& inputs) {
  out << YAML::Key << "inputs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& input : inputs) out << input;
  out << YAML::EndSeq;
}

// One source's keys, as a value under its name.
void emitSource(YAML::Emitter& out, const UpstreamConfig& u) {
  out << YAML::Key << u.name << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << toString(u.type);
  switch (u.type) {
    case UpstreamType::Tcp:
      out << YAML::Key << "host" << YAML::Value << u.host << YAML::Key << "port" << YAML::Value << u.port;
      out << YAML::Key << "send_on_connect" << YAML::Value << YAML::DoubleQuoted
          << (u.sendOnConnect.empty() ? "" : "(set)");
      out << YAML::Key << "reconnect" << YAML::Value << YAML::Flow << YAML::BeginMap
          << YAML::Key << "initial_delay_ms" << YAML::Value << u.reconnect.initialDelayMs
          << YAML::Key << "max_delay_ms" << YAML::Value << u.reconnect.maxDelayMs << YAML::EndMap;
      out << YAML::Key << "idle_timeout_ms" << YAML::Value << u.idleTimeoutMs;
      break;
    case UpstreamType::Listen:
      out << YAML::Key << "bind" << YAML::Value << u.bind;
      out << YAML::Key << "max_publishers" << YAML::Value << u.maxPublishers;
      emitAllow(out, u.allow);
      out << YAML::Key << "idle_timeout_ms" << YAML::Value << u.idleTimeoutMs;
      break;
    case UpstreamType::Stdin:
      break;
    case UpstreamType::Generator:
      out << YAML::Key << "rate" << YAML::Value << u.rate << YAML::Key << "size" << YAML::Value << u.size;
      out << YAML::Key << "count" << YAML::Value << u.count;
      break;
  }
  emitFraming(out, u.framing);
  out << YAML::EndMap;
}

void emitQueue(YAML::Emitter& out, const QueueLimits& q) {
  out << YAML::Key << "queue" << YAML::Value << YAML::Flow << YAML::BeginMap
      << YAML::Key << "max_frames" << YAML::Value << q.maxFrames
      << YAML::Key << "max_bytes" << YAML::Value << q.maxBytes
      << YAML::Key << "on_full" << YAML::Value << toString(q.onFull) << YAML::EndMap;
}

void emitListener(YAML::Emitter& out, const ListenerConfig& l) {
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << l.name << YAML::Key << "bind" << YAML::Value << l.bind;
  emitInputs(out, l.inputs);
  emitFraming(out, l.framing);
  out << YAML::Key << "max_clients" << YAML::Value << l.maxClients;
  emitQueue(out, l.queue);
  emitAllow(out, l.allow);
  out << YAML::Key << "send_buffer_bytes" << YAML::Value;
  if (l.sendBufferBytes == ListenerConfig::kSendBufferAuto) out << "auto";
  else out << l.sendBufferBytes;
  out << YAML::Key << "write_deadline_ms" << YAML::Value << l.writeDeadlineMs;
  out << YAML::EndMap;
}

void emitPlugins(YAML::Emitter& out, const PluginsConfig& p) {
  out << YAML::Key << "plugins" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "directory" << YAML::Value << p.directory;
  out << YAML::Key << "allow_insecure" << YAML::Value << p.allowInsecure;
  out << YAML::Key << "rescan_ms" << YAML::Value << p.rescanMs;
  out << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
  for (const PluginInstanceConfig& i : p.instances) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << i.name << YAML::Key << "type" << YAML::Value << i.type;
    emitInputs(out, i.inputs);
    emitQueue(out, i.queue);
    out << YAML::Key << "max_failures" << YAML::Value << i.maxFailures;
    out << YAML::Key << "config" << YAML::Value << YAML::Load(i.configYaml);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

}  // namespace

std::string effectiveConfigYaml(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  // One source named "upstream" prints as the `upstream:` shorthand.
  if (c.sources.size() == 1 && c.sources.front().name == "upstream") {
    emitSource(out, c.sources.front());
  } else {
    out << YAML::Key << "sources" << YAML::Value << YAML::BeginMap;
    for (const UpstreamConfig& source : c.sources) emitSource(out, source);
    out << YAML::EndMap;
  }
  out << YAML::Key << "listeners" << YAML::Value << YAML::BeginSeq;
  for (const ListenerConfig& l : c.listeners) emitListener(out, l);
  out << YAML::EndSeq;
  if (!c.plugins.directory.empty()) emitPlugins(out, c.plugins);
  out << YAML::Key << "log" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "level"
      << YAML::Value << c.logLevel << YAML::EndMap;
  out << YAML::Key << "shutdown_timeout_ms" << YAML::Value << c.shutdownTimeoutMs;
  out << YAML::Key << "writer_threads" << YAML::Value << c.writerThreads;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace streamrelay
