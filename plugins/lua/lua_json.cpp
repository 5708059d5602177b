// SPDX-License-Identifier: Apache-2.0
#include "lua_json.hpp"

#include <lua.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "streamrelay/mini_json.hpp"

namespace streamrelay::plugins {

namespace {

constexpr int kMaxDepth = 200;
// The registry key of the metatable that marks arrays.
const char* const kArrayMeta = "streamrelay.json.array";

// ---- decode: builds the value on the Lua stack; errors through luaL_error
// (no C++ object lives across a Lua error here).

struct Decoder {
  lua_State* L;
  const char* begin;
  const char* at;
  const char* end;

  [[noreturn]] void fail(const char* what) {
    luaL_error(L, "json.decode: %s at byte %d", what, static_cast<int>(at - begin) + 1);
    std::abort();  // not reached: luaL_error does not return
  }
  void skipSpace() {
    while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r')) ++at;
  }
  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end - at) < n || std::memcmp(at, word, n) != 0) return false;
    at += n;
    return true;
  }

  void value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    if (!lua_checkstack(L, 4)) fail("nested too deeply");
    skipSpace();
    if (at >= end) fail("unexpected end");
    switch (*at) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return string();
      case 't':
        if (!literal("true")) fail("unexpected character");
        return lua_pushboolean(L, 1);
      case 'f':
        if (!literal("false")) fail("unexpected character");
        return lua_pushboolean(L, 0);
      case 'n':
        if (!literal("null")) fail("unexpected character");
        return lua_pushlightuserdata(L, nullptr);
      default: return number();
    }
  }

  void object(int depth) {
    ++at;
    lua_createtable(L, 0, 4);
    skipSpace();
    if (at < end && *at == '}') {
      ++at;
      return;
    }
    for (;;) {
      skipSpace();
      if (at >= end || *at != '"') fail("expected a string key");
      string();
      skipSpace();
      if (at >= end || *at != ':') fail("expected ':'");
      ++at;
      value(depth + 1);
      lua_rawset(L, -3);
      skipSpace();
      if (at < end && *at == ',') {
        ++at;
        continue;
      }
      if (at < end && *at == '}') {
        ++at;
        return;
      }
      fail("expected ',' or '}'");
    }
  }

  void array(int depth) {
    ++at;
    lua_createtable(L, 4, 0);
    luaL_getmetatable(L, kArrayMeta);
    lua_setmetatable(L, -2);
    skipSpace();
    if (at < end && *at == ']') {
      ++at;
      return;
    }
    for (int i = 1;; ++i) {
      value(depth + 1);
      lua_rawseti(L, -2, i);
      skipSpace();
      if (at < end && *at == ',') {
        ++at;
        continue;
      }
      if (at < end && *at == ']') {
        ++at;
        return;
      }
      fail("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  unsigned codeUnit() {
    if (end - at < 4) fail("bad \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex(at[i]);
      if (h < 0) fail("bad \\u escape");
      u = u * 16 + static_cast<unsigned>(h);
    }
    at += 4;
    return u;
  }
  static void addUtf8(luaL_Buffer& b, unsigned cp) {
    char out[4];
    int n = 0;
    if (cp < 0x80) out[n++] = static_cast<char>(cp);
    else if (cp < 0x800) {
      out[n++] = static_cast<char>(0xC0 | (cp >> 6));
      out[n++] = static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out[n++] = static_cast<char>(0xE0 | (cp >> 12));
      out[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out[n++] = static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out[n++] = static_cast<char>(0xF0 | (cp >> 18));
      out[n++] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out[n++] = static_cast<char>(0x80 | (cp & 0x3F));
    }
    luaL_addlstring(&b, out, static_cast<std::size_t>(n));
  }

  void string() {
    ++at;
    const char* start = at;
    while (at < end && *at != '"' && *at != '\\') {
      if (static_cast<unsigned char>(*at) < 0x20) fail("control character in a string");
      ++at;
    }
    if (at < end && *at == '"') {  // no escapes: the bytes as they are
      lua_pushlstring(L, start, static_cast<std::size_t>(at - start));
      ++at;
      return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, start, static_cast<std::size_t>(at - start));
    while (at < end && *at != '"') {
      const char c = *at++;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        luaL_addchar(&b, c);
        continue;
      }
      if (at >= end) fail("unexpected end");
      const char e = *at++;
      switch (e) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
          unsigned cp = codeUnit();
          if (cp >= 0xD800 && cp < 0xDC00 && end - at >= 6 && at[0] == '\\' && at[1] == 'u') {
            at += 2;
            const unsigned low = codeUnit();
            if (low < 0xDC00 || low > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          addUtf8(b, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
    if (at >= end) fail("unterminated string");
    ++at;
    luaL_pushresult(&b);
  }

  void number() {
    const char* start = at;
    if (at < end && *at == '-') ++at;
    while (at < end && ((*at >= '0' && *at <= '9') || *at == '.' || *at == 'e' || *at == 'E' || *at == '+' ||
                        *at == '-'))
      ++at;
    char text[64];
    const std::size_t n = static_cast<std::size_t>(at - start);
    if (n == 0 || n >= sizeof text) fail("unexpected character");
    std::memcpy(text, start, n);
    text[n] = '\0';
    char* used = nullptr;
    const double value = std::strtod(text, &used);
    if (used != text + n || !std::isfinite(value)) fail("bad number");
    lua_pushnumber(L, value);
  }
};

int decode(lua_State* L) {
  std::size_t size = 0;
  const char* text = luaL_checklstring(L, 1, &size);
  Decoder d{L, text, text, text + size};
  d.value(0);
  d.skipSpace();
  if (d.at != d.end) d.fail("trailing characters");
  return 1;
}

// ---- encode: into a std::string; an error is raised once it is destroyed.

struct Encoder {
  lua_State* L;
  std::string out;
  std::string error;

  bool fail(std::string what) {
    error = "json.encode: " + std::move(what);
    return false;
  }

  void quoted(const char* s, std::size_t n) { streamrelay::client::appendJsonString(out, std::string_view(s, n)); }

  bool number(double v) {
    if (!std::isfinite(v)) return fail("cannot encode NaN or infinity");
    char text[32];
    if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
      const auto end = std::to_chars(text, text + sizeof text, static_cast<long long>(v)).ptr;
      out.append(text, static_cast<std::size_t>(end - text));
      return true;
    }
    std::snprintf(text, sizeof text, "%.17g", v);
    out += text;
    return true;
  }

  // The table at `t` holds exactly the keys 1..n (n > 0)? n in `length`.
  bool isSequence(int t, std::size_t& length) {
    length = lua_objlen(L, t);
    std::size_t keys = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      ++keys;
      lua_pop(L, 1);
    }
    return length > 0 && keys == length;
  }

  bool markedArray(int t) {
    if (!lua_getmetatable(L, t)) return false;
    luaL_getmetatable(L, kArrayMeta);
    const bool same = lua_rawequal(L, -1, -2) != 0;
    lua_pop(L, 2);
    return same;
  }

  bool table(int t, int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply (a table that holds itself?)");
    if (!lua_checkstack(L, 6)) return fail("nested too deeply");
    std::size_t length = 0;
    if (markedArray(t) || isSequence(t, length)) {
      length = lua_objlen(L, t);
      out += '[';
      for (std::size_t i = 1; i <= length; ++i) {
        if (i > 1) out += ',';
        lua_rawgeti(L, t, static_cast<int>(i));
        const bool ok = value(lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!ok) return false;
      }
      out += ']';
      return true;
    }
    out += '{';
    bool first = true;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      const int type = lua_type(L, -2);
      if (type != LUA_TSTRING && type != LUA_TNUMBER) {
        lua_pop(L, 2);
        return fail("an object's key must be a string or a number");
      }
      if (!first) out += ',';
      first = false;
      lua_pushvalue(L, -2);  // a copy: tolstring would change the key lua_next needs
      std::size_t n = 0;
      const char* key = lua_tolstring(L, -1, &n);
      quoted(key, n);
      lua_pop(L, 1);
      out += ':';
      if (!value(lua_gettop(L), depth + 1)) {
        lua_pop(L, 2);
        return false;
      }
      lua_pop(L, 1);
    }
    out += '}';
    return true;
  }

  bool value(int index, int depth) {
    switch (lua_type(L, index)) {
      case LUA_TNIL: out += "null"; return true;
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, index) == nullptr) {
          out += "null";
          return true;
        }
        return fail("cannot encode a userdata");
      case LUA_TBOOLEAN: out += lua_toboolean(L, index) ? "true" : "false"; return true;
      case LUA_TNUMBER: return number(lua_tonumber(L, index));
      case LUA_TSTRING: {
        std::size_t n = 0;
        const char* s = lua_tolstring(L, index, &n);
        quoted(s, n);
        return true;
      }
      case LUA_TTABLE: return table(index, depth);
      default: return fail(std::string("cannot encode a ") + lua_typename(L, lua_type(L, index)));
    }
  }
};

int encode(lua_State* L) {
  luaL_checkany(L, 1);
  char error[256] = "";
  {
    Encoder e{L, {}, {}};
    bool ok = false;
    try {
      ok = e.value(1, 0);
    } catch (const std::exception&) {  // no memory for the text
      e.error = "json.encode: out of memory";
    }
    if (ok) {
      lua_pushlstring(L, e.out.data(), e.out.size());
      return 1;
    }
    std::snprintf(error, sizeof error, "%s", e.error.c_str());
  }
  return luaL_error(L, "%s", error);
}

int markArray(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_getmetatable(L, kArrayMeta);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

}  // namespace

void openJson(lua_State* L) {
  luaL_newmetatable(L, kArrayMeta);
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, &decode);
  lua_setfield(L, -2, "decode");
  lua_pushcfunction(L, &encode);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, &markArray);
  lua_setfield(L, -2, "array");
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, -2, "null");
  lua_setglobal(L, "json");
}

}  // namespace streamrelay::plugins
