// SPDX-License-Identifier: Apache-2.0
#include "hello.hpp"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <limits>
#include <sstream>

#include "rfc3339.hpp"
#include "streamrelay/wire.hpp"

namespace streamrelay {
namespace protocol {

namespace {

// A seq or epoch: a JSON number or a decimal string (JavaScript clients keep
// 64-bit integers as strings).
std::uint64_t unsignedOf(const Poco::Dynamic::Var& value, const std::string& key) {
  try {
    if (value.isString()) {
      const std::string text = value.extract<std::string>();
      std::size_t used = 0;
      if (text.empty() || text[0] == '-') throw HelloError("");
      const unsigned long long n = std::stoull(text, &used);
      if (used != text.size()) throw HelloError("");
      return n;
    }
    if (value.isInteger() && !value.isSigned()) return value.convert<std::uint64_t>();
    if (value.isInteger() && value.convert<std::int64_t>() >= 0) return value.convert<std::uint64_t>();
  } catch (const std::exception&) {
  }
  throw HelloError(key + ": expected a non-negative integer");
}

const char* const kRateError = "max_rate_per_key: expected milliseconds, an integer from 1 to 60000";

std::uint32_t rateOf(const Poco::Dynamic::Var& value) {
  if (!value.isInteger()) throw HelloError(kRateError);
  std::int64_t ms = 0;
  try {
    ms = value.convert<std::int64_t>();
  } catch (const std::exception&) {
    throw HelloError(kRateError);  // an unsigned beyond int64
  }
  if (ms < 1 || ms > kMaxRatePerKeyMs) throw HelloError(kRateError);
  return static_cast<std::uint32_t>(ms);
}

std::uint32_t rateOf(const std::string& text) {
  if (text.empty() || text.size() > 8 || text.find_first_not_of("0123456789") != std::string::npos)
    throw HelloError(std::string(kRateError) + ", not '" + printable(text, 64) + "'");
  const unsigned long ms = std::stoul(text);
  if (ms < 1 || ms > kMaxRatePerKeyMs)
    throw HelloError(std::string(kRateError) + ", not '" + printable(text, 64) + "'");
  return static_cast<std::uint32_t>(ms);
}

std::string toJson(const Poco::JSON::Object& object) {
  std::ostringstream text;
  object.stringify(text);
  return text.str();
}

const char* const kResumeForms =
    "resume: expected {\"epoch\": E, \"after_seq\": S}, {\"after_seq\": {\"STREAM\": {\"epoch\": E, \"seq\": S}}}, "
    "{\"from_seq\": N} or {\"from_time\": \"RFC 3339\"}";

// resume.from_seq: a seq from 1 on.
std::uint64_t fromSeqOf(const Poco::Dynamic::Var& value, const std::string& key) {
  const std::uint64_t seq = unsignedOf(value, key);
  if (seq == 0) throw HelloError(key + ": expected a seq from 1 on, not 0");
  return seq;
}

// resume.from_time: an RFC 3339 date-time.
std::int64_t fromTimeOf(const std::string& text, const std::string& key) {
  const std::optional<std::int64_t> unixNs = parseRfc3339(text);
  if (!unixNs)
    throw HelloError(key + ": expected an RFC 3339 time such as 2026-12-03T14:05:00Z, not '" + printable(text, 64) + "'");
  return *unixNs;
}

// after_seq's entry for `stream`: a seq, or {"epoch": E, "seq": S}.
void positionOf(const std::string& stream, const Poco::Dynamic::Var& value, Hello::Resume& r) {
  if (value.type() != typeid(Poco::JSON::Object::Ptr)) {
    r.byStream[stream] = unsignedOf(value, "resume.after_seq." + stream);
    return;
  }
  const auto position = value.extract<Poco::JSON::Object::Ptr>();
  if (position->size() != 2 || !position->has("epoch") || !position->has("seq")) throw HelloError(kResumeForms);
  r.epochOf[stream] = unsignedOf(position->get("epoch"), "resume.after_seq." + stream + ".epoch");
  r.byStream[stream] = unsignedOf(position->get("seq"), "resume.after_seq." + stream + ".seq");
}

Hello::Resume resumeOf(const Poco::Dynamic::Var& value) {
  if (value.type() != typeid(Poco::JSON::Object::Ptr)) throw HelloError(kResumeForms);
  const auto resume = value.extract<Poco::JSON::Object::Ptr>();
  Hello::Resume r;
  if (resume->size() == 1 && resume->has("from_seq")) {
    r.fromSeq = fromSeqOf(resume->get("from_seq"), "resume.from_seq");
    return r;
  }
  if (resume->size() == 1 && resume->has("from_time")) {
    const Poco::Dynamic::Var time = resume->get("from_time");
    if (!time.isString()) throw HelloError("resume.from_time: expected an RFC 3339 time as a string");
    r.fromUnixNs = fromTimeOf(time.extract<std::string>(), "resume.from_time");
    return r;
  }
  if (!resume->has("after_seq")) throw HelloError(kResumeForms);
  if (resume->has("epoch")) r.epoch = unsignedOf(resume->get("epoch"), "resume.epoch");
  const Poco::Dynamic::Var after = resume->get("after_seq");
  if (after.type() == typeid(Poco::JSON::Object::Ptr)) {
    for (const auto& [stream, position] : *after.extract<Poco::JSON::Object::Ptr>()) positionOf(stream, position, r);
  } else {
    r.afterSeq = unsignedOf(after, "resume.after_seq");
  }
  // Every position needs an epoch: the top level's or its own.
  if (!resume->has("epoch") && (r.afterSeq || r.epochOf.size() != r.byStream.size())) throw HelloError(kResumeForms);
  return r;
}

}  // namespace

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte < 0x20 || byte == 0x7f ? '?' : c;
  }
  if (text.size() > limit) out += "...";
  return out;
}

Hello parseHello(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  Poco::JSON::Object::Ptr root;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(std::string(line));
    if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) throw HelloError("the hello must be a JSON object");
    root = parsed.extract<Poco::JSON::Object::Ptr>();
  } catch (const HelloError&) {
    throw;
  } catch (const Poco::Exception& e) {
    throw HelloError("the hello is not JSON: " + e.message());
  }
  Hello hello;
  for (const auto& [name, value] : *root) {
    if (name == "token") {
      if (!value.isString()) throw HelloError("token: expected a string");
      hello.token = value.extract<std::string>();
    } else if (name == "inputs") {
      if (value.type() != typeid(Poco::JSON::Array::Ptr)) throw HelloError("inputs: expected a list of stream names");
      for (const auto& input : *value.extract<Poco::JSON::Array::Ptr>()) {
        if (!input.isString()) throw HelloError("inputs: expected a list of stream names");
        hello.inputs.push_back(input.extract<std::string>());
      }
    } else if (name == "resume") {
      hello.resume = resumeOf(value);
    } else if (name == "select") {
      if (value.type() != typeid(Poco::JSON::Array::Ptr)) throw HelloError("select: expected a list of patterns");
      for (const auto& pattern : *value.extract<Poco::JSON::Array::Ptr>()) {
        if (!pattern.isString()) throw HelloError("select: expected a list of patterns");
        hello.select.push_back(pattern.extract<std::string>());
      }
    } else if (name == "snapshot") {
      if (!value.isBoolean()) throw HelloError("snapshot: expected true or false");
      hello.snapshot = value.extract<bool>();
    } else if (name == "max_rate_per_key") {
      hello.maxRatePerKeyMs = rateOf(value);
    } else {
      throw HelloError("unknown hello field '" + name +
                       "' (token, inputs, select, snapshot, max_rate_per_key, resume)");
    }
  }
  return hello;
}

namespace {

std::vector<std::string> commaList(const std::string& text) {
  std::vector<std::string> items;
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

}  // namespace

Hello::Resume resumeFromEventIds(std::string_view ids, const std::string& what) {
  Hello::Resume resume;
  bool first = true;
  const std::vector<std::string> items = commaList(std::string(ids));
  if (items.empty()) throw HelloError(what + ": expected EPOCH-SEQ or EPOCH-STREAM-SEQ,...");
  for (const std::string& item : items) {
    const std::optional<wire::EventId> id = wire::parseEventId(item);
    if (!id) throw HelloError(what + ": '" + item + "' is not EPOCH-SEQ or EPOCH-STREAM-SEQ");
    // Each position is in its stream's epoch (a logged stream keeps its own).
    if (first) resume.epoch = id->epoch;
    first = false;
    if (!id->stream.empty()) {
      resume.byStream[id->stream] = id->seq;
      resume.epochOf[id->stream] = id->epoch;
    } else if (items.size() == 1) resume.afterSeq = id->seq;
    else throw HelloError(what + ": with several positions, each names its stream (EPOCH-STREAM-SEQ)");
  }
  return resume;
}

Hello helloFromQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  Hello hello;
  for (const auto& [name, value] : query) {
    if (name == "token") hello.token = value;
    else if (name == "inputs") hello.inputs = commaList(value);
    else if (name == "select") hello.select = commaList(value);
    else if (name == "resume") hello.resume = resumeFromEventIds(value, "resume");
    else if (name == "from_seq") {
      if (!hello.resume) hello.resume = Hello::Resume();
      hello.resume->fromSeq = fromSeqOf(Poco::Dynamic::Var(value), "from_seq");
    } else if (name == "from_time") {
      if (!hello.resume) hello.resume = Hello::Resume();
      hello.resume->fromUnixNs = fromTimeOf(value, "from_time");
    }
    else if (name == "snapshot" && (value == "true" || value == "1")) hello.snapshot = true;
    else if (name == "snapshot" && (value == "false" || value == "0")) hello.snapshot = false;
    else if (name == "snapshot") throw HelloError("snapshot: expected true or false, not '" + printable(value, 64) + "'");
    else if (name == "max_rate_per_key") hello.maxRatePerKeyMs = rateOf(value);
    else
      throw HelloError("unknown query parameter '" + printable(name, 64) +
                       "' (token, inputs, select, snapshot, max_rate_per_key, resume, from_seq, from_time)");
  }
  return hello;
}

std::optional<std::uint64_t> sharedEpoch(const std::vector<StreamStart>& streams) {
  if (streams.empty()) return std::nullopt;
  for (const StreamStart& s : streams)
    if (s.epoch != streams.front().epoch) return std::nullopt;
  return streams.front().epoch;
}

std::string okAnswerJson(std::optional<std::uint64_t> epoch, const std::vector<StreamStart>& streams, int heartbeatMs,
                         const std::vector<std::pair<std::string, std::string>>& extra) {
  Poco::JSON::Object answer(Poco::JSON_PRESERVE_KEY_ORDER);
  answer.set("ok", true);
  if (epoch) answer.set("epoch", std::to_string(*epoch));
  std::optional<bool> recovered;  // every stream asked to resume recovered (none asked: absent)
  Poco::JSON::Object::Ptr byName = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const StreamStart& s : streams) {
    if (s.recovered) recovered = recovered.value_or(true) && *s.recovered;
    Poco::JSON::Object::Ptr one = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    one->set("id", s.id);
    one->set("epoch", std::to_string(s.epoch));
    one->set("first_seq", s.firstSeq);
    if (s.recovered) one->set("recovered", *s.recovered);
    byName->set(s.name, one);
  }
  if (recovered) answer.set("recovered", *recovered);
  // The single-stream case, as DESIGN writes it; with several, see `streams`.
  if (streams.size() == 1) answer.set("first_seq", streams.front().firstSeq);
  if (heartbeatMs > 0) answer.set("heartbeat_ms", heartbeatMs);
  for (const auto& [name, value] : extra) answer.set(name, value);
  answer.set("streams", byName);
  return toJson(answer);
}

std::string errorAnswerJson(const std::string& error) {
  Poco::JSON::Object answer(Poco::JSON_PRESERVE_KEY_ORDER);
  answer.set("ok", false);
  answer.set("error", error);
  return toJson(answer);
}

std::string okAnswer(std::optional<std::uint64_t> epoch, const std::vector<StreamStart>& streams, int heartbeatMs) {
  return wire::controlFrame(okAnswerJson(epoch, streams, heartbeatMs));
}

std::string errorAnswer(const std::string& error) { return wire::controlFrame(errorAnswerJson(error)); }

const std::string& heartbeatFrame() {
  static const std::string heartbeat = wire::controlFrame(wire::kHeartbeatJson);
  return heartbeat;
}

}  // namespace protocol
}  // namespace streamrelay
