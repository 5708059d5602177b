// SPDX-License-Identifier: Apache-2.0
#pragma once
// KeyExtractor: finds each frame's key once, when its batch is published
// (streams.NAME.key), so that every consumer can select by key without
// parsing the frame again.
//
// A rule is one of: a JSON pointer (RFC 6901) to a string or number, a
// regular expression (PCRE) and one of its groups, or a byte range. A frame
// in which the rule finds nothing, or finds more than kMaxKeyBytes bytes or
// an empty value, has no key. Nothing a frame holds makes it throw or crash.
//
// Not thread safe: each stream's bus owns one, used by its publishing thread.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "frame_batch.hpp"
#include "subject.hpp"

namespace streamrelay {

// The longest key (in bytes); a longer one found in a frame is no key.
constexpr std::size_t kMaxKeyBytes = subject::kMaxKeyBytes;  // a longer key could be selected by no pattern

struct KeyRule {
  enum class Kind { JsonPointer, Regex, Bytes };
  Kind kind = Kind::JsonPointer;
  std::string pointer;  // JsonPointer: "/symbol", "/a~1b/0" (checked by keyRuleProblem)
  std::string pattern;  // Regex
  int group = 1;        // Regex: the capture group that is the key (0: the whole match)
  std::size_t offset = 0;  // Bytes
  std::size_t length = 0;  // Bytes: 1..kMaxKeyBytes

  bool operator==(const KeyRule& o) const {
    return kind == o.kind && pointer == o.pointer && pattern == o.pattern && group == o.group &&
           offset == o.offset && length == o.length;
  }
};

// What is wrong with a rule: `key` names the rule's key it is about
// ("json_pointer", "regex", "group", "bytes.length"); `what` says why in one
// line. A pointer that is not RFC 6901, a pattern that does not compile (with
// PCRE's reason), a group the pattern does not have, a length of 0 or over
// kMaxKeyBytes.
struct KeyRuleProblem {
  std::string key;
  std::string what;
};
std::optional<KeyRuleProblem> keyRuleProblem(const KeyRule& rule);

// How a rule finds the key in one payload (one class per rule kind).
class KeyFinder {
 public:
  virtual ~KeyFinder() = default;
  // The key of `payload`, or none. The view is valid until the next call.
  virtual std::optional<std::string_view> find(std::string_view payload) = 0;
};

class KeyExtractor {
 public:
  // `rule` must have no keyRuleProblem (throws std::invalid_argument otherwise).
  explicit KeyExtractor(KeyRule rule);
  ~KeyExtractor();
  KeyExtractor(const KeyExtractor&) = delete;
  KeyExtractor& operator=(const KeyExtractor&) = delete;

  const KeyRule& rule() const { return rule_; }

  // Gives every frame of `batch` its key or none; a frame that has a key
  // already (a processor's emit_keyed) keeps it. Call before the batch is shared.
  void keyBatch(FrameBatch& batch);

  // The key of one payload, or none (valid until the next call): what
  // keyBatch finds for a frame without a key.
  std::optional<std::string_view> find(std::string_view payload);

 private:
  const KeyRule rule_;
  std::unique_ptr<KeyFinder> finder_;
};

}  // namespace streamrelay
