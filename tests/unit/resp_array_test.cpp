// SPDX-License-Identifier: Apache-2.0
// RespParser's arrays (what XREAD answers, for the redis source): nested
// replies parsed as their bytes come, and bounded: the count an array
// announces is checked against the limits before anything is held, and
// never reserved.

#include <catch2/catch.hpp>

#include <string>

#include "resp_client.hpp"

using namespace streamrelay;

namespace {

RespParser::Limits arrays(std::size_t elements = 1000, std::size_t depth = 5) {
  RespParser::Limits limits;
  limits.maxElements = elements;
  limits.maxDepth = depth;
  limits.maxReplyBytes = 1 << 20;
  return limits;
}

// XREAD's reply, five arrays deep: [[key, [[id, [field, value, ...]], ...]]]
const std::string kXread =
    "*1\r\n*2\r\n$1\r\nk\r\n*2\r\n"
    "*2\r\n$3\r\n1-1\r\n*4\r\n$3\r\nseq\r\n$1\r\n1\r\n$7\r\npayload\r\n$2\r\nab\r\n"
    "*2\r\n$3\r\n1-2\r\n*2\r\n$3\r\nseq\r\n$1\r\n2\r\n";

}  // namespace

TEST_CASE("resp parser arrays: XREAD's nested reply, whole or byte by byte, then the next reply", "[resp]") {
  for (const bool byByte : {false, true}) {
    RespParser p(arrays());
    const std::string bytes = kXread + "*-1\r\n*0\r\n+OK\r\n";
    if (byByte) {
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        p.feed(&bytes[i], 1);
        if (i + 1 < kXread.size()) CHECK_FALSE(p.next().has_value());  // nothing before the last byte
      }
    } else {
      p.feed(bytes.data(), bytes.size());
    }
    const auto reply = p.next();
    REQUIRE(reply);
    REQUIRE(reply->type == RespReply::Type::Array);
    REQUIRE(reply->elements.size() == 1);
    const RespReply& stream = reply->elements[0];
    REQUIRE(stream.elements.size() == 2);
    CHECK(stream.elements[0].text == "k");
    const RespReply& entries = stream.elements[1];
    REQUIRE(entries.elements.size() == 2);
    CHECK(entries.elements[0].elements[0].text == "1-1");
    REQUIRE(entries.elements[0].elements[1].elements.size() == 4);
    CHECK(entries.elements[0].elements[1].elements[3].text == "ab");
    CHECK(entries.elements[1].elements[1].elements[1].text == "2");
    const auto nil = p.next();  // XREAD's "nothing new within BLOCK"
    REQUIRE(nil);
    CHECK(nil->type == RespReply::Type::Null);
    const auto empty = p.next();
    REQUIRE(empty);
    CHECK((empty->type == RespReply::Type::Array && empty->elements.empty()));
    const auto ok = p.next();
    REQUIRE(ok);
    CHECK((ok->type == RespReply::Type::Simple && ok->text == "OK"));
    CHECK_FALSE(p.next().has_value());
  }
}

TEST_CASE("resp parser arrays: a huge count is refused before anything is held or reserved", "[resp]") {
  for (const std::string huge : {"*1000000000\r\n", "*9223372036854775807\r\n", "*1001\r\n",
                                 "*2\r\n*1000\r\n", "*99999999999999999999\r\n"}) {
    RespParser p(arrays(1000));
    p.feed(huge.data(), huge.size());
    CHECK_THROWS_AS(p.next(), RespError);
  }
  // Within the limits, a count is only a count: nothing is reserved for it
  // (a billion elements of a nested array would be some 100 GB).
  RespParser trusting(arrays(std::size_t{4} << 30, 5));
  const std::string billion = "*1000000000\r\n*1000000000\r\n:1\r\n";
  trusting.feed(billion.data(), billion.size());
  CHECK_FALSE(trusting.next().has_value());
  RespParser p(arrays(1000));  // exactly the limit, over all the arrays of one reply
  std::string ok = "*2\r\n*499\r\n";
  for (int i = 0; i < 499; ++i) ok += ":1\r\n";
  ok += "*499\r\n";
  for (int i = 0; i < 499; ++i) ok += ":2\r\n";
  p.feed(ok.data(), ok.size());
  const auto reply = p.next();
  REQUIRE(reply);
  CHECK(reply->elements[1].elements.size() == 499);
  const std::string again = "*1000\r\n";  // the count starts again with the next reply
  p.feed(again.data(), again.size());
  CHECK_FALSE(p.next().has_value());
}

TEST_CASE("resp parser arrays: bad input is a clear error", "[resp]") {
  for (const std::string bad : {"*-2\r\n", "*x\r\n", "*\r\n", "*2\r\n:1\r\nhello\r\n", "*1\r\n$3\r\nabcXY",
                                "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",  // deeper than 5
                                "*2\r\n$600000\r\n"}) {
    RespParser p(arrays(1000, 5));
    p.feed(bad.data(), bad.size());
    CHECK_THROWS_AS(p.next(), RespError);
  }
  RespParser lease;  // the defaults (a lease's): no arrays at all
  const std::string array = "*1\r\n:1\r\n";
  lease.feed(array.data(), array.size());
  CHECK_THROWS_AS(lease.next(), RespError);
  // The bulk strings of one reply together are bounded too.
  RespParser::Limits small = arrays();
  small.maxReplyBytes = 10;
  RespParser q(small);
  const std::string two = "*2\r\n$6\r\nabcdef\r\n$6\r\nghijkl\r\n";
  q.feed(two.data(), two.size());
  CHECK_THROWS_AS(q.next(), RespError);
}
