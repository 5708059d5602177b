// SPDX-License-Identifier: Apache-2.0
// The lua processor's script runner (plugins/lua/lua_script.hpp) and its
// json module: what a script may return, and the bounds that stop it.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "lua/lua_script.hpp"

using streamrelay::Frame;
using streamrelay::plugins::LuaScript;
using Outcome = LuaScript::Outcome;

namespace {

struct Run {
  std::vector<std::pair<std::string, std::string>> emitted;
  std::vector<std::string> logged;
  std::string error;
};

LuaScript script(const std::string& source, Run& run, LuaScript::Limits limits = {}) {
  return LuaScript(source, "test.lua", limits,
                   {[&run](const std::string& line) { run.logged.push_back(line); }, [](const std::string&, std::uint64_t) {}});
}

Outcome call(LuaScript& s, Run& run, std::string_view data, std::uint64_t seq = 1, std::string_view key = {}) {
  const Frame frame{data, seq, 1700000000000000000, "upstream", 18446744073709551615ull, nullptr, key};
  run.error.clear();
  return s.onFrame(frame,
                   [&run](std::string_view d, std::string_view k, std::string&) {
                     run.emitted.emplace_back(d, k);
                     return true;
                   },
                   run.error);
}

std::string loadError(const std::string& source, LuaScript::Limits limits = {}) {
  Run run;
  try {
    script(source, run, limits);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("lua: what on_frame returns becomes frames: nothing, the frame, a payload, several, with keys", "[lua]") {
  Run run;
  auto s = script(R"(
    function on_frame(f)
      if f.data == "drop" then return nil end
      if f.data == "same" then return f end
      if f.data == "keyed" then return "new " .. f.data, "K1" end
      if f.data == "table" then return {data = "t", key = "K2"} end
      if f.data == "many" then return {"a", {data = "b", key = "K3"}, "c"} end
      if f.data == "fields" then return f.stream .. " " .. f.epoch .. " " .. f.seq end
      f.key = "own"
      return f
    end)",
                  run);
  for (const char* data : {"drop", "same", "keyed", "table", "many", "fields", "rekeyed"})
    REQUIRE(call(s, run, data, 7) == Outcome::Done);
  const std::vector<std::pair<std::string, std::string>> want{
      {"same", ""}, {"new keyed", "K1"}, {"t", "K2"}, {"a", ""}, {"b", "K3"}, {"c", ""},
      {"upstream 18446744073709551615 7", ""}, {"rekeyed", "own"}};
  CHECK(run.emitted == want);
}

TEST_CASE("lua: the frame's key is frame.key (nil when it has none), and the frame returned keeps it", "[lua]") {
  Run run;
  auto s = script(R"(
    function on_frame(f)
      if f.data == "show" then return tostring(f.key) end
      return f
    end)",
                  run);
  REQUIRE(call(s, run, "show", 1, "md.BTC-USD") == Outcome::Done);
  REQUIRE(call(s, run, "show", 2) == Outcome::Done);
  REQUIRE(call(s, run, "passed on", 3, "md.ETH-USD") == Outcome::Done);
  REQUIRE(call(s, run, "unkeyed", 4) == Outcome::Done);
  const std::vector<std::pair<std::string, std::string>> want{
      {"md.BTC-USD", ""}, {"nil", ""}, {"passed on", "md.ETH-USD"}, {"unkeyed", ""}};
  CHECK(run.emitted == want);
}

TEST_CASE("lua: a script that does not load, or returns what is not a frame, fails with the reason", "[lua]") {
  CHECK(loadError("function on_frame(f) return f").find("test.lua") != std::string::npos);  // syntax
  CHECK(loadError("x = 1").find("defines no function on_frame") != std::string::npos);
  CHECK(loadError(std::string("\x1bLJ\x02", 4)).find("bytecode") != std::string::npos);
  Run run;
  auto s = script("function on_frame(f) if f.data == 'n' then return 42 end error('boom') end", run);
  CHECK(call(s, run, "n") == Outcome::Failed);
  CHECK(run.error.find("on_frame returned a number") != std::string::npos);
  CHECK(call(s, run, "x") == Outcome::Failed);
  CHECK(run.error.find("boom") != std::string::npos);
}

TEST_CASE("lua: the sandbox has no io, os.execute, require, load, debug, ffi or jit", "[lua]") {
  Run run;
  auto s = script(R"(
    function on_frame(f)
      return tostring(io) .. tostring(os.execute) .. tostring(require) .. tostring(load) .. tostring(loadstring) ..
             tostring(debug) .. tostring(jit) .. tostring(string.dump) .. tostring(collectgarbage) ..
             tostring(os.getenv) .. type(os.time()) .. type(bit.band) .. type(math.floor) .. type(table.concat)
    end)",
                  run);
  REQUIRE(call(s, run, "x") == Outcome::Done);
  CHECK(run.emitted.at(0).first == "nilnilnilnilnilnilnilnilnilnilnumberfunctionfunctionfunction");
}

TEST_CASE("lua: an endless loop is stopped at the instruction budget, also inside pcall, and the next call runs",
          "[lua]") {
  Run run;
  auto s = script(R"(
    function on_frame(f)
      if f.data == "loop" then while true do end end
      if f.data == "pcall" then while true do pcall(function() while true do end end) end end
      return f
    end)",
                  run, LuaScript::Limits{100000, 16u << 20});
  const auto start = std::chrono::steady_clock::now();
  CHECK(call(s, run, "loop") == Outcome::OverBudget);
  CHECK(run.error.find("instruction_limit") != std::string::npos);
  CHECK(call(s, run, "pcall") == Outcome::OverBudget);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(call(s, run, "fine") == Outcome::Done);
  CHECK(run.emitted.size() == 1);
  // The top level of a script runs under the budget too.
  CHECK(loadError("while true do end function on_frame(f) end", LuaScript::Limits{100000, 16u << 20})
            .find("instruction_limit") != std::string::npos);
}

TEST_CASE("lua: memory is bounded: a script that allocates without end is stopped at its limit", "[lua]") {
  Run run;
  auto s = script(R"(
    kept = {}
    function on_frame(f)
      if f.data == "grow" then
        for i = 1, 1e9 do kept[#kept + 1] = string.rep("x", 1000) .. i end
      end
      if f.data == "free" then kept = {} end
      return f
    end)",
                  run, LuaScript::Limits{1000000000, 8u << 20});
  CHECK(call(s, run, "grow") == Outcome::OverMemory);
  CHECK(run.error.find("memory_limit_mb") != std::string::npos);
  CHECK(s.memoryInUse() <= (8u << 20));
  CHECK(call(s, run, "free") == Outcome::Done);  // what it kept is let go; the state goes on
  CHECK(call(s, run, "after") == Outcome::Done);
  CHECK(s.memoryInUse() < (2u << 20));
}

TEST_CASE("lua: json.decode and json.encode round-trip, bad input is an error naming the byte", "[lua]") {
  Run run;
  auto s = script(R"(
    function on_frame(f)
      if f.data == "bad" then return json.encode(json.decode('{"a": [1, 2,')) end
      if f.data == "deep" then return json.decode(string.rep("[", 10000)) end
      if f.data == "cycle" then local t = {} t.self = t return json.encode(t) end
      local v = json.decode(f.data)
      return json.encode(v)
    end)",
                  run);
  for (const char* text : {R"([1,2.5,"x\n\u00e9\ud83d\ude00",true,false,null,[],{}])", R"({"k":{"n":-3}})",
                           R"("just a string")", "12345678901"}) {
    INFO(text);
    REQUIRE(call(s, run, text) == Outcome::Done);
  }
  CHECK(run.emitted.at(0).first == "[1,2.5,\"x\\n\xc3\xa9\xf0\x9f\x98\x80\",true,false,null,[],{}]");
  CHECK(run.emitted.at(1).first == R"({"k":{"n":-3}})");
  CHECK(run.emitted.at(2).first == R"("just a string")");
  CHECK(run.emitted.at(3).first == "12345678901");
  CHECK(call(s, run, "bad") == Outcome::Failed);
  CHECK(run.error.find("json.decode: unexpected end at byte") != std::string::npos);
  CHECK(call(s, run, "deep") == Outcome::Failed);
  CHECK(run.error.find("nested too deeply") != std::string::npos);
  CHECK(call(s, run, "cycle") == Outcome::Failed);
  CHECK(run.error.find("json.encode: nested too deeply") != std::string::npos);
}

TEST_CASE("lua: print and relay.log write one line each", "[lua]") {
  Run run;
  auto s = script("function on_frame(f) print('a', 1, nil) relay.log('b') return nil end", run);
  REQUIRE(call(s, run, "x") == Outcome::Done);
  CHECK(run.logged == std::vector<std::string>{"a\t1\tnil", "b"});
}
