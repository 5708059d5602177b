// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "allocation_counter.hpp"
#include "subject.hpp"
#include "subject_index.hpp"

using namespace streamrelay;
using subject::checkPattern;
using subject::containedIn;
using subject::matches;

namespace {

using Entries = std::vector<std::pair<std::string, int>>;

// Random patterns and keys over a small alphabet, so that they often meet.
class Generator {
 public:
  explicit Generator(unsigned seed) : rng_(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string token(const std::vector<std::string>& alphabet) { return alphabet[below(static_cast<int>(alphabet.size()))]; }

  // 1..maxTokens tokens: literals, '*', and '>' as the last token
  // (tailPercent of the time).
  std::string pattern(const std::vector<std::string>& alphabet, int maxTokens, int tailPercent = 10) {
    int tokens = 1 + below(maxTokens);
    std::string out;
    for (int i = 0; i < tokens; ++i) {
      if (i > 0) out += '.';
      if (i == tokens - 1 && below(100) < tailPercent) {
        out += '>';
      } else if (below(10) < 3) {
        out += '*';
      } else {
        out += token(alphabet);
      }
    }
    return out;
  }

  std::string key(const std::vector<std::string>& alphabet, int maxTokens) {
    int tokens = 1 + below(maxTokens);
    std::string out;
    for (int i = 0; i < tokens; ++i) out += (i > 0 ? "." : "") + token(alphabet);
    return out;
  }

 private:
  std::mt19937 rng_;
};

// Every key of 1..maxTokens tokens over `alphabet`.
std::vector<std::string> allKeys(const std::vector<std::string>& alphabet, std::size_t maxTokens) {
  std::vector<std::string> keys;
  std::vector<std::string> ofLength{""};
  for (std::size_t length = 1; length <= maxTokens; ++length) {
    std::vector<std::string> longer;
    for (const auto& prefix : ofLength) {
      for (const auto& token : alphabet) longer.push_back(prefix.empty() ? token : prefix + "." + token);
    }
    keys.insert(keys.end(), longer.begin(), longer.end());
    ofLength = std::move(longer);
  }
  return keys;
}

std::vector<int> reported(const SubjectIndex<int>& index, const std::string& key) {
  std::vector<int> values;
  index.forEachMatch(key, [&](const int& value) { values.push_back(value); });
  std::sort(values.begin(), values.end());
  return values;
}

// What forEachMatch must report: the values of the entries matches() accepts.
std::vector<int> expected(const Entries& entries, const std::string& key) {
  std::vector<int> values;
  for (const auto& entry : entries) {
    if (matches(entry.first, key)) values.push_back(entry.second);
  }
  std::sort(values.begin(), values.end());
  return values;
}

// Every key of up to maxTokens tokens over `alphabet` that `pattern` matches,
// written out from the pattern (no use of matches()).
std::vector<std::string> keysMatching(const std::string& pattern, const std::vector<std::string>& alphabet,
                                      std::size_t maxTokens) {
  std::vector<std::string> tokens;
  std::string_view rest = pattern;
  while (!rest.empty()) tokens.emplace_back(subject::popToken(rest));
  bool openEnded = tokens.back() == ">";
  std::size_t longest = openEnded ? maxTokens : tokens.size();
  std::vector<std::string> keys;
  for (std::size_t length = tokens.size(); length <= longest; ++length) {
    std::vector<std::string> prefixes{""};
    for (std::size_t i = 0; i < length; ++i) {
      bool any = i >= tokens.size() - 1 ? openEnded || tokens[i] == "*" : tokens[i] == "*";
      std::vector<std::string> choices = any ? alphabet : std::vector<std::string>{tokens[i]};
      std::vector<std::string> longer;
      for (const auto& prefix : prefixes) {
        for (const auto& token : choices) longer.push_back(prefix.empty() ? token : prefix + "." + token);
      }
      prefixes = std::move(longer);
    }
    keys.insert(keys.end(), prefixes.begin(), prefixes.end());
  }
  return keys;
}

// containedIn by brute force: `granted` matches every one of `keys`.
bool coversAll(const std::vector<std::string>& granted, const std::vector<std::string>& keys) {
  return std::all_of(keys.begin(), keys.end(), [&](const std::string& key) {
    return std::any_of(granted.begin(), granted.end(), [&](const std::string& g) { return matches(g, key); });
  });
}

}  // namespace

TEST_CASE("checkPattern accepts NATS patterns and names what is wrong with the others", "[subject]") {
  for (const char* good : {"a", "BTC-USD", "md.*.BTC", "md.>", ">", "*", "*.*", "a.*.>", "a b.c"}) {
    INFO(good);
    CHECK(checkPattern(good).empty());
  }
  CHECK(checkPattern(std::string(subject::kMaxKeyBytes, 'a')).empty());

  CHECK(checkPattern("") == "select pattern \"\": empty (a pattern has at least one token)");
  CHECK(checkPattern("a..b") ==
        "select pattern \"a..b\": token 2 is empty (a '.' at the start, the end or next to another '.')");
  CHECK(checkPattern(".a").find("token 1 is empty") != std::string::npos);
  CHECK(checkPattern("a.").find("token 2 is empty") != std::string::npos);
  CHECK(checkPattern("a.>.b") == "select pattern \"a.>.b\": '>' must be the last token");
  CHECK(checkPattern(">.>") == "select pattern \">.>\": '>' must be the last token");
  CHECK(checkPattern("a*") == "select pattern \"a*\": '*' and '>' must be whole tokens (token 1 is \"a*\")");
  CHECK(checkPattern("md.BTC>").find("(token 2 is \"BTC>\")") != std::string::npos);
  CHECK(checkPattern("**").find("must be whole tokens") != std::string::npos);

  std::string tooLong(subject::kMaxKeyBytes + 1, 'a');
  std::string reason = checkPattern(tooLong);
  CHECK(reason.find("257 bytes, over the 256 bytes a key may have") != std::string::npos);
  CHECK(reason.size() < 160);  // names the pattern, shortened

  // A reason is one line whatever the pattern holds.
  CHECK(checkPattern("a.\n.>.b") == "select pattern \"a.\\x0a.>.b\": '>' must be the last token");
}

TEST_CASE("matches follows NATS subjects", "[subject]") {
  CHECK(matches("foo.*", "foo.bar"));
  CHECK_FALSE(matches("foo.*", "foo.bar.baz"));
  CHECK_FALSE(matches("foo.*", "foo"));
  CHECK(matches("foo.>", "foo.bar"));
  CHECK(matches("foo.>", "foo.bar.baz"));
  CHECK_FALSE(matches("foo.>", "foo"));
  CHECK(matches(">", "a"));
  CHECK(matches(">", "a.b.c"));
  CHECK(matches("*", "a"));
  CHECK_FALSE(matches("*", "a.b"));
  CHECK(matches("md.*.BTC", "md.l2.BTC"));
  CHECK_FALSE(matches("md.*.BTC", "md.l2.ETH"));
  CHECK(matches("BTC-USD", "BTC-USD"));
  CHECK_FALSE(matches("BTC-USD", "BTC-USDT"));
  CHECK_FALSE(matches("BTC", "BTC.USD"));
  CHECK(matches("*.>", "a.b"));
  CHECK_FALSE(matches("*.>", "a"));
}

TEST_CASE("a key that is not a valid subject matches no pattern, and '*' and '>' in a key are ordinary bytes", "[subject]") {
  for (const char* bad : {"", ".", "a..b", ".a", "a."}) {
    INFO(bad);
    CHECK_FALSE(subject::isValidKey(bad));
    CHECK_FALSE(matches(">", bad));
    CHECK_FALSE(matches("*", bad));
    CHECK_FALSE(matches("*.*", bad));
  }
  std::string longest(subject::kMaxKeyBytes, 'k');
  CHECK(matches(">", longest));
  CHECK(matches(longest, longest));
  CHECK_FALSE(matches(">", longest + "k"));

  CHECK(matches("a.*", "a.*"));
  CHECK(matches("a.>", "a.>"));
  CHECK_FALSE(matches("a.b", "a.*"));
  CHECK(matches("a*", "a*"));  // refused by checkPattern, but a literal to matches()

  CHECK(subject::isLiteral("md.l2.BTC"));
  CHECK_FALSE(subject::isLiteral("md.*.BTC"));
  CHECK_FALSE(subject::isLiteral("md.>"));
}

TEST_CASE("SubjectIndex reports exactly the entries whose pattern matches, under adds and removes", "[subject]") {
  const std::vector<std::string> alphabet{"a", "b", "c"};
  const std::vector<std::string> keys = allKeys(alphabet, 5);
  const std::vector<std::string> invalidKeys{"", "a..b", ".a", "a.", std::string(subject::kMaxKeyBytes + 1, 'a')};
  Generator random(20240611);
  SubjectIndex<int> index;
  Entries entries;
  SubjectIndex<int> snapshot;  // a copy taken along the way must not follow later changes
  Entries snapshotEntries;
  std::size_t removedFound = 0;
  std::size_t removedMissing = 0;

  for (int step = 0; step < 2000; ++step) {
    if (random.below(10) < 6) {
      std::string pattern = random.pattern(alphabet, 5);
      int value = random.below(8);
      index.add(pattern, value);
      entries.emplace_back(pattern, value);
    } else if (!entries.empty() && random.below(2) == 0) {
      std::size_t at = static_cast<std::size_t>(random.below(static_cast<int>(entries.size())));
      REQUIRE(index.remove(entries[at].first, entries[at].second));
      entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(at));
      ++removedFound;
    } else {
      std::pair<std::string, int> entry{random.pattern(alphabet, 5), random.below(8)};
      auto found = std::find(entries.begin(), entries.end(), entry);
      bool present = found != entries.end();
      REQUIRE(index.remove(entry.first, entry.second) == present);
      if (present) entries.erase(found);
      removedMissing += present ? 0 : 1;
    }
    REQUIRE(index.size() == entries.size());
    REQUIRE(index.empty() == entries.empty());
    for (int probe = 0; probe < 5; ++probe) {
      std::string key = random.key(alphabet, 5);
      INFO("step " << step << ", key " << key);
      REQUIRE(reported(index, key) == expected(entries, key));
    }
    if (step % 500 == 250) {
      for (const auto& key : keys) REQUIRE(reported(snapshot, key) == expected(snapshotEntries, key));
      snapshot = index;
      snapshotEntries = entries;
    }
  }
  for (const auto& key : keys) {
    INFO("key " << key);
    REQUIRE(reported(index, key) == expected(entries, key));
  }
  for (const auto& key : invalidKeys) REQUIRE(reported(index, key).empty());
  CHECK(removedFound > 250);
  CHECK(removedMissing > 250);

  // A copy outlives its original (its maps view strings of its own); a move
  // takes everything and leaves an empty index.
  auto copy = std::make_unique<SubjectIndex<int>>(index);
  SubjectIndex<int> moved = std::move(index);
  CHECK(index.empty());
  CHECK(reported(index, "a").empty());
  CHECK(moved.size() == entries.size());
  moved = SubjectIndex<int>();
  for (const auto& key : keys) REQUIRE(reported(*copy, key) == expected(entries, key));

  // Removing every entry leaves no trie node behind.
  std::shuffle(entries.begin(), entries.end(), std::mt19937(7));
  for (const auto& entry : entries) REQUIRE(copy->remove(entry.first, entry.second));
  CHECK(copy->empty());
  CHECK(copy->trieNodeCount() == 0);
  for (const auto& key : keys) REQUIRE(reported(*copy, key).empty());
}

TEST_CASE("SubjectIndex reports a value once per matching pattern, and a pair added twice twice", "[subject]") {
  SubjectIndex<int> index;
  index.add("md.l2.BTC", 1);
  index.add("md.*.BTC", 1);
  index.add("md.>", 1);
  index.add("md.>", 2);
  index.add("md.>", 2);
  CHECK(index.size() == 5);
  CHECK(reported(index, "md.l2.BTC") == std::vector<int>{1, 1, 1, 2, 2});
  CHECK(reported(index, "md.l2") == std::vector<int>{1, 2, 2});
  CHECK(reported(index, "md").empty());
  CHECK(index.remove("md.>", 2));
  CHECK(reported(index, "md.l2") == std::vector<int>{1, 2});
  CHECK_FALSE(index.remove("md.*", 1));
  CHECK_FALSE(index.remove("md.l2.BTC", 2));
  CHECK(index.trieNodeCount() == 4);  // root, md, md.*, md.*.BTC; "md.>" lives in md
  CHECK(index.remove("md.*.BTC", 1));
  CHECK(index.trieNodeCount() == 2);
}

TEST_CASE("SubjectIndex::forEachMatch allocates nothing", "[subject]") {
  SubjectIndex<int> index;
  const std::string longToken(100, 'x');  // beyond any small-string buffer
  index.add(longToken + ".BTC", 1);
  index.add(longToken + ".*", 2);
  index.add(longToken + ".>", 3);
  index.add("*." + longToken, 4);
  const std::string key = longToken + ".BTC";
  std::size_t visited = 0;
  std::size_t allocations = 0;
  {
    test::AllocationCounter counter;
    for (int i = 0; i < 100; ++i) index.forEachMatch(key, [&](const int&) { ++visited; });
    allocations = counter.allocations();
  }
  CHECK(visited == 300);
  CHECK(allocations == 0);
  {
    test::AllocationCounter counter;
    std::string made = key;  // the counter does see an allocation
    CHECK(counter.allocations() == 1);
  }
}

TEST_CASE("containedIn decides containment in a union of patterns", "[subject]") {
  CHECK(containedIn("md.*.BTC", {"md.>"}));
  CHECK_FALSE(containedIn("md.>", {"md.*.BTC"}));
  CHECK(containedIn(">", {">"}));
  CHECK_FALSE(containedIn("*", {"a"}));
  CHECK(containedIn("a", {"a"}));
  CHECK_FALSE(containedIn("a", {"b"}));
  CHECK(containedIn("a", {"*"}));
  CHECK(containedIn("a.b", {"x", "a.*"}));
  CHECK_FALSE(containedIn("a.b", {}));
  CHECK(containedIn("*.*", {">"}));
  CHECK_FALSE(containedIn(">", {"*", "*.*", "*.*.*"}));
  CHECK(containedIn(">", {"*", "*.>"}));
  // The union case: '>' spans every length, each granted pattern some.
  CHECK(containedIn("a.>", {"a.*", "a.*.>"}));
  CHECK_FALSE(containedIn("a.>", {"a.*"}));
  CHECK_FALSE(containedIn("a.>", {"a.*.>"}));
  CHECK(containedIn("a.>", {"a.*", "a.*.*", "a.*.*.>"}));
  CHECK_FALSE(containedIn("a.>", {"a.*", "a.*.*.>"}));
  CHECK_FALSE(containedIn("a.*.>", {"*.b.*", "a.*.*.>"}));
  CHECK(containedIn("a.*.>", {"*.*.*", "a.*.*.>"}));
  // Patterns that are not valid grant nothing and are never granted.
  CHECK_FALSE(containedIn("a..b", {">"}));
  CHECK_FALSE(containedIn("a", {"a*", "a..b"}));
}

TEST_CASE("containedIn agrees with enumerating the keys, a fresh token included", "[subject]") {
  // 'z' is in no pattern: it stands for every token the patterns do not name.
  // Patterns have at most 4 tokens, so lengths up to 6 reach past every '>'.
  const std::vector<std::string> patternAlphabet{"a", "b"};
  const std::vector<std::string> keyAlphabet{"a", "b", "z"};
  Generator random(77);
  int contained = 0;
  int notContained = 0;
  int unionOnly = 0;  // contained in the union but in no single granted pattern
  for (int trial = 0; trial < 10000; ++trial) {
    std::string inner = random.pattern(patternAlphabet, 4, 50);
    std::vector<std::string> granted;
    for (int count = 1 + random.below(5); count > 0; --count) granted.push_back(random.pattern(patternAlphabet, 4, 50));
    const std::vector<std::string> innerKeys = keysMatching(inner, keyAlphabet, 6);
    bool truth = coversAll(granted, innerKeys);
    INFO("inner " << inner << " granted " << granted.size() << ": " << Catch::rangeToString(granted));
    REQUIRE(containedIn(inner, granted) == truth);
    (truth ? contained : notContained) += 1;
    if (truth && std::none_of(granted.begin(), granted.end(),
                              [&](const std::string& g) { return coversAll({g}, innerKeys); })) {
      ++unionOnly;
    }
  }
  CHECK(contained > 300);
  CHECK(notContained > 300);
  CHECK(unionOnly > 5);
}
