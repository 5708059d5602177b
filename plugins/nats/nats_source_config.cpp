// SPDX-License-Identifier: Apache-2.0
#include "nats_source_config.hpp"

#include <charconv>
#include <ctime>
#include <string_view>

namespace streamrelay::plugins {

const ConfigKeys& natsSourceConfigKeys() {
  static const ConfigKeys keys{
      stringsKey("servers").needed().url().doc("nats://HOST:PORT or tls://HOST:PORT, tried in order"),
      stringKey("subject").needed().doc("the subject read (JetStream: the consumer's filter subject)"),
      groupKey("jetstream").doc("present: an ordered consumer on a JetStream stream (absent: core NATS)"),
      stringKey("jetstream.stream").doc("the JetStream stream (required with jetstream)"),
      stringKey("jetstream.deliver").def("new").oneOf("new|all")
          .doc("where a source without a kept position starts: new messages, or all the stream has"),
      intKey("jetstream.from_seq", 0, 0, 9007199254740992.0).doc("instead of deliver: from this stream sequence"),
      stringKey("jetstream.from_time").doc("instead of deliver: from this UTC time (2026-12-03T21:00:00Z)"),
      stringKey("jetstream.writer_stream")
          .doc("the writer's stream in the marks (Nats-Msg-Id: EPOCH-STREAM-SEQ) mirrored; marks of another are "
               "refused (counted). Not given: the stream of the first marked message read"),
      intKey("jetstream.reorder_window_ms", 10000, 0, 600000)
          .doc("a relay's frames stored out of order (a sink's retry after a failover) are waited for this long; "
               "then the missing ones are a gap"),
      intKey("max_pending_messages", 1000000, 1000, 100000000)
          .doc("core NATS: messages waiting for the source at most; more are dropped by cnats (counted)"),
      stringKey("user").doc("with password"),
      stringKey("password").secret().doc("with user"),
      stringKey("token").secret().doc("an authentication token"),
      stringKey("creds_file").doc("a NATS credentials file (JWT and seed)"),
      groupKey("tls").doc("present: TLS"),
      boolKey("tls.enabled", true).doc("false: plain TCP despite the tls group"),
      stringKey("tls.ca_file").doc("CA certificates that sign the servers'"),
      stringKey("tls.cert_file").doc("a client certificate, with key_file"),
      stringKey("tls.key_file").doc("the client certificate's key"),
  };
  return keys;
}

namespace {

bool digits(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), out);
  return error == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::optional<WriterMark> parseMsgId(const char* id, std::size_t size) {
  if (!id) return std::nullopt;
  const std::string_view text(id, size);
  const std::size_t first = text.find('-');
  const std::size_t last = text.rfind('-');
  if (first == std::string_view::npos || last <= first + 1) return std::nullopt;  // no stream name between them
  WriterMark mark;
  if (!digits(text.substr(0, first), mark.epoch) || !digits(text.substr(last + 1), mark.seq)) return std::nullopt;
  if (mark.epoch == 0 || mark.seq == 0) return std::nullopt;
  mark.stream = std::string(text.substr(first + 1, last - first - 1));
  return mark;
}

std::optional<std::int64_t> parseUtcTime(const std::string& text) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  std::int64_t nanos = 0;
  if (*end == '.') {
    ++end;
    int places = 0;
    while (*end >= '0' && *end <= '9') {
      if (places < 9) nanos = nanos * 10 + (*end - '0');
      ++places;
      ++end;
    }
    if (places == 0) return std::nullopt;
    for (int i = places; i < 9; ++i) nanos *= 10;
  }
  if (std::string_view(end) != "Z") return std::nullopt;
  const std::time_t seconds = ::timegm(&tm);
  if (seconds < 0) return std::nullopt;
  return static_cast<std::int64_t>(seconds) * 1000000000 + nanos;
}

NatsSourceConfig parseNatsSourceConfig(const std::string& yaml) {
  const ConfigReader config(yaml, natsSourceConfigKeys());
  auto fail = &ConfigReader::fail;
  NatsSourceConfig c;
  static_cast<NatsConnectionConfig&>(c) = readNatsConnection(config);
  c.subject = config.string("subject");
  if (c.subject.empty() || c.subject.find_first_of(" \t\r\n") != std::string::npos)
    fail("subject", "must be a NATS subject (no spaces)");
  c.jetstream = config.given("jetstream");
  if (c.jetstream) {
    c.stream = config.string("jetstream.stream");
    if (c.stream.empty()) fail("jetstream.stream", "is required with jetstream (the stream to read)");
    const bool fromSeq = config.given("jetstream.from_seq");
    const bool fromTime = config.given("jetstream.from_time");
    if (fromSeq + fromTime + config.given("jetstream.deliver") > 1)
      fail("jetstream", "deliver, from_seq and from_time: one of them at most");
    c.deliver = config.string("jetstream.deliver") == "all" ? NatsSourceConfig::Deliver::All
                                                            : NatsSourceConfig::Deliver::New;
    if (fromSeq) {
      c.deliver = NatsSourceConfig::Deliver::FromSeq;
      c.fromSeq = static_cast<std::uint64_t>(config.integer("jetstream.from_seq"));
      if (c.fromSeq == 0) fail("jetstream.from_seq", "must be 1 or more (a stream sequence)");
    }
    if (fromTime) {
      c.deliver = NatsSourceConfig::Deliver::FromTime;
      const std::optional<std::int64_t> at = parseUtcTime(config.string("jetstream.from_time"));
      if (!at) fail("jetstream.from_time", "must be a UTC time as 2026-12-03T21:00:00Z");
      c.fromTimeNs = *at;
    }
  }
  c.writerStream = config.string("jetstream.writer_stream");
  if (config.given("jetstream.writer_stream") && c.writerStream.empty())
    fail("jetstream.writer_stream", "must not be empty (a relay stream's name)");
  c.reorderWindowMs = static_cast<int>(config.integer("jetstream.reorder_window_ms"));
  c.maxPendingMessages = static_cast<int>(config.integer("max_pending_messages"));
  return c;
}

}  // namespace streamrelay::plugins
