// SPDX-License-Identifier: Apache-2.0
#pragma once
// The client's half of the `streamrelay` hello: the line it sends and the
// answer it reads (docs/protocol.md). Written once, used by client.hpp's
// Subscriber and by the relay's own `streamrelay` source, which follows
// another relay (core/sources/streamrelay_source.cpp). The standard library
// and mini_json.hpp only: no sockets.

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "streamrelay/mini_json.hpp"

namespace streamrelay {
namespace client {

enum class Recovery {
  NotAsked,      // the hello did not ask to resume (this stream): nothing was missed, nothing to recover
  Recovered,     // it continues right after the seq asked for: nothing missed
  NotRecovered,  // frames were missed: it continues at first_seq
};

// What the relay said to a hello.
struct Answer {
  std::uint64_t epoch = 0;      // sent as a decimal string (numbers are accepted too)
  Recovery recovery = Recovery::NotAsked;  // over every stream the hello asked to resume
  int heartbeatMs = 0;          // the relay sends a heartbeat after this long without a frame (0: none)
  struct Stream {
    std::uint16_t id = 0;
    std::uint64_t epoch = 0;  // the stream's own (the answer's top-level one where they share it)
    std::uint64_t firstSeq = 0;
    Recovery recovery = Recovery::NotAsked;
  };
  std::map<std::string, Stream> streams;
  std::string envelope;  // websocket: how frames come (none, header, json)
  std::string encoding;  // sse: how data comes (text, base64)
  std::string json;  // as received
};

// A position to resume from: the epoch and, per stream, the last seq had.
// A stream whose epoch is not the shared one (a relay's logged or mirrored
// stream beside others) has its own in `epochs`.
struct ResumePoint {
  std::uint64_t epoch = 0;
  std::map<std::string, std::uint64_t> afterSeq;
  std::map<std::string, std::uint64_t> epochs;
  std::uint64_t epochOf(const std::string& stream) const {
    auto it = epochs.find(stream);
    return it == epochs.end() ? epoch : it->second;
  }
  // Whether every stream's position has the shared epoch (the older hello forms say it once).
  bool oneEpoch() const {
    for (const auto& entry : afterSeq)
      if (epochOf(entry.first) != epoch) return false;
    return true;
  }
};

// Thrown when the relay refused the hello (bad token, unknown input): no
// reconnect would change that.
struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a hello asks for, beside where to resume.
struct HelloRequest {
  std::string token;                // presented to the relay
  std::vector<std::string> inputs;  // streams wanted (empty: all)
  std::vector<std::string> select;  // key patterns wanted (empty: every frame)
  bool snapshot = false;            // first the newest frame of each selected key
  // Where a first connection (no resume point yet) starts, if not at the
  // newest frame: a seq, or a time (RFC 3339). A resume point wins.
  std::optional<std::uint64_t> fromSeq;
  std::string fromTime;
};

namespace detail {
inline std::string quoted(const std::string& text) {
  std::string out;
  appendJsonString(out, text);
  return out;
}

inline Recovery recoveryOf(const JsonValue& object) {
  const JsonValue* recovered = object.find("recovered");
  if (!recovered || recovered->type != JsonValue::Type::Bool) return Recovery::NotAsked;
  return recovered->boolean ? Recovery::Recovered : Recovery::NotRecovered;
}

inline std::uint64_t unsignedField(const JsonValue& object, const char* key) {
  std::uint64_t value = 0;
  const JsonValue* field = object.find(key);
  if (field && !field->asUnsigned(value))
    throw std::runtime_error(std::string("protocol error: the answer's ") + key + " is not an unsigned integer");
  return value;
}
}  // namespace detail

// The hello line (newline included), resuming after `position` if set.
inline std::string helloLine(const HelloRequest& request, const std::optional<ResumePoint>& position) {
  std::string hello = "{";
  if (!request.token.empty()) hello += "\"token\":" + detail::quoted(request.token) + ",";
  if (!request.inputs.empty()) {
    hello += "\"inputs\":[";
    for (std::size_t i = 0; i < request.inputs.size(); ++i) hello += (i ? "," : "") + detail::quoted(request.inputs[i]);
    hello += "],";
  }
  if (!request.select.empty()) {
    hello += "\"select\":[";
    for (std::size_t i = 0; i < request.select.size(); ++i) hello += (i ? "," : "") + detail::quoted(request.select[i]);
    hello += "],";
  }
  // Every connection asks: the relay leaves the snapshot out of a resume
  // that continues, and gives it where the resume cannot (a gap to fill).
  if (request.snapshot) hello += "\"snapshot\":true,";
  if (!position && request.fromSeq) hello += "\"resume\":{\"from_seq\":" + std::to_string(*request.fromSeq) + "},";
  else if (!position && !request.fromTime.empty())
    hello += "\"resume\":{\"from_time\":" + detail::quoted(request.fromTime) + "},";
  if (position && position->afterSeq.size() == 1 && position->afterSeq.count("")) {  // the only stream
    hello += "\"resume\":{\"epoch\":\"" + std::to_string(position->epoch) +
             "\",\"after_seq\":" + std::to_string(position->afterSeq.at("")) + "},";
  } else if (position && !position->afterSeq.empty()) {
    // One epoch for every stream: said once. Otherwise each position names its stream's.
    const bool oneEpoch = position->oneEpoch();
    hello += oneEpoch ? "\"resume\":{\"epoch\":\"" + std::to_string(position->epoch) + "\",\"after_seq\":{"
                      : std::string("\"resume\":{\"after_seq\":{");
    bool first = true;
    for (const auto& [stream, seq] : position->afterSeq) {
      const std::uint64_t epoch = position->epochOf(stream);
      if (!oneEpoch && epoch == 0) continue;  // nothing known to resume in
      hello += (first ? "" : ",") + detail::quoted(stream) + ":" +
               (oneEpoch ? std::to_string(seq)
                         : "{\"epoch\":\"" + std::to_string(epoch) + "\",\"seq\":" + std::to_string(seq) + "}");
      first = false;
    }
    hello += "}},";
  }
  if (hello.back() == ',') hello.pop_back();
  return hello + "}\n";
}

// The answer to a hello (a control frame's JSON without a `type`). Throws
// Refused when the relay refused it, std::runtime_error when it is malformed.
inline Answer parseAnswer(const JsonValue& answer, const std::string& json) {
  const JsonValue* ok = answer.find("ok");
  if (!ok || ok->type != JsonValue::Type::Bool || !ok->boolean) {
    const JsonValue* error = answer.find("error");
    throw Refused("the relay refused the hello: " + (error ? error->text : json));
  }
  Answer next;
  next.json = json;
  next.epoch = detail::unsignedField(answer, "epoch");
  next.recovery = detail::recoveryOf(answer);
  next.heartbeatMs = static_cast<int>(std::min<std::uint64_t>(detail::unsignedField(answer, "heartbeat_ms"), 1u << 30));
  if (const JsonValue* envelope = answer.find("envelope")) next.envelope = envelope->text;
  if (const JsonValue* encoding = answer.find("encoding")) next.encoding = encoding->text;
  if (const JsonValue* streams = answer.find("streams")) {
    for (const auto& [name, s] : streams->fields) {
      Answer::Stream one;
      one.id = static_cast<std::uint16_t>(detail::unsignedField(s, "id"));
      one.epoch = s.find("epoch") ? detail::unsignedField(s, "epoch") : next.epoch;
      one.firstSeq = detail::unsignedField(s, "first_seq");
      one.recovery = detail::recoveryOf(s);
      next.streams[name] = one;
    }
  }
  return next;
}

}  // namespace client
}  // namespace streamrelay
