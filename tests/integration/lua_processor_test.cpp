// SPDX-License-Identifier: Apache-2.0
// Integration tests of the lua processor (plugins/lua) in the real relay:
// the example scripts of config/lua, a runaway script stopped and counted
// while the relay and its other consumers go on, and scripts reloaded when
// they change. Built only where the lua plugin is (STREAMRELAY_PLUGIN_LUA).

#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string example(const std::string& name) {
  std::ifstream in(std::string(STREAMRELAY_SOURCE_DIR) + "/config/lua/" + name);
  std::stringstream text;
  text << in.rdbuf();
  REQUIRE(!text.str().empty());
  return text.str();
}

Poco::JSON::Object::Ptr parse(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

// A metrics instance beside the lua ones: the instances' figures from /stats.
class Figures {
 public:
  void attach(const RunningRelay& relay) {
    auto m = relay.process->waitForLine("plugin metrics: serving http://127\\.0\\.0\\.1:(\\d+)/");
    REQUIRE(m.size() == 2);
    port_ = std::stoi(m[1]);
  }
  // A counter ("counters") or gauge ("gauges") of an instance, "failures",
  // or "disabled" (1/0); -1 if absent.
  double get(const std::string& instance, const std::string& group, const std::string& name = "") const {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
    session.setTimeout(Poco::Timespan(10, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/stats", Poco::Net::HTTPMessage::HTTP_1_1);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::string body;
    Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
    auto plugins = parse(body)->getArray("plugins");
    for (std::size_t i = 0; i < plugins->size(); ++i) {
      auto p = plugins->getObject(static_cast<unsigned>(i));
      if (p->getValue<std::string>("name") != instance) continue;
      if (group == "failures") return p->getValue<double>("failures");
      if (group == "disabled") return p->getValue<bool>("disabled") ? 1 : 0;
      auto figures = p->getObject(group);
      return figures->has(name) ? figures->getValue<double>(name) : -1;
    }
    return -1;
  }

 private:
  int port_ = 0;
};

std::string luaRelay(const PluginDir& dir, const std::string& listeners, const std::string& instances) {
  return "upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" + listeners +
         pluginsSection(dir, "  instances:\n"
                             "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n" + instances);
}

// Reads frames until `count` came or none comes for 10 s.
std::vector<std::string> read(Subscriber& sub, std::size_t count) {
  std::vector<std::string> frames;
  std::string frame;
  while (frames.size() < count && sub.next(frame, 10s)) frames.push_back(frame);
  return frames;
}

}  // namespace

// Run in the relay's process and in child processes of their own (the
// same ABI 1.2 host: emits with keys, counter handles, the file trust rule,
// LuaJIT under the seccomp filter).
TEST_CASE("lua: the example scripts filter by field, reshape JSON and split a batch message into frames",
          "[lua][process]") {
  const std::string isolation = GENERATE(as<std::string>{}, "in_process", "process");
  INFO("isolation: " << isolation);
  PluginDir dir;
  dir.drop(builtIn("lua"), "lua.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  for (const char* script : {"filter_by_field.lua", "reshape_json.lua", "split_batch.lua"}) dir.write(script, example(script));
  auto instance = [&](const std::string& name, const std::string& script) {
    return "    - {name: " + name + ", type: lua, isolation: " + isolation +
           ", queue: {on_full: block}, config: {script: " + dir.path(script) + "}}\n";
  };
  RunningRelay relay = startRelay(
      luaRelay(dir,
               listener("filtered", "inputs: [filtered]") + listener("reshaped", "inputs: [reshaped]") +
                   listener("split", "inputs: [split]"),
               instance("filtered", "filter_by_field.lua") + instance("reshaped", "reshape_json.lua") +
                   instance("split", "split_batch.lua")),
      {"filtered", "reshaped", "split"});
  Figures figures;
  figures.attach(relay);
  Subscriber filtered(relay.address("filtered")), reshaped(relay.address("reshaped")), split(relay.address("split"));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 3));
  const std::vector<std::string> input{
      R"({"type":"trade","sym":"BTC-USD","px":"64000.5","qty":"0.25","ts":1700000000123})",
      R"({"type":"quote","sym":"BTC-USD","bid":"63999"})",
      R"({"type":"trade","sym":"SOL-USD","px":"150","qty":"3","ts":1700000000124})",
      "not json",
      R"({"type":"trade","sym":"ETH-USD","px":"3000.25","qty":"1","ts":1700000000125})",
      R"({"updates":[{"sym":"BTC-USD","px":1},{"sym":"ETH-USD","px":2},{"sym":"SOL-USD","px":3}]})",
  };
  std::string lines;
  for (const std::string& line : input) lines += line + "\n";
  relay.process->writeStdin(lines);

  // Filter by field: the trades of BTC-USD and ETH-USD, unchanged.
  CHECK(read(filtered, 2) == std::vector<std::string>{input[0], input[4]});
  // Reshape: each trade in the dashboards' shape; everything else unchanged.
  const std::vector<std::string> r = read(reshaped, 6);
  REQUIRE(r.size() == 6);
  auto btc = parse(r[0]);
  CHECK(btc->getValue<std::string>("symbol") == "BTC-USD");
  CHECK(btc->getValue<double>("price") == 64000.5);
  CHECK(btc->getValue<double>("size") == 0.25);
  CHECK(btc->getValue<std::int64_t>("time_ms") == 1700000000123);
  CHECK(btc->getValue<int>("relay_seq") == 1);
  CHECK(r[1] == input[1]);
  CHECK(parse(r[2])->getValue<std::string>("symbol") == "SOL-USD");
  CHECK(r[3] == "not json");
  CHECK(parse(r[4])->getValue<double>("price") == 3000.25);
  CHECK(r[5] == input[5]);
  // Split: one frame per update, in order; the other frames unchanged.
  const std::vector<std::string> s = read(split, 8);
  REQUIRE(s.size() == 8);
  for (std::size_t i = 0; i < 5; ++i) CHECK(s[i] == input[i]);
  const char* symbols[] = {"BTC-USD", "ETH-USD", "SOL-USD"};
  for (int i = 0; i < 3; ++i) {
    auto update = parse(s[5 + static_cast<std::size_t>(i)]);
    CHECK(update->getValue<std::string>("sym") == symbols[i]);
    CHECK(update->getValue<int>("px") == i + 1);
  }
  std::string extra;
  CHECK_FALSE(split.next(extra, 200ms));
  CHECK(pollUntil([&] { return figures.get("filtered", "counters", "not_json") == 1; }));  // relay.count
  CHECK(figures.get("split", "counters", "emitted") == 8);
  CHECK(figures.get("filtered", "counters", "dropped") == 4);
}

// A script keys what it emits; the next script sees each frame's key (nil
// when none) and passes the frame on with it.
TEST_CASE("lua: a script's keys reach the next script as frame.key, which returning the frame keeps",
          "[lua][keys][process]") {
  const std::string isolation = GENERATE(as<std::string>{}, "in_process", "process");
  INFO("isolation: " << isolation);
  PluginDir dir;
  dir.drop(builtIn("lua"), "lua.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.write("key.lua", R"(
    function on_frame(f)
      if f.data:sub(1, 1) == "-" then return f.data end  -- no key
      return f.data, "md." .. f.data
    end)");
  dir.write("show.lua", R"(
    function on_frame(f)
      if f.data == "BTC" then return f end  -- passed on, key and all
      return tostring(f.key) .. " " .. f.data
    end)");
  dir.write("again.lua", R"(
    function on_frame(f) return tostring(f.key) .. " " .. f.data end)");
  auto instance = [&](const std::string& name, const std::string& input, const std::string& script) {
    return "    - {name: " + name + ", type: lua, isolation: " + isolation + ", inputs: [" + input +
           "], queue: {on_full: block}, config: {script: " + dir.path(script) + "}}\n";
  };
  RunningRelay relay = startRelay(
      luaRelay(dir, listener("again", "inputs: [again]"),
               instance("keyer", "upstream", "key.lua") + instance("show", "keyer", "show.lua") +
                   instance("again", "show", "again.lua")),
      {"again"});
  Subscriber again(relay.address("again"));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 1));
  relay.process->writeStdin("BTC\n-ETH\nSOL\n");
  CHECK(read(again, 3) == std::vector<std::string>{"md.BTC BTC", "nil nil -ETH", "nil md.SOL SOL"});
}

// The issue's case: a script that never returns stops itself and nothing else.
TEST_CASE("lua: a script in an endless loop is stopped and counted, the relay and its other consumers go on", "[lua]") {
  PluginDir dir;
  dir.drop(builtIn("lua"), "lua.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.write("loop.lua", R"(
    function on_frame(frame)
      if frame.data:find("loop") then while true do end end
      if frame.data:find("sneaky") then while true do pcall(function() while true do end end) end end
      return "ok " .. frame.data
    end)");
  RunningRelay relay = startRelay(
      luaRelay(dir, listener("all", "inputs: [upstream]") + listener("script", "inputs: [script]"),
               "    - {name: script, type: lua, queue: {on_full: block}, "
               "config: {script: " + dir.path("loop.lua") + ", instruction_limit: 200000}}\n"),
      {"all", "script"});
  Figures figures;
  figures.attach(relay);
  Subscriber all(relay.address("all")), script(relay.address("script"));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 2));
  std::string lines;
  std::vector<std::string> everything, passed;
  int stopped = 0;
  for (int i = 1; i <= 300; ++i) {
    std::string line = "frame " + std::to_string(i);
    if (i % 10 == 0) line += i % 20 == 0 ? " sneaky" : " loop";
    lines += line + "\n";
    everything.push_back(line);
    if (i % 10 == 0) ++stopped;
    else passed.push_back("ok " + line);
  }
  relay.process->writeStdin(lines);
  CHECK(read(all, everything.size()) == everything);  // the relay's own subscribers: every frame
  CHECK(read(script, passed.size()) == passed);        // the script's: every frame it did not loop on
  REQUIRE(pollUntil([&] { return figures.get("script", "counters", "over_budget") == stopped; }));
  CHECK(figures.get("script", "failures") == stopped);
  CHECK(figures.get("script", "disabled") == 0);  // never max_failures (10) in a row
  // A line each (logged after the counters moved: waited for, not counted at once).
  CHECK(relay.process->waitForLines("plugin script: on_frames? failed \\(1 in a row\\): script .*loop.lua: .*"
                                    "instruction_limit", static_cast<int>(stopped)));

  SECTION("a script that loops on every frame is disabled after max_failures; the relay goes on") {
    relay.reload(luaRelay(dir, listener("all", "inputs: [upstream]") + listener("script", "inputs: [script]"),
                          "    - {name: script, type: lua, max_failures: 3, queue: {on_full: block}, "
                          "config: {script: " + dir.path("loop.lua") + ", instruction_limit: 100000}}\n"));
    REQUIRE(relay.process->waitForLine("plugin lua reloaded from").size() > 0);
    relay.process->writeStdin("loop 1\nloop 2\nloop 3\nloop 4\nafter\n");
    CHECK(relay.process->waitForLine("plugin script: disabled after 3 failures in a row").size() > 0);
    CHECK(read(all, 5) == std::vector<std::string>{"loop 1", "loop 2", "loop 3", "loop 4", "after"});
  }
}

TEST_CASE("lua: a script that allocates without bound is stopped at its memory limit and counted", "[lua]") {
  PluginDir dir;
  dir.drop(builtIn("lua"), "lua.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.write("hog.lua", R"(
    function on_frame(frame)
      if frame.data == "hog" then
        local kept = {}
        for i = 1, 1e9 do kept[#kept + 1] = string.rep("x", 4096) .. i end
      end
      return frame
    end)");
  RunningRelay relay = startRelay(
      luaRelay(dir, listener("script", "inputs: [script]"),
               "    - {name: script, type: lua, queue: {on_full: block}, "
               "config: {script: " + dir.path("hog.lua") + ", memory_limit_mb: 16, instruction_limit: 1000000000}}\n"),
      {"script"});
  Figures figures;
  figures.attach(relay);
  Subscriber script(relay.address("script"));
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  relay.process->writeStdin("before\nhog\nafter\n");
  CHECK(read(script, 2) == std::vector<std::string>{"before", "after"});
  CHECK(pollUntil([&] { return figures.get("script", "counters", "over_memory") == 1; }));
  CHECK(figures.get("script", "gauges", "memory_bytes") <= 16 << 20);
  // One line naming the limit (logged after the counter moved: waited for).
  CHECK(relay.process->waitForLine("plugin script: .*memory_limit_mb \\(16 MiB\\)").size() > 0);
}

TEST_CASE("lua: a changed script is reloaded, one that does not load leaves the version before running", "[lua]") {
  PluginDir dir;
  dir.drop(builtIn("lua"), "lua.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.write("tag.lua", "function on_frame(f) return 'v1 ' .. f.data end");
  RunningRelay relay = startRelay(
      luaRelay(dir, listener("script", "inputs: [script]"),
               "    - {name: script, type: lua, config: {script: " + dir.path("tag.lua") + "}}\n"),
      {"script"});
  Figures figures;
  figures.attach(relay);
  Subscriber script(relay.address("script"));
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  relay.process->writeStdin("a\n");
  CHECK(read(script, 1) == std::vector<std::string>{"v1 a"});

  dir.write("tag.lua", "function on_frame(f) return 'v2 ' .. f.data end");
  REQUIRE(relay.process->waitForLine("plugin script: script .*tag.lua reloaded").size() > 0);
  relay.process->writeStdin("b\n");
  CHECK(read(script, 1) == std::vector<std::string>{"v2 b"});

  dir.write("tag.lua", "function on_frame(f) return 'v3 ' .. f.data");  // does not compile
  REQUIRE(relay.process->waitForLine("plugin script: script .*tag.lua not reloaded: .*the version loaded before goes on")
              .size() > 0);
  relay.process->writeStdin("c\n");
  CHECK(read(script, 1) == std::vector<std::string>{"v2 c"});
  CHECK(figures.get("script", "counters", "reloads") == 1);
  CHECK(figures.get("script", "counters", "reload_errors") == 1);

  ::chmod(dir.path("tag.lua").c_str(), 0666);  // anyone may now change it: not loaded
  dir.write("tag2.lua", "function on_frame(f) return f end");
  ::chmod(dir.path("tag2.lua").c_str(), 0666);
  relay.reload(luaRelay(dir, listener("script", "inputs: [script]"),
                        "    - {name: script, type: lua, config: {script: " + dir.path("tag2.lua") + "}}\n"));
  CHECK(relay.process->waitForLine("create failed: refusing the script: .*tag2.lua is writable by group or others")
            .size() > 0);
}
