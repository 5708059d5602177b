// SPDX-License-Identifier: Apache-2.0
#include "subject.hpp"

#include <algorithm>
#include <cstdio>

namespace streamrelay {
namespace subject {

namespace {

// How much of a refused pattern its reason shows: enough to recognise it,
// never a whole over-long line from a peer.
constexpr std::size_t kShownPatternBytes = 64;

// `pattern` in double quotes, with quotes, backslashes and bytes that are not
// printable ASCII escaped, so that the reason stays one readable line.
std::string quoted(std::string_view pattern) {
  std::string out = "\"";
  for (char c : pattern.substr(0, kShownPatternBytes)) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", byte);
      out += hex;
    } else {
      out += c;
    }
  }
  out += pattern.size() > kShownPatternBytes ? "\"..." : "\"";
  return out;
}

std::string refused(std::string_view pattern, const std::string& why) {
  return "select pattern " + quoted(pattern) + ": " + why;
}

bool isWildcard(std::string_view token) { return token == "*" || token == ">"; }

// Matches tokens; an empty key token stands for a token that no pattern names
// (a checked pattern has no empty literal), which only the wildcards match.
bool matchTokens(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& key) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == ">") return key.size() > i;
    if (i == key.size()) return false;
    if (pattern[i] != "*" && pattern[i] != key[i]) return false;
  }
  return key.size() == pattern.size();
}

std::vector<std::string_view> tokensOf(std::string_view pattern) {
  std::vector<std::string_view> tokens;
  while (!pattern.empty()) tokens.push_back(popToken(pattern));
  return tokens;
}

}  // namespace

std::string checkPattern(std::string_view pattern) {
  if (pattern.empty()) return refused(pattern, "empty (a pattern has at least one token)");
  if (pattern.size() > kMaxKeyBytes) {
    return refused(pattern, std::to_string(pattern.size()) + " bytes, over the " + std::to_string(kMaxKeyBytes) +
                                " bytes a key may have");
  }
  std::size_t index = 0;
  std::size_t start = 0;
  while (start <= pattern.size()) {
    std::size_t dot = std::min(pattern.find('.', start), pattern.size());
    std::string_view token = pattern.substr(start, dot - start);
    ++index;
    bool last = dot == pattern.size();
    if (token.empty()) {
      return refused(pattern, "token " + std::to_string(index) + " is empty (a '.' at the start, the end or next to another '.')");
    }
    if (!isWildcard(token) && token.find_first_of("*>") != std::string_view::npos) {
      return refused(pattern, "'*' and '>' must be whole tokens (token " + std::to_string(index) + " is " +
                                  quoted(token) + ")");
    }
    if (token == ">" && !last) return refused(pattern, "'>' must be the last token");
    start = dot + 1;
  }
  return "";
}

bool isValidKey(std::string_view key) {
  return !key.empty() && key.size() <= kMaxKeyBytes && key.front() != '.' && key.back() != '.' &&
         key.find("..") == std::string_view::npos;
}

bool isLiteral(std::string_view pattern) {
  while (!pattern.empty()) {
    if (isWildcard(popToken(pattern))) return false;
  }
  return true;
}

bool matches(std::string_view pattern, std::string_view key) {
  if (!isValidKey(key)) return false;
  while (!pattern.empty()) {
    std::string_view token = popToken(pattern);
    if (token == ">") return !key.empty();
    if (key.empty()) return false;
    std::string_view keyToken = popToken(key);
    if (token != "*" && token != keyToken) return false;
  }
  return key.empty();
}

// Why one probe key per length is enough: the keys of one length that a
// pattern matches are a product of sets, each one literal token or every
// token. The probe puts a token that no pattern names (the "fresh" token) at
// each of inner's wildcard positions. A granted pattern that matches the probe
// has a wildcard at each of those positions and inner's literal or a wildcard
// at the others, so it matches every key inner matches at that length. With
// every token allowed, inner lies in the union at a length exactly when the
// probe is matched. Past the longest granted pattern only granted '>'
// patterns match, and they look at a fixed prefix of the probe: one length
// past it answers for all longer ones.
bool containedIn(std::string_view inner, const std::vector<std::string>& granted) {
  if (!checkPattern(inner).empty()) return false;
  std::vector<std::vector<std::string_view>> grants;
  std::size_t longest = 0;
  for (const auto& pattern : granted) {
    if (!checkPattern(pattern).empty()) continue;
    grants.push_back(tokensOf(pattern));
    longest = std::max(longest, grants.back().size());
  }
  std::vector<std::string_view> innerTokens = tokensOf(inner);
  bool openEnded = innerTokens.back() == ">";
  std::size_t shortest = innerTokens.size();
  std::size_t longestProbe = openEnded ? std::max(shortest, longest + 1) : shortest;
  const std::string_view fresh;
  std::vector<std::string_view> probe;
  for (const auto& token : innerTokens) probe.push_back(isWildcard(token) ? fresh : token);
  for (std::size_t length = shortest; length <= longestProbe; ++length) {
    probe.resize(length, fresh);
    bool covered = std::any_of(grants.begin(), grants.end(),
                               [&](const std::vector<std::string_view>& grant) { return matchTokens(grant, probe); });
    if (!covered) return false;
  }
  return true;
}

}  // namespace subject
}  // namespace streamrelay
