// SPDX-License-Identifier: Apache-2.0
#pragma once
// LuaScript: one version of a `lua` processor's script, in a LuaJIT state of
// its own, and the call of its on_frame(frame) for each frame.
//
// Bounds, per call (loading the script counts as a call):
// - instructions: a count hook stops the call once the script has executed
//   `instructionLimit` virtual machine instructions. LuaJIT's compiler is off
//   for this state: compiled code never calls hooks, so a compiled loop could
//   not be stopped. Time inside one library function (a pattern match over a
//   long payload) counts as one instruction.
// - memory: the state's allocator refuses what would take the state over
//   `memoryBytes`: the call fails. The bound is on everything the state
//   holds, garbage not yet collected included: LuaJIT's collector starts a
//   cycle once the state has doubled since the last one, and does not
//   collect when an allocation is refused. So after a call that leaves the
//   state over half its limit, and after a call that failed, a full
//   collection runs; within one call, a script whose live data and garbage
//   together pass the limit is stopped.
// A call that is stopped fails; the state stays usable, and the next call
// gets the whole budget again.
//
// Sandbox: base (without load, loadstring, loadfile, dofile, getfenv,
// setfenv, collectgarbage, newproxy; print logs), string (without dump),
// table, math, bit, os.time/os.clock/os.date, json (lua_json.hpp) and relay
// (log, count). No io, os.execute, require, debug, ffi or jit; bytecode is
// refused.
//
// Not thread safe: the plugin's worker only.

#include <streamrelay/plugin.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

struct lua_State;
struct lua_Debug;

namespace streamrelay::plugins {

class LuaScript {
 public:
  struct Limits {
    std::uint64_t instructions = 1000000;
    std::size_t memoryBytes = 64u << 20;
  };
  // What the script's relay.log and relay.count do.
  struct Services {
    std::function<void(const std::string&)> log;
    std::function<void(const std::string& name, std::uint64_t delta)> count;
  };
  // How a call ended.
  enum class Outcome { Done, Failed, OverBudget, OverMemory };
  // Receives each frame a call returns (payload, key; key empty: none);
  // false with `error` set stops the call. It must not throw.
  using Emit = std::function<bool(std::string_view data, std::string_view key, std::string& error)>;

  // Loads `source` (named `name` in error messages) and runs its top level.
  // Throws std::runtime_error with the reason if it does not load, stops, or
  // defines no function on_frame.
  LuaScript(const std::string& source, const std::string& name, Limits limits, Services services);
  ~LuaScript();
  LuaScript(const LuaScript&) = delete;
  LuaScript& operator=(const LuaScript&) = delete;

  // Calls on_frame(frame) and hands what it returns to `emit`, in order.
  // Anything but Done leaves the reason in `error`; the frames handed to
  // `emit` before a failure stay handed.
  Outcome onFrame(const Frame& frame, const Emit& emit, std::string& error);

  std::size_t memoryInUse() const { return used_; }

 private:
  static void* allocate(void* self, void* block, std::size_t oldSize, std::size_t newSize);
  static void onCount(lua_State* L, lua_Debug* ar);
  static int setUp(lua_State* L);
  static int callOnFrame(lua_State* L);
  static int relayLog(lua_State* L);
  static int relayCount(lua_State* L);
  static LuaScript& of(lua_State* L);
  Outcome run(int (*function)(lua_State*), void* argument, std::string& error);

  const Limits limits_;
  const Services services_;
  std::size_t used_ = 0;
  bool overMemory_ = false;
  bool overBudget_ = false;
  lua_State* L_ = nullptr;
  int onFrameRef_ = -1;
  const std::string* source_ = nullptr;  // during set-up only
  std::string name_;
};

}  // namespace streamrelay::plugins
