// SPDX-License-Identifier: Apache-2.0
#include "lua_script.hpp"

#include <lua.hpp>

#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "lua_json.hpp"

namespace streamrelay::plugins {

namespace {

// What one call of on_frame takes and gives.
struct FrameCall {
  const Frame* frame;
  const LuaScript::Emit* emit;
};

int hookCount(std::uint64_t instructions) {
  return static_cast<int>(std::min<std::uint64_t>(instructions, INT_MAX));
}

void removeGlobals(lua_State* L, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
}

// Opens a standard library as LuaJIT wants it opened: through a call.
void openLibrary(lua_State* L, lua_CFunction open, const char* name) {
  lua_pushcfunction(L, open);
  lua_pushstring(L, name);
  lua_call(L, 1, 0);
}

// Keeps only `keep` of the global table `name`.
void keepOnly(lua_State* L, const char* name, std::initializer_list<const char*> keep) {
  lua_getglobal(L, name);
  lua_createtable(L, 0, static_cast<int>(keep.size()));
  for (const char* field : keep) {
    lua_getfield(L, -2, field);
    lua_setfield(L, -2, field);
  }
  lua_setglobal(L, name);
  lua_pop(L, 1);
}

const char* typeName(lua_State* L, int index) { return lua_typename(L, lua_type(L, index)); }

// The string at `index` of the table at `table`'s field `field`, or null.
const char* stringField(lua_State* L, int table, const char* field, std::size_t& size) {
  lua_getfield(L, table, field);
  const char* text = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &size) : nullptr;
  lua_pop(L, 1);  // the string stays alive: the table holds it
  return text;
}

// Hands one returned frame to emit: a string, or a table with `data` (and
// `key`). `key` is the key given beside a single frame, if any. Raises the
// emit's error after its text is copied out of C++ objects.
void emitOne(lua_State* L, const LuaScript::Emit& emit, int index, std::string_view key, const char* where) {
  std::size_t size = 0;
  const char* data = nullptr;
  std::string_view k = key;
  if (lua_type(L, index) == LUA_TSTRING) {
    data = lua_tolstring(L, index, &size);
  } else if (lua_type(L, index) == LUA_TTABLE && (data = stringField(L, index, "data", size))) {
    std::size_t keySize = 0;
    if (const char* own = stringField(L, index, "key", keySize)) k = std::string_view(own, keySize);
  } else {
    luaL_error(L, "%s: a %s, expected a string or a frame {data = ..., key = ...}", where, typeName(L, index));
  }
  char failure[STREAMRELAY_MIN_ERROR_SIZE] = "";
  {
    std::string error;
    if (emit(std::string_view(data, size), k, error)) return;
    std::snprintf(failure, sizeof failure, "%s", error.c_str());
  }
  luaL_error(L, "%s", failure);
}

}  // namespace

LuaScript& LuaScript::of(lua_State* L) {
  void* self = nullptr;
  lua_getallocf(L, &self);
  return *static_cast<LuaScript*>(self);
}

// The state's allocator: refuses to grow past the limit. A block that
// shrinks or is freed never fails (Lua counts on it).
void* LuaScript::allocate(void* self, void* block, std::size_t oldSize, std::size_t newSize) {
  auto& script = *static_cast<LuaScript*>(self);
  const std::size_t held = block ? oldSize : 0;
  if (newSize == 0) {
    std::free(block);
    script.used_ -= held;
    return nullptr;
  }
  if (newSize > held && script.used_ - held + newSize > script.limits_.memoryBytes) {
    script.overMemory_ = true;
    return nullptr;
  }
  void* grown = std::realloc(block, newSize);
  if (grown) script.used_ = script.used_ - held + newSize;
  return grown;
}

// After the budget: every instruction from now on fails too, so that a
// pcall in the script cannot catch the error and go on.
void LuaScript::onCount(lua_State* L, lua_Debug*) {
  LuaScript& self = of(L);
  self.overBudget_ = true;
  lua_sethook(L, &LuaScript::onCount, LUA_MASKCOUNT, 1);
  luaL_error(L, "stopped: over its instruction_limit (%d instructions)", hookCount(self.limits_.instructions));
}

LuaScript::LuaScript(const std::string& source, const std::string& name, Limits limits, Services services)
    : limits_(limits), services_(std::move(services)), name_(name) {
  L_ = lua_newstate(&LuaScript::allocate, this);
  if (!L_) throw std::runtime_error(name + ": cannot create a Lua state (memory_limit_mb too small?)");
  // Interpreted only: compiled code does not call the count hook.
  luaJIT_setmode(L_, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  source_ = &source;
  std::string error;
  const Outcome loaded = run(&LuaScript::setUp, this, error);
  source_ = nullptr;
  if (loaded != Outcome::Done) {
    lua_close(L_);
    throw std::runtime_error(error);
  }
}

LuaScript::~LuaScript() { lua_close(L_); }

// In protected mode: the sandbox, the script's top level, its on_frame.
int LuaScript::setUp(lua_State* L) {
  LuaScript& self = of(L);
  openLibrary(L, luaopen_base, "");
  openLibrary(L, luaopen_string, LUA_STRLIBNAME);
  openLibrary(L, luaopen_table, LUA_TABLIBNAME);
  openLibrary(L, luaopen_math, LUA_MATHLIBNAME);
  openLibrary(L, luaopen_bit, LUA_BITLIBNAME);
  openLibrary(L, luaopen_os, LUA_OSLIBNAME);
  removeGlobals(L, {"dofile", "loadfile", "load", "loadstring", "getfenv", "setfenv", "collectgarbage", "newproxy",
                    "gcinfo", "module", "require"});
  keepOnly(L, LUA_OSLIBNAME, {"time", "clock", "date"});
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, &LuaScript::relayLog);
  lua_setfield(L, -2, "log");
  lua_pushcfunction(L, &LuaScript::relayCount);
  lua_setfield(L, -2, "count");
  lua_setglobal(L, "relay");
  lua_pushcfunction(L, &LuaScript::relayLog);
  lua_setglobal(L, "print");
  openJson(L);

  if (!self.source_->empty() && (*self.source_)[0] == '\x1b')
    return luaL_error(L, "%s: a compiled (bytecode) script is refused: give its source", self.name_.c_str());
  const std::string chunkName = "@" + self.name_;
  const int loaded = luaL_loadbufferx(L, self.source_->data(), self.source_->size(), chunkName.c_str(), "t");
  if (loaded != 0) return lua_error(L);  // the message is on the stack
  lua_call(L, 0, 0);
  lua_getglobal(L, "on_frame");
  if (!lua_isfunction(L, -1)) return luaL_error(L, "%s: defines no function on_frame(frame)", self.name_.c_str());
  self.onFrameRef_ = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

LuaScript::Outcome LuaScript::run(int (*function)(lua_State*), void* argument, std::string& error) {
  overBudget_ = overMemory_ = false;
  lua_sethook(L_, &LuaScript::onCount, LUA_MASKCOUNT, hookCount(limits_.instructions));
  const int status = lua_cpcall(L_, function, argument);
  lua_sethook(L_, nullptr, 0, 0);
  // Garbage counts against the limit and the collector waits until the
  // state has doubled: past half the limit, collect now, between calls.
  if (status == 0 && used_ > limits_.memoryBytes / 2) lua_gc(L_, LUA_GCCOLLECT, 0);
  if (status == 0) return Outcome::Done;
  const char* message = lua_tostring(L_, -1);
  error = message ? message : "an error that is not a string";
  lua_pop(L_, 1);
  lua_gc(L_, LUA_GCCOLLECT, 0);  // what the stopped call held
  if (overBudget_) return Outcome::OverBudget;
  if (overMemory_ || status == LUA_ERRMEM) {
    error = "stopped: over its memory_limit_mb (" + std::to_string(limits_.memoryBytes >> 20) + " MiB)";
    return Outcome::OverMemory;
  }
  return Outcome::Failed;
}

LuaScript::Outcome LuaScript::onFrame(const Frame& frame, const Emit& emit, std::string& error) {
  FrameCall call{&frame, &emit};
  return run(&LuaScript::callOnFrame, &call, error);
}

// In protected mode: on_frame(frame), and what it returned to emit.
int LuaScript::callOnFrame(lua_State* L) {
  const auto& call = *static_cast<const FrameCall*>(lua_touserdata(L, 1));
  const Frame& f = *call.frame;
  lua_rawgeti(L, LUA_REGISTRYINDEX, of(L).onFrameRef_);
  lua_createtable(L, 0, 6);
  lua_pushlstring(L, f.data.data(), f.data.size());
  lua_setfield(L, -2, "data");
  lua_pushnumber(L, static_cast<lua_Number>(f.seq));
  lua_setfield(L, -2, "seq");
  lua_pushlstring(L, f.stream.data(), f.stream.size());
  lua_setfield(L, -2, "stream");
  char epoch[24];
  const auto end = std::to_chars(epoch, epoch + sizeof epoch, f.epoch).ptr;
  lua_pushlstring(L, epoch, static_cast<std::size_t>(end - epoch));  // a string: 64 bits do not fit a Lua number
  lua_setfield(L, -2, "epoch");
  lua_pushnumber(L, static_cast<lua_Number>(f.receivedUnixNs));
  lua_setfield(L, -2, "received_ns");
  if (!f.key.empty()) {  // nil: the frame has none
    lua_pushlstring(L, f.key.data(), f.key.size());
    lua_setfield(L, -2, "key");
  }
  lua_call(L, 1, 2);

  const int result = lua_gettop(L) - 1, keyIndex = lua_gettop(L);
  std::size_t keySize = 0;
  const char* key = lua_type(L, keyIndex) == LUA_TSTRING ? lua_tolstring(L, keyIndex, &keySize) : nullptr;
  const std::string_view k = key ? std::string_view(key, keySize) : std::string_view();
  switch (lua_type(L, result)) {
    case LUA_TNIL: return 0;  // dropped
    case LUA_TBOOLEAN:
      if (!lua_toboolean(L, result)) return 0;
      return luaL_error(L, "on_frame returned true: expected nil, a string, a frame or a list of them");
    case LUA_TSTRING: emitOne(L, *call.emit, result, k, "on_frame returned"); return 0;
    case LUA_TTABLE: {
      lua_getfield(L, result, "data");
      const bool oneFrame = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (oneFrame) {
        emitOne(L, *call.emit, result, k, "on_frame returned");
        return 0;
      }
      const int count = static_cast<int>(lua_objlen(L, result));  // a list of frames (empty: none)
      for (int i = 1; i <= count; ++i) {
        lua_rawgeti(L, result, i);
        emitOne(L, *call.emit, lua_gettop(L), {}, "on_frame returned a list holding");
        lua_pop(L, 1);
      }
      return 0;
    }
    default:
      return luaL_error(L, "on_frame returned a %s: expected nil, a string, a frame or a list of them",
                        typeName(L, result));
  }
}

// relay.log(...) and print(...): one line of the arguments, tab separated.
int LuaScript::relayLog(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_Buffer line;
  luaL_buffinit(L, &line);
  for (int i = 1; i <= n; ++i) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    if (!lua_isstring(L, -1)) return luaL_error(L, "tostring must return a string");
    if (i > 1) luaL_addchar(&line, '\t');
    luaL_addvalue(&line);
  }
  luaL_pushresult(&line);
  std::size_t size = 0;
  const char* text = lua_tolstring(L, -1, &size);
  of(L).services_.log(std::string(text, size));
  return 0;
}

// relay.count(name [, delta]): adds to a counter of the instance.
int LuaScript::relayCount(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  const lua_Number delta = luaL_optnumber(L, 2, 1);
  if (delta < 0) return luaL_error(L, "relay.count: a counter only goes up");
  of(L).services_.count(name, static_cast<std::uint64_t>(delta));
  return 0;
}

}  // namespace streamrelay::plugins
