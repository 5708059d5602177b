// SPDX-License-Identifier: Apache-2.0
#include "text_encoding.hpp"

#include <cstdint>
#include <vector>

namespace streamrelay {
namespace text {

namespace {

constexpr std::size_t kMaxJsonDepth = 512;

// The length of the well-formed UTF-8 sequence at p (left bytes remain), or 0.
std::size_t utf8Sequence(const unsigned char* p, std::size_t left) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;  // at most U+10FFFF
  else return 0;
  if (left < n || p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < n; ++i)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return n;
}

bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// A JSON validator over one buffer: each method advances at_ past what it
// accepted, or returns false.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}

  bool check() {
    std::vector<char> open;  // '[' or '{' of each container not yet closed
    skipSpace();
    for (;;) {
      // A value is due here.
      if (at_ == s_.size()) return false;
      const char c = s_[at_];
      if (c == '[' || c == '{') {
        if (open.size() == kMaxJsonDepth) return false;
        open.push_back(c);
        ++at_;
        skipSpace();
        if (at_ < s_.size() && s_[at_] == (c == '[' ? ']' : '}')) {
          ++at_;
          open.pop_back();
        } else if (c == '{') {
          if (!member()) return false;
          continue;
        } else {
          continue;
        }
      } else if (!scalar()) {
        return false;
      }
      // After a value: close containers, or go on to the next item.
      for (;;) {
        skipSpace();
        if (open.empty()) return at_ == s_.size();
        if (at_ == s_.size()) return false;
        const char next = s_[at_++];
        if (next == ',') {
          skipSpace();
          if (open.back() == '{' && !member()) return false;
          break;
        }
        if (next != (open.back() == '[' ? ']' : '}')) return false;
        open.pop_back();
      }
    }
  }

 private:
  void skipSpace() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) ++at_;
  }

  // "key" : (the value follows)
  bool member() {
    if (!string()) return false;
    skipSpace();
    if (at_ == s_.size() || s_[at_] != ':') return false;
    ++at_;
    skipSpace();
    return true;
  }

  bool scalar() {
    const char c = s_[at_];
    if (c == '"') return string();
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    return number();
  }

  bool literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  bool digits() {
    const std::size_t from = at_;
    while (at_ < s_.size() && isDigit(s_[at_])) ++at_;
    return at_ > from;
  }

  bool number() {
    if (at_ < s_.size() && s_[at_] == '-') ++at_;
    if (at_ == s_.size()) return false;
    if (s_[at_] == '0') ++at_;
    else if (!digits()) return false;
    if (at_ < s_.size() && s_[at_] == '.') {
      ++at_;
      if (!digits()) return false;
    }
    if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
      ++at_;
      if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
      if (!digits()) return false;
    }
    return true;
  }

  bool string() {
    if (at_ == s_.size() || s_[at_] != '"') return false;
    ++at_;
    while (at_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[at_]);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++at_ == s_.size()) return false;
        const char e = s_[at_++];
        if (e == 'u') {
          for (int i = 0; i < 4; ++i, ++at_)
            if (at_ == s_.size() || !isHex(s_[at_])) return false;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
        continue;
      }
      const std::size_t n = utf8Sequence(reinterpret_cast<const unsigned char*>(s_.data()) + at_, s_.size() - at_);
      if (n == 0) return false;
      at_ += n;
    }
    return false;
  }

  std::string_view s_;
  std::size_t at_ = 0;
};

}  // namespace

bool isUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t i = 0; i < bytes.size();) {
    if (p[i] < 0x80) {  // ASCII runs are the common case
      ++i;
      continue;
    }
    const std::size_t n = utf8Sequence(p + i, bytes.size() - i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool isJson(std::string_view bytes) { return JsonChecker(bytes).check(); }

void appendBase64(std::string& out, std::string_view bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  out.reserve(out.size() + 4 * ((n + 2) / 3));
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < n) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (i + 1 < n ? std::uint32_t{p[i + 1]} << 8 : 0);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

}  // namespace text
}  // namespace streamrelay
