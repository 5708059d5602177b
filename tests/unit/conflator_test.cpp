// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "conflate/conflator.hpp"

using namespace streamrelay::plugins;
using namespace std::chrono_literals;

namespace {
std::vector<std::string> released(Conflator& c, Conflator::Clock::time_point now) {
  std::vector<std::string> out;
  c.release(now, [&](std::string_view payload) { out.emplace_back(payload); });
  return out;
}
}  // namespace

TEST_CASE("conflate: the newest frame per key, at most one per key per interval, keys in arrival order",
          "[conflate]") {
  Conflator c(parseConflateConfig("{key: /sym, interval_ms: 1000}"));
  const auto t0 = Conflator::Clock::now();
  CHECK(c.take(R"({"sym":"BTC","px":1})") == Conflator::Taken::Kept);
  CHECK(c.take(R"({"sym":"ETH","px":10})") == Conflator::Taken::Kept);
  CHECK(c.take(R"({"sym":"BTC","px":2})") == Conflator::Taken::Kept);
  CHECK(released(c, t0) == std::vector<std::string>{R"({"sym":"BTC","px":2})", R"({"sym":"ETH","px":10})"});
  CHECK(released(c, t0 + 10ms).empty());  // nothing new
  c.take(R"({"sym":"BTC","px":3})");
  c.take(R"({"sym":"BTC","px":4})");
  CHECK(released(c, t0 + 500ms).empty());  // within the interval: held
  CHECK(released(c, t0 + 1000ms) == std::vector<std::string>{R"({"sym":"BTC","px":4})"});
  CHECK(c.take("not json") == Conflator::Taken::Unparsable);
  CHECK(c.take(R"({"other":1})") == Conflator::Taken::NoKey);
  CHECK(c.take(R"({"sym":{"nested":1}})") == Conflator::Taken::NoKey);
}

TEST_CASE("conflate: max_keys bounds memory, and the oldest key is evicted and counted", "[conflate]") {
  Conflator c(parseConflateConfig("{key: /k, max_keys: 2}"));
  c.take(R"({"k":1})");
  c.take(R"({"k":2})");
  c.take(R"({"k":3})");  // evicts key 1
  CHECK(c.keys() == 2);
  CHECK(c.evicted() == 1);
  CHECK(released(c, Conflator::Clock::now()) == std::vector<std::string>{R"({"k":2})", R"({"k":3})"});
}

TEST_CASE("conflate: config errors name the key", "[conflate]") {
  auto errorOf = [](const char* yaml) {
    try {
      parseConflateConfig(yaml);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(errorOf("{interval_ms: 5}") == "config: missing required key 'key'");
  CHECK(errorOf("{key: sym}").rfind("config.key: 'sym' is not a JSON pointer", 0) == 0);
  CHECK(errorOf("{key: /s, interval_ms: 0}") == "config.interval_ms: 0 is out of range 1..3600000");
  CHECK(errorOf("{key: /s, max_keys: lots}") == "config.max_keys: expected an integer, got 'lots'");
  CHECK(errorOf("{key: /s, every: 1}").rfind("config.every: unknown key", 0) == 0);
}
