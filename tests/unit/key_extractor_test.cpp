// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "key_counts.hpp"
#include "key_extractor.hpp"

using namespace streamrelay;

namespace {

KeyRule pointerRule(std::string pointer) {
  KeyRule r;
  r.kind = KeyRule::Kind::JsonPointer;
  r.pointer = std::move(pointer);
  return r;
}

KeyRule regexRule(std::string pattern, int group) {
  KeyRule r;
  r.kind = KeyRule::Kind::Regex;
  r.pattern = std::move(pattern);
  r.group = group;
  return r;
}

KeyRule bytesRule(std::size_t offset, std::size_t length) {
  KeyRule r;
  r.kind = KeyRule::Kind::Bytes;
  r.offset = offset;
  r.length = length;
  return r;
}

std::unique_ptr<FrameBatch> batchOf(const std::vector<std::string>& payloads) {
  FrameBatchBuilder builder;
  for (const std::string& p : payloads) builder.add(p.data(), p.size());
  return builder.seal(0, 0);
}

// The key keyBatch gives each frame ("-" for none).
std::vector<std::string> keysOf(KeyExtractor& extractor, const std::vector<std::string>& payloads) {
  auto batch = batchOf(payloads);
  extractor.keyBatch(*batch);
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < batch->frameCount(); ++i)
    keys.push_back(batch->hasKey(i) ? std::string(batch->key(i)) : "-");
  return keys;
}

std::string keyOf(const KeyRule& rule, const std::string& payload) {
  KeyExtractor extractor(rule);
  return keysOf(extractor, {payload}).at(0);
}

}  // namespace

TEST_CASE("json_pointer: a string or a number's text is the key", "[keys]") {
  CHECK(keyOf(pointerRule("/symbol"), R"({"symbol":"md.eu.K0042","price":1})") == "md.eu.K0042");
  CHECK(keyOf(pointerRule("/a/b/1"), R"({"a":{"b":["x","y"]}})") == "y");
  CHECK(keyOf(pointerRule("/price"), R"({"price": -12.50e+3 , "x":1})") == "-12.50e+3");
  CHECK(keyOf(pointerRule("/id"), R"({"id":123456789012345678901234567890})") == "123456789012345678901234567890");
  SECTION("~1 is '/' and ~0 is '~' in a member name") {
    CHECK(keyOf(pointerRule("/a~1b"), R"({"a/b":"slash"})") == "slash");
    CHECK(keyOf(pointerRule("/m~0n"), R"({"m~n":"tilde"})") == "tilde");
  }
  SECTION("escapes in the string are decoded") {
    CHECK(keyOf(pointerRule("/s"), R"({"s":"a\"b\u00e9"})") == "a\"b\xc3\xa9");
  }
}

TEST_CASE("json_pointer: no key when the value is missing, not a string or number, empty, or the JSON is bad",
          "[keys]") {
  const KeyRule rule = pointerRule("/symbol");
  CHECK(keyOf(rule, R"({"other":"x"})") == "-");
  CHECK(keyOf(rule, R"({"symbol":{"a":1}})") == "-");
  CHECK(keyOf(rule, R"({"symbol":["a"]})") == "-");
  CHECK(keyOf(rule, R"({"symbol":true})") == "-");
  CHECK(keyOf(rule, R"({"symbol":null})") == "-");
  CHECK(keyOf(rule, R"({"symbol":""})") == "-");
  CHECK(keyOf(rule, R"({"symbol":12x})") == "-");
  CHECK(keyOf(rule, R"({"symbol":"unterminated)") == "-");
  CHECK(keyOf(rule, R"({"symbol")") == "-");
  CHECK(keyOf(rule, "not json") == "-");
  CHECK(keyOf(rule, "") == "-");
  CHECK(keyOf(rule, R"(["symbol"])") == "-");
  CHECK(keyOf(rule, std::string("{\"symbol\":\"a\0b\"}", 16)) == "-");  // a raw control character
}

TEST_CASE("json_pointer: a key longer than 256 bytes is no key", "[keys]") {
  const KeyRule rule = pointerRule("/k");
  CHECK(keyOf(rule, R"({"k":")" + std::string(256, 'x') + "\"}") == std::string(256, 'x'));
  CHECK(keyOf(rule, R"({"k":")" + std::string(257, 'x') + "\"}") == "-");
}

// Defect (found by fuzz_key_extractor): a truncated frame parsed in the
// batch's buffer, followed by the next frames, got another key than alone.
TEST_CASE("json_pointer: a frame's key depends on that frame alone, not on the frames around it", "[keys]") {
  KeyExtractor extractor(pointerRule("/s"));
  std::vector<std::string> payloads;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    payloads.push_back(R"({"s":"k)" + std::to_string(i) + "\"}");
    expected.push_back("k" + std::to_string(i));
  }
  payloads.push_back(R"({"s":"big)" + std::string(5000, 'x') + "\"}");  // longer than the copies before
  expected.push_back("-");
  payloads.push_back(R"({"s":"last"})");
  expected.push_back("last");
  CHECK(keysOf(extractor, payloads) == expected);
  CHECK(keysOf(extractor, {R"({"s":"again"})"}) == std::vector<std::string>{"again"});
  SECTION("malformed frames: the same key in the batch as alone, whatever was read before") {
    // The frames of fuzz_key_extractor's finding: the fourth got the key 2 in
    // the batch and none alone after the third.
    const std::vector<std::string> frames = {
        std::string("{\"symbol\"/ \"x\\u00y\"}", 20),
        std::string("rue}", 4),
        std::string("\245\316\323\315\323\314\242\375{\"a\"\"deep\":\000ep8\\\"q\"p1\\q\"}", 33),
        std::string("{\"symbol\":2}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}", 55),
        std::string("[1[2,3]", 7),
        std::string("\321\234\215\212e}", 6),
        std::string("[2[2,3]", 7),
        std::string("}}}}}\000}", 7),
        std::string("{\"symbo}", 8),
        std::string("{\"symbol\":1}}]}", 15)};
    KeyExtractor symbol(pointerRule("/symbol"));
    const std::vector<std::string> inBatch = keysOf(symbol, frames);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      INFO("frame " << i);
      CHECK(keysOf(symbol, {frames[i]}).at(0) == inBatch.at(i));
    }
  }
}

TEST_CASE("regex: the first match's group is the key", "[keys]") {
  CHECK(keyOf(regexRule(R"re("symbol":"([^"]*)")re", 1), R"({"symbol":"md.eu.K1","x":"symbol"})") == "md.eu.K1");
  CHECK(keyOf(regexRule(R"(sym=(\w+))", 0), "a sym=AB sym=CD") == "sym=AB");
  CHECK(keyOf(regexRule(R"((a)|(b))", 2), "xxb") == "b");
  SECTION("no match, an unset group, an empty group, or one over 256 bytes: no key") {
    CHECK(keyOf(regexRule(R"(sym=(\w+))", 1), "nothing here") == "-");
    CHECK(keyOf(regexRule(R"((a)|(b))", 2), "xxa") == "-");
    CHECK(keyOf(regexRule(R"(k=(\w*);)", 1), "k=;") == "-");
    CHECK(keyOf(regexRule(R"(k=(\w*))", 1), "k=" + std::string(300, 'x')) == "-");
  }
  SECTION("a match that would take too long finds no key instead of hanging") {
    CHECK(keyOf(regexRule(R"((a+)+b)", 1), std::string(40, 'a')) == "-");
  }
}

TEST_CASE("bytes: the key is a range of the payload", "[keys]") {
  CHECK(keyOf(bytesRule(0, 4), "ABCDEFG") == "ABCD");
  CHECK(keyOf(bytesRule(3, 4), "ABCDEFG") == "DEFG");
  CHECK(keyOf(bytesRule(4, 4), "ABCDEFG") == "-");  // shorter than offset + length
  CHECK(keyOf(bytesRule(100, 1), "ABC") == "-");
  CHECK(keyOf(bytesRule(0, 2), std::string("\0\1", 2)) == std::string("\0\1", 2));
}

TEST_CASE("a frame that already has a key keeps it, the others get the rule's", "[keys]") {
  KeyExtractor extractor(bytesRule(0, 1));
  auto batch = batchOf({"a1", "b2", "c3"});
  FrameKeys emitted;
  emitted.addNone();
  emitted.add("processor.key");
  emitted.addNone();
  batch->setKeys(std::move(emitted));
  extractor.keyBatch(*batch);
  REQUIRE(batch->keyed());
  CHECK(batch->key(0) == "a");
  CHECK(batch->key(1) == "processor.key");
  CHECK(batch->key(2) == "c");
}

TEST_CASE("a rule's mistakes are named in one line", "[keys]") {
  auto problem = [](const KeyRule& r) {
    auto p = keyRuleProblem(r);
    return p ? p->key + ": " + p->what : std::string();
  };
  CHECK(problem(pointerRule("/a~1b~0")) == "");
  CHECK(problem(pointerRule("symbol")) == "json_pointer: must start with '/' (RFC 6901), e.g. /symbol; got 'symbol'");
  CHECK(problem(pointerRule("")) == "json_pointer: must start with '/' (RFC 6901), e.g. /symbol; got ''");
  CHECK(problem(pointerRule("/a~2")) ==
        "json_pointer: '~' at offset 2 must be followed by 0 or 1 (RFC 6901: ~0 is '~', ~1 is '/')");
  CHECK(problem(pointerRule("/a~")) ==
        "json_pointer: '~' at offset 2 must be followed by 0 or 1 (RFC 6901: ~0 is '~', ~1 is '/')");
  CHECK(problem(regexRule("(a", 1)) == "regex: does not compile: missing ) at offset 2");
  CHECK(problem(regexRule("(a)(b)", 3)) == "group: 3 is not a group of the regex, which has 2 (0 is the whole match)");
  CHECK(problem(regexRule("(a)(b)", 2)) == "");
  CHECK(problem(bytesRule(0, 0)) == "bytes.length: must be 1..256 (a key is at most 256 bytes), got 0");
  CHECK(problem(bytesRule(0, 257)) == "bytes.length: must be 1..256 (a key is at most 256 bytes), got 257");
  CHECK_THROWS_AS(KeyExtractor(bytesRule(0, 0)), std::invalid_argument);
}

TEST_CASE("key counts: keyed, without a key, and distinct keys up to a cap", "[keys]") {
  KeyExtractor extractor(bytesRule(0, 2));
  KeyCounts counts(3);
  auto batch = batchOf({"a1", "a1", "b2", "x", "c3"});
  extractor.keyBatch(*batch);
  counts.count(*batch);
  CHECK(counts.keyed() == 4);
  CHECK(counts.withoutKey() == 1);
  CHECK(counts.distinct() == 3);
  CHECK_FALSE(counts.capped());
  batch = batchOf({"c3", "d4"});
  extractor.keyBatch(*batch);
  counts.count(*batch);
  CHECK(counts.distinct() == 3);
  CHECK(counts.capped());
  CHECK(counts.keyed() == 6);

  KeyCounts many;
  KeyExtractor all(regexRule(".+", 0));
  for (int b = 0; b < 20; ++b) {
    std::vector<std::string> payloads;
    for (int i = 0; i < 1000; ++i) payloads.push_back("key" + std::to_string(b * 1000 + i % 500));
    auto keyed = batchOf(payloads);
    all.keyBatch(*keyed);
    many.count(*keyed);
  }
  CHECK(many.distinct() == 10000);
  CHECK(many.keyed() == 20000);
}
