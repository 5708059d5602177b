// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small JSON reader for the client library: enough for the relay's answer
// to a `streamrelay` hello (objects, arrays, strings, numbers, booleans,
// null), with no dependency. Integers keep all 64 bits (epochs, seqs).
// Throws std::runtime_error on malformed input; nesting is bounded.
// And the one JSON string writer the client, the relay and the plugins share.

#include <cctype>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay {
namespace client {

// Appends `text` as a JSON string, quotes included: quotes, backslashes and
// control bytes escaped, every other byte as it is (UTF-8 passes through).
// The relay's json envelope writes each frame through it: no formatting call.
inline void appendJsonString(std::string& out, std::string_view text) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (byte < 0x20) {
          out += "\\u00";
          out += hex[byte >> 4];
          out += hex[byte & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

struct JsonValue {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  std::uint64_t integer = 0;  // a non-negative integer, exact
  bool isInteger = false;
  double number = 0;
  std::string text;
  std::vector<JsonValue> items;
  std::map<std::string, JsonValue> fields;

  const JsonValue* find(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }

  // A 64-bit unsigned integer sent as a JSON integer or as a decimal string
  // (as the relay sends epochs: JavaScript and jq round 64-bit numbers);
  // false for anything else.
  bool asUnsigned(std::uint64_t& out) const {
    if (type == Type::Number && isInteger) {
      out = integer;
      return true;
    }
    if (type != Type::String || text.empty() || text.size() > 20 ||
        text.find_first_not_of("0123456789") != std::string::npos)
      return false;
    std::uint64_t value = 0;
    for (char c : text) {
      const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
      if (value > (UINT64_MAX - digit) / 10) return false;  // over 2^64 - 1
      value = value * 10 + digit;
    }
    out = value;
    return true;
  }

  static JsonValue parse(const std::string& input) {
    std::size_t at = 0;
    JsonValue v = parseValue(input, at, 0);
    skipSpace(input, at);
    if (at != input.size()) throw std::runtime_error("JSON: trailing characters");
    return v;
  }

 private:
  static void skipSpace(const std::string& s, std::size_t& at) {
    while (at < s.size() && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) ++at;
  }
  static void expect(const std::string& s, std::size_t& at, char c) {
    skipSpace(s, at);
    if (at >= s.size() || s[at] != c) throw std::runtime_error(std::string("JSON: expected '") + c + "'");
    ++at;
  }
  static std::string parseString(const std::string& s, std::size_t& at) {
    expect(s, at, '"');
    std::string out;
    while (at < s.size() && s[at] != '"') {
      char c = s[at++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at >= s.size()) break;
      char e = s[at++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (at + 4 > s.size()) throw std::runtime_error("JSON: bad \\u escape");
          unsigned code = static_cast<unsigned>(std::stoul(s.substr(at, 4), nullptr, 16));
          at += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default: out += e;
      }
    }
    if (at >= s.size()) throw std::runtime_error("JSON: unterminated string");
    ++at;
    return out;
  }
  static JsonValue parseValue(const std::string& s, std::size_t& at, int depth) {
    if (depth > 32) throw std::runtime_error("JSON: nested too deeply");
    skipSpace(s, at);
    if (at >= s.size()) throw std::runtime_error("JSON: unexpected end");
    JsonValue v;
    const char c = s[at];
    if (c == '{') {
      v.type = Type::Object;
      ++at;
      skipSpace(s, at);
      if (at < s.size() && s[at] == '}') {
        ++at;
        return v;
      }
      for (;;) {
        std::string key = parseString(s, at);
        expect(s, at, ':');
        v.fields[key] = parseValue(s, at, depth + 1);
        skipSpace(s, at);
        if (at < s.size() && s[at] == ',') {
          ++at;
          continue;
        }
        expect(s, at, '}');
        return v;
      }
    }
    if (c == '[') {
      v.type = Type::Array;
      ++at;
      skipSpace(s, at);
      if (at < s.size() && s[at] == ']') {
        ++at;
        return v;
      }
      for (;;) {
        v.items.push_back(parseValue(s, at, depth + 1));
        skipSpace(s, at);
        if (at < s.size() && s[at] == ',') {
          ++at;
          continue;
        }
        expect(s, at, ']');
        return v;
      }
    }
    if (c == '"') {
      v.type = Type::String;
      v.text = parseString(s, at);
      return v;
    }
    auto word = [&](const char* w) {
      std::string t(w);
      if (s.compare(at, t.size(), t) != 0) throw std::runtime_error("JSON: unexpected '" + s.substr(at, 8) + "'");
      at += t.size();
    };
    if (c == 't' || c == 'f') {
      v.type = Type::Bool;
      v.boolean = c == 't';
      word(v.boolean ? "true" : "false");
      return v;
    }
    if (c == 'n') {
      word("null");
      return v;
    }
    std::size_t end = at;
    while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) || s[end] == '-' || s[end] == '+' ||
                              s[end] == '.' || s[end] == 'e' || s[end] == 'E'))
      ++end;
    if (end == at) throw std::runtime_error("JSON: unexpected '" + s.substr(at, 8) + "'");
    const std::string number = s.substr(at, end - at);
    at = end;
    v.type = Type::Number;
    v.number = std::stod(number);
    if (number.find_first_not_of("0123456789") == std::string::npos) {
      v.isInteger = true;
      v.integer = std::stoull(number);
    }
    return v;
  }
};

}  // namespace client
}  // namespace streamrelay
