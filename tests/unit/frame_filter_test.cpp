// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <stdexcept>

#include "filter/frame_filter.hpp"

using streamrelay::plugins::FrameFilter;
using Verdict = FrameFilter::Verdict;

TEST_CASE("filter: contains, regex and invert", "[filter]") {
  FrameFilter contains("{contains: BTC}");
  CHECK(contains.test("trade BTC-USD 1") == Verdict::Keep);
  CHECK(contains.test("trade ETH-USD 1") == Verdict::Drop);
  FrameFilter inverted("{contains: BTC, invert: true}");
  CHECK(inverted.test("trade BTC-USD 1") == Verdict::Drop);
  CHECK(inverted.test("trade ETH-USD 1") == Verdict::Keep);
  FrameFilter regex("{regex: '^trade [A-Z]+-USD'}");  // a search, anchored here by ^
  CHECK(regex.test("trade BTC-USD 1") == Verdict::Keep);
  CHECK(regex.test("quote BTC-USD 1") == Verdict::Drop);
  CHECK(FrameFilter("{regex: 'USD'}").test("trade BTC-USD 1") == Verdict::Keep);
}

TEST_CASE("filter: a JSON field test by pointer, and frames that are not JSON are unparsable", "[filter]") {
  FrameFilter equals("{json: {pointer: /type, equals: trade}}");
  CHECK(equals.test(R"({"type":"trade","px":1})") == Verdict::Keep);
  CHECK(equals.test(R"({"type":"quote"})") == Verdict::Drop);
  CHECK(equals.test(R"({"other":1})") == Verdict::Drop);
  CHECK(equals.test("not json {") == Verdict::Unparsable);
  CHECK(equals.test("") == Verdict::Unparsable);
  FrameFilter in("{json: {pointer: /data/0/sym, in: [BTC, ETH]}}");
  CHECK(in.test(R"({"data":[{"sym":"ETH"}]})") == Verdict::Keep);
  CHECK(in.test(R"({"data":[{"sym":"XRP"}]})") == Verdict::Drop);
  CHECK(in.test(R"({"data":[]})") == Verdict::Drop);
  FrameFilter number("{json: {pointer: /n, equals: 5}}");
  CHECK(number.test(R"({"n":5})") == Verdict::Keep);
  CHECK(number.test(R"({"n":6})") == Verdict::Drop);
  FrameFilter exists("{json: {pointer: /a~1b, exists: true}}");  // the key "a/b"
  CHECK(exists.test(R"({"a/b":null})") == Verdict::Keep);
  CHECK(exists.test(R"({"a":{"b":1}})") == Verdict::Drop);
  FrameFilter absent("{json: {pointer: /error, exists: false}}");
  CHECK(absent.test(R"({"ok":1})") == Verdict::Keep);
  CHECK(absent.test(R"({"error":"x"})") == Verdict::Drop);
}

TEST_CASE("filter: config errors name the key", "[filter]") {
  auto errorOf = [](const char* yaml) {
    try {
      FrameFilter f(yaml);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(errorOf("{}") == "config: needs exactly one of contains, regex, json");
  CHECK(errorOf("{contains: a, regex: b}") == "config: needs exactly one of contains, regex, json");
  CHECK(errorOf("{contain: a}").rfind("config.contain: unknown key", 0) == 0);
  CHECK(errorOf("{regex: '('}").rfind("config.regex: ", 0) == 0);
  CHECK(errorOf("{json: {pointer: type, equals: x}}").rfind("config.json.pointer: ", 0) == 0);
  CHECK(errorOf("{json: {pointer: /t}}") == "config.json: needs exactly one of equals, in, exists");
  CHECK(errorOf("{contains: a, invert: maybe}") == "config.invert: expected true or false, got 'maybe'");
  CHECK(errorOf("{json: {pointer: /t, in: x}}") == "config.json.in: expected a list");
}
