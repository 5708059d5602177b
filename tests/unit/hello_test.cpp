// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <cstring>

#include "streamrelay/mini_json.hpp"
#include "hello.hpp"
#include "streamrelay/wire.hpp"

using namespace streamrelay;
using namespace streamrelay::protocol;

TEST_CASE("a hello with every field is read", "[protocol]") {
  Hello h = parseHello(R"({"token": "t0k", "inputs": ["a", "b"], "resume": {"epoch": 18446744073709551615, "after_seq": 42}})");
  CHECK(h.token == "t0k");
  CHECK(h.inputs == std::vector<std::string>{"a", "b"});
  REQUIRE(h.resume);
  CHECK(h.resume->epoch == 18446744073709551615ull);
  CHECK(h.resume->afterSeq == 42u);
  Hello byStream = parseHello(R"({"resume": {"epoch": "7", "after_seq": {"a": 1, "b": "2"}}})" "\r");
  REQUIRE(byStream.resume);
  CHECK(byStream.resume->epoch == 7);
  CHECK(byStream.resume->byStream == std::map<std::string, std::uint64_t>{{"a", 1}, {"b", 2}});
  CHECK(parseHello("{}").inputs.empty());
}

TEST_CASE("a hello the relay cannot take is one printable line naming what is wrong", "[protocol]") {
  auto errorOf = [](const std::string& line) {
    try {
      parseHello(line);
    } catch (const HelloError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(errorOf("[1]") == "the hello must be a JSON object");
  CHECK(errorOf(R"({"token": 5})") == "token: expected a string");
  CHECK(errorOf(R"({"inputs": "a"})") == "inputs: expected a list of stream names");
  CHECK(errorOf(R"({"resume": {"epoch": 1}})") ==
        R"(resume: expected {"epoch": E, "after_seq": S}, {"after_seq": {"STREAM": {"epoch": E, "seq": S}}}, )"
        R"({"from_seq": N} or {"from_time": "RFC 3339"})");
  CHECK(errorOf(R"({"resume": {"after_seq": {"a": {"epoch": 1, "seq": 2}, "b": 3}}})").find("resume: expected") == 0);
  CHECK(errorOf(R"({"resume": {"after_seq": {"a": {"epoch": 1}}}})").find("resume: expected") == 0);
  CHECK(errorOf(R"({"resume": {"epoch": -1, "after_seq": 1}})") == "resume.epoch: expected a non-negative integer");
  CHECK(errorOf(R"({"resume": {"epoch": 1, "after_seq": "12x"}})") == "resume.after_seq: expected a non-negative integer");
  CHECK(errorOf("{\"a\\nb\": 1}") == "unknown hello field 'a?b' (token, inputs, select, snapshot, max_rate_per_key, resume)");
  const std::string notJson = errorOf("{\"x\n\x01");
  CHECK(notJson.rfind("the hello is not JSON: ", 0) == 0);
  CHECK(notJson.find_first_of("\n\r\x01") == std::string::npos);
}

TEST_CASE("the frame header is 24 big-endian bytes and the answer a control frame", "[protocol]") {
  using wire::kFrameHeaderBytes;
  char header[kFrameHeaderBytes];
  wire::writeFrameHeader(header, {0x01020304, 0x0506, 0, 0x0708090a0b0c0d0eull, 0x1112131415161718ll});
  const unsigned char expected[kFrameHeaderBytes] = {1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 13, 14,
                                                    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
  CHECK(std::memcmp(header, expected, kFrameHeaderBytes) == 0);
  const wire::FrameHeader read = wire::readFrameHeader(header);
  CHECK(read.payloadBytes == 0x01020304);
  CHECK(read.stream == 0x0506);
  CHECK(read.seq == 0x0708090a0b0c0d0eull);
  CHECK(read.receivedUnixNs == 0x1112131415161718ll);

  const std::string answer = okAnswer(99, {{"trades", 0, true, 101, 99}}, 5000);
  REQUIRE(answer.size() > kFrameHeaderBytes);
  CHECK(static_cast<unsigned char>(answer[4]) == 0xFF);  // the control stream
  CHECK(static_cast<unsigned char>(answer[5]) == 0xFF);
  const std::string json = answer.substr(kFrameHeaderBytes);
  CHECK(json == R"({"ok":true,"epoch":"99","recovered":true,"first_seq":101,"heartbeat_ms":5000,"streams":{"trades":{"id":0,"epoch":"99","first_seq":101,"recovered":true}}})");
  // What the client library reads back.
  client::JsonValue v = client::JsonValue::parse(json);
  std::uint64_t epoch = 0;
  CHECK(v.find("epoch")->asUnsigned(epoch));
  CHECK(epoch == 99);
  CHECK(v.find("streams")->find("trades")->find("first_seq")->integer == 101);
  CHECK(errorAnswer("no").substr(kFrameHeaderBytes) == R"({"ok":false,"error":"no"})");
}

TEST_CASE("the answer's epoch is a decimal string and recovered is there only for what the hello resumed", "[protocol]") {
  const std::uint64_t epoch = 18446744073709551615ull;  // no JSON number that JavaScript reads keeps it
  auto jsonOf = [](const std::string& frame) { return frame.substr(wire::kFrameHeaderBytes); };
  // No resume asked: where each stream starts, and nothing about recovery.
  CHECK(jsonOf(okAnswer(epoch, {{"a", 0, std::nullopt, 1, epoch}, {"b", 1, std::nullopt, 7, epoch}}, 0)) ==
        R"({"ok":true,"epoch":"18446744073709551615","streams":{"a":{"id":0,"epoch":"18446744073709551615","first_seq":1},"b":{"id":1,"epoch":"18446744073709551615","first_seq":7}}})");
  // One stream resumed, one not asked for: the top level speaks for the one asked.
  CHECK(jsonOf(okAnswer(epoch, {{"a", 0, true, 11, epoch}, {"b", 1, std::nullopt, 7, epoch}}, 0)) ==
        R"({"ok":true,"epoch":"18446744073709551615","recovered":true,"streams":{"a":{"id":0,"epoch":"18446744073709551615","first_seq":11,"recovered":true},"b":{"id":1,"epoch":"18446744073709551615","first_seq":7}}})");
  CHECK(jsonOf(okAnswer(epoch, {{"a", 0, true, 11, epoch}, {"b", 1, false, 7, epoch}}, 0)).find(R"("recovered":false,)") !=
        std::string::npos);
}

TEST_CASE("each stream's epoch is in the answer, the top level's only when they share one", "[protocol]") {
  auto jsonOf = [](const std::string& frame) { return frame.substr(wire::kFrameHeaderBytes); };
  const std::vector<StreamStart> two{{"a", 0, std::nullopt, 1, 5}, {"b", 1, std::nullopt, 7, 6}};
  CHECK_FALSE(sharedEpoch(two));
  CHECK(jsonOf(okAnswer(sharedEpoch(two), two, 0)) ==
        R"({"ok":true,"streams":{"a":{"id":0,"epoch":"5","first_seq":1},"b":{"id":1,"epoch":"6","first_seq":7}}})");
  CHECK(sharedEpoch({{"a", 0, std::nullopt, 1, 5}}) == 5u);
  // A resume may name each stream's epoch.
  const Hello h = parseHello(R"({"resume": {"after_seq": {"a": {"epoch": "5", "seq": 3}, "b": {"epoch": 6, "seq": "9"}}}})");
  REQUIRE(h.resume);
  CHECK(h.resume->epochFor("a") == 5);
  CHECK(h.resume->epochFor("b") == 6);
  CHECK(h.resume->byStream == std::map<std::string, std::uint64_t>{{"a", 3}, {"b", 9}});
  // Beside a top-level epoch, a stream's own wins for it.
  const Hello mixed = parseHello(R"({"resume": {"epoch": 1, "after_seq": {"a": {"epoch": 5, "seq": 3}, "b": 4}}})");
  CHECK(mixed.resume->epochFor("a") == 5);
  CHECK(mixed.resume->epochFor("b") == 1);
}

TEST_CASE("a heartbeat is a control frame of JSON", "[protocol]") {
  using wire::kFrameHeaderBytes;
  const std::string& heartbeat = heartbeatFrame();
  REQUIRE(heartbeat.size() == kFrameHeaderBytes + 20);
  const unsigned char header[kFrameHeaderBytes] = {0, 0, 0, 20, 0xFF, 0xFF};  // seq and time 0
  CHECK(std::memcmp(heartbeat.data(), header, kFrameHeaderBytes) == 0);
  CHECK(heartbeat.substr(kFrameHeaderBytes) == R"({"type":"heartbeat"})");
}

TEST_CASE("the client library reads 64-bit integers sent as numbers or decimal strings", "[protocol]") {
  std::uint64_t n = 0;
  CHECK(client::JsonValue::parse("\"18446744073709551615\"").asUnsigned(n));
  CHECK(n == 18446744073709551615ull);
  CHECK(client::JsonValue::parse("12").asUnsigned(n));
  CHECK(n == 12);
  for (const char* bad : {"\"18446744073709551616\"", "\"-1\"", "\"1e3\"", "\"\"", "\" 1\"", "-1", "1.5", "null", "[1]"})
    CHECK_FALSE(client::JsonValue::parse(bad).asUnsigned(n));
}

TEST_CASE("max_rate_per_key: milliseconds, an integer from 1 to a minute, in the hello and as a query parameter",
          "[protocol][qos]") {
  CHECK(parseHello("{}").maxRatePerKeyMs == 0);
  CHECK(parseHello(R"({"max_rate_per_key": 250})").maxRatePerKeyMs == 250);
  CHECK(parseHello(R"({"max_rate_per_key": 60000})").maxRatePerKeyMs == 60000);
  CHECK(helloFromQuery({{"max_rate_per_key", "1"}}).maxRatePerKeyMs == 1);
  const std::string expected = "max_rate_per_key: expected milliseconds, an integer from 1 to 60000";
  for (const char* bad : {R"({"max_rate_per_key": 0})", R"({"max_rate_per_key": -5})", R"({"max_rate_per_key": 1.5})",
                          R"({"max_rate_per_key": "100"})", R"({"max_rate_per_key": 60001})",
                          R"({"max_rate_per_key": 18446744073709551615})", R"({"max_rate_per_key": null})"}) {
    INFO(bad);
    try {
      parseHello(bad);
      FAIL("accepted");
    } catch (const HelloError& e) {
      CHECK(std::string(e.what()) == expected);
    }
  }
  for (const char* bad : {"0", "", "-1", "1e3", "99999999999", "60001", "10ms"}) {
    INFO(bad);
    try {
      helloFromQuery({{"max_rate_per_key", bad}});
      FAIL("accepted");
    } catch (const HelloError& e) {
      CHECK(std::string(e.what()) == expected + ", not '" + bad + "'");
    }
  }
}

TEST_CASE("resume from_seq and from_time: in the hello and as query parameters, a bad value refused in one line",
          "[protocol][replay]") {
  CHECK(*parseHello(R"({"resume": {"from_seq": 42}})").resume->fromSeq == 42);
  CHECK(*parseHello(R"({"resume": {"from_seq": "42"}})").resume->fromSeq == 42);
  CHECK(*parseHello(R"({"resume": {"from_time": "2026-12-03T14:05:00Z"}})").resume->fromUnixNs ==
        1796306700LL * 1000000000);
  CHECK(*parseHello(R"({"resume": {"from_time": "2026-12-03T15:05:00.25+01:00"}})").resume->fromUnixNs ==
        1796306700LL * 1000000000 + 250000000);
  CHECK(*helloFromQuery({{"from_seq", "7"}}).resume->fromSeq == 7);
  CHECK(*helloFromQuery({{"from_time", "1970-01-01T00:00:01.000000001Z"}}).resume->fromUnixNs == 1000000001);
  auto errorOf = [](const std::string& line) {
    try {
      parseHello(line);
    } catch (const HelloError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(errorOf(R"({"resume": {"from_seq": 0}})") == "resume.from_seq: expected a seq from 1 on, not 0");
  CHECK(errorOf(R"({"resume": {"from_seq": -3}})") == "resume.from_seq: expected a non-negative integer");
  CHECK(errorOf(R"({"resume": {"from_time": 5}})") == "resume.from_time: expected an RFC 3339 time as a string");
  for (const char* bad : {"yesterday", "2026-12-03", "2026-12-03T14:05:00", "2026-02-30T00:00:00Z",
                          "2026-12-03T24:00:00Z", "2026-12-03T14:05:00.Z", "2026-12-03T14:05:00+1:00",
                          "2026-12-03T14:05:00Zjunk", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"}) {
    INFO(bad);
    CHECK(errorOf(std::string(R"({"resume": {"from_time": ")") + bad + "\"}}")
              .rfind("resume.from_time: expected an RFC 3339 time such as 2026-12-03T14:05:00Z, not '", 0) == 0);
  }
  CHECK(errorOf(R"({"resume": {"from_seq": 1, "epoch": 2}})").find("resume: expected") == 0);
  try {
    helloFromQuery({{"from_time", "soon"}});
    FAIL("accepted");
  } catch (const HelloError& e) {
    CHECK(std::string(e.what()) == "from_time: expected an RFC 3339 time such as 2026-12-03T14:05:00Z, not 'soon'");
  }
}
