// SPDX-License-Identifier: Apache-2.0
#pragma once
// Subjects: how a subscriber's `select` patterns match a frame's key, with the
// rules of NATS subjects.
//
// A key is split into tokens by '.'. A pattern is tokens too; in a pattern the
// token '*' matches any one token and the token '>' (only as the last token)
// matches one or more tokens. So "md.*.BTC" matches "md.l2.BTC"; "md.>" matches
// "md.l2" and "md.l2.BTC" but not "md"; ">" matches every valid key.
//
// Keys: a frame's key is whatever bytes its stream's key rule found, and a frame
// cannot be refused for its key. A key is VALID when it is 1..kMaxKeyBytes bytes
// with no empty token (no leading, trailing or doubled '.'), as NATS requires of
// a subject; a key that is not valid matches no pattern at all, not even ">"
// (a selecting subscriber never gets its frames; one without `select` still
// gets every frame). Every other byte, '*' and '>' included, is an ordinary
// key byte: a key token "*" is matched by the wildcards only, never by a
// literal (a pattern has no literal token "*").
//
// Patterns: checkPattern() says which are valid; the other functions take
// checked patterns (containedIn() checks its own, since it guards access).
//
// Pure functions of their arguments: thread safe, never allocate per call
// except containedIn().

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay {
namespace subject {

// The longest key that can match a pattern. A longer pattern is refused: no key
// can match it (every pattern token stands for at least one key byte).
constexpr std::size_t kMaxKeyBytes = 256;

// Returns "" when `pattern` is valid, else a one-line reason naming it, e.g.
// `select pattern "a.>.b": '>' must be the last token`. Valid: 1..kMaxKeyBytes
// bytes; every token non-empty; '*' and '>' only as whole tokens ("a*" is
// refused, unlike NATS, where it would silently be a literal); '>' only last.
std::string checkPattern(std::string_view pattern);

// True if `key` is a valid key (see above): the only keys any pattern matches.
bool isValidKey(std::string_view key);

// True if `pattern` has no wildcard token: it matches exactly the key equal to it.
bool isLiteral(std::string_view pattern);

// True if the checked `pattern` matches `key`; false for every key that is not valid.
bool matches(std::string_view pattern, std::string_view key);

// True if every key `inner` matches is also matched by at least one pattern of
// `granted`: containment in the union, not string equality ("a.>" lies in
// {"a.*", "a.*.>"}, though in neither alone). An invalid `inner` is never
// contained; an invalid pattern in `granted` grants nothing. Allocates.
bool containedIn(std::string_view inner, const std::vector<std::string>& granted);

// Splits the first token off a valid key or checked pattern `rest` and returns
// it; `rest` keeps what follows the '.', and is empty after the last token.
inline std::string_view popToken(std::string_view& rest) {
  std::size_t dot = rest.find('.');
  std::string_view token = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  return token;
}

}  // namespace subject
}  // namespace streamrelay
