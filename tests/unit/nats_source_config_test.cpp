// SPDX-License-Identifier: Apache-2.0
// The nats source's config and the pieces of a message it reads: the
// relay's mark (Nats-Msg-Id: EPOCH-STREAM-SEQ) and from_time.

#include <catch2/catch.hpp>

#include <cstring>
#include <stdexcept>
#include <string>

#include "nats/nats_source_config.hpp"

using namespace streamrelay::plugins;

namespace {
std::optional<WriterMark> mark(const std::string& id) { return parseMsgId(id.data(), id.size()); }
}  // namespace

TEST_CASE("nats source: a Nats-Msg-Id as the nats sink writes it reads as the writer's (epoch, stream, seq)", "[nats][edge]") {
  REQUIRE(mark("77-upstream-5"));
  CHECK(mark("77-upstream-5")->epoch == 77);
  CHECK(mark("77-upstream-5")->stream == "upstream");
  CHECK(mark("77-upstream-5")->seq == 5);
  CHECK(mark("18446744073709551615-a-b-c-18446744073709551615")->epoch == 18446744073709551615ull);  // '-' in the name
  CHECK(mark("18446744073709551615-a-b-c-18446744073709551615")->stream == "a-b-c");
  for (const char* bad : {"", "-", "--", "77", "77-5", "77--5", "x-upstream-5", "77-upstream-", "77-upstream-5x",
                          "0-upstream-5", "77-upstream-0", "18446744073709551616-s-1", "77-s-+5", " 77-s-5",
                          "77-s-5 ", "123456789012345678901-s-1"})
    CHECK_FALSE(mark(bad));
  CHECK_FALSE(parseMsgId(nullptr, 4));
}

TEST_CASE("nats source: from_time is a UTC time", "[nats][edge]") {
  CHECK(parseUtcTime("1970-01-01T00:00:01Z") == 1000000000);
  CHECK(parseUtcTime("2026-12-03T21:00:00.25Z") == 1796331600250000000);
  for (const char* bad : {"", "2026-12-03", "2026-12-03T21:00:00", "2026-12-03T21:00:00+01:00", "2026-12-03T21:00:00.Z",
                          "yesterday", "2026-12-03T21:00:00Zjunk"})
    CHECK_FALSE(parseUtcTime(bad));
}

TEST_CASE("nats source: its config is read by its keys, one line naming a bad one", "[nats][edge][config]") {
  const NatsSourceConfig c =
      parseNatsSourceConfig("{servers: ['nats://a:4222'], subject: s, jetstream: {stream: R, from_seq: 42}}");
  CHECK(c.jetstream);
  CHECK(c.stream == "R");
  CHECK(c.deliver == NatsSourceConfig::Deliver::FromSeq);
  CHECK(c.fromSeq == 42);
  CHECK_FALSE(parseNatsSourceConfig("{servers: ['nats://a:4222'], subject: s}").jetstream);
  const auto error = [](const std::string& yaml) {
    try {
      parseNatsSourceConfig(yaml);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(error("{servers: ['nats://a:4222'], subject: s, jetstream: {}}").find("jetstream.stream") != std::string::npos);
  CHECK(error("{servers: ['nats://a:4222'], subject: s, jetstream: {stream: R, deliver: all, from_seq: 3}}")
            .find("one of them at most") != std::string::npos);
  CHECK(error("{servers: ['nats://a:4222'], subject: s, jetstream: {stream: R, from_time: soon}}")
            .find("jetstream.from_time") != std::string::npos);
  CHECK(error("{servers: ['nats://a:4222'], subject: s, jetstream: {stream: R, writer_stream: ''}}")
            .find("jetstream.writer_stream") != std::string::npos);
  CHECK(error("{servers: ['http://a:4222'], subject: s}").find("servers[0]") != std::string::npos);
  CHECK(error("{servers: ['nats://a:4222'], subject: 'a b'}").find("subject") != std::string::npos);
}
