// SPDX-License-Identifier: Apache-2.0
#include "key_extractor.hpp"

#include <pcre.h>
#include <simdjson.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace streamrelay {

namespace {

// A JSON frame larger than this has no key: the parser's memory grows to a
// few times the largest document it read, and keeps it.
constexpr std::size_t kMaxJsonFrameBytes = 16u << 20;

// PCRE's JIT runs on a stack of its own (32 KiB by default): a pattern that
// would need more, or more steps than this, finds no key in that frame
// instead of taking the thread's stack or time.
constexpr unsigned long kRegexMatchLimit = 1000000;

std::string jsonPointerProblem(const std::string& pointer) {
  if (pointer.empty() || pointer[0] != '/')
    return "must start with '/' (RFC 6901), e.g. /symbol; got '" + pointer + "'";
  for (std::size_t i = 0; i < pointer.size(); ++i)
    if (pointer[i] == '~' && (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')))
      return "'~' at offset " + std::to_string(i) + " must be followed by 0 or 1 (RFC 6901: ~0 is '~', ~1 is '/')";
  return "";
}

// JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool isJsonNumber(std::string_view t) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > start;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') ++i;
  else if (!digits()) return false;
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

// simdjson On-Demand: reads the document only as far as the pointer leads.
// It reads up to SIMDJSON_PADDING bytes past the payload, and what it finds
// in a truncated document depends on them: each payload is copied into
// padded_ and followed by zeros. (Parsing in the batch's buffer, followed by
// the next frames, gave another key for some malformed frames; the fuzz
// target found it. The copy costs less than the measurement's noise.)
class JsonPointerFinder final : public KeyFinder {
 public:
  explicit JsonPointerFinder(std::string pointer) : pointer_(std::move(pointer)) {}

  std::optional<std::string_view> find(std::string_view payload) override {
    if (payload.size() > kMaxJsonFrameBytes) return std::nullopt;
    const std::size_t capacity = payload.size() + simdjson::SIMDJSON_PADDING;
    if (padded_.size() < capacity) padded_.resize(capacity);
    std::memcpy(padded_.data(), payload.data(), payload.size());
    std::memset(padded_.data() + payload.size(), 0, simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    simdjson::ondemand::value value;
    simdjson::ondemand::json_type type;
    if (parser_.iterate(padded_.data(), payload.size(), capacity).get(doc) || doc.at_pointer(pointer_).get(value) ||
        value.type().get(type))
      return std::nullopt;
    if (type == simdjson::ondemand::json_type::string) {
      std::string_view text;
      if (value.get_string().get(text)) return std::nullopt;
      return text;
    }
    if (type != simdjson::ondemand::json_type::number) return std::nullopt;
    // The number as written: its token, without the whitespace that may follow it.
    std::string_view token = value.raw_json_token();
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' ||
                              token.back() == '\r'))
      token.remove_suffix(1);
    if (!isJsonNumber(token)) return std::nullopt;
    return token;
  }

 private:
  const std::string pointer_;
  simdjson::ondemand::parser parser_;
  std::vector<char> padded_;
};

// A compiled PCRE pattern, studied with the JIT when it is available.
class Pcre {
 public:
  // Throws std::invalid_argument with PCRE's reason.
  explicit Pcre(const std::string& pattern) {
    const char* error = nullptr;
    int offset = 0;
    re_ = pcre_compile(pattern.c_str(), 0, &error, &offset, nullptr);
    if (!re_)
      throw std::invalid_argument("does not compile: " + std::string(error ? error : "unknown error") +
                                  " at offset " + std::to_string(offset));
    extra_ = pcre_study(re_, PCRE_STUDY_JIT_COMPILE | PCRE_STUDY_EXTRA_NEEDED, &error);
    if (extra_) {
      extra_->flags |= PCRE_EXTRA_MATCH_LIMIT | PCRE_EXTRA_MATCH_LIMIT_RECURSION;
      extra_->match_limit = kRegexMatchLimit;
      extra_->match_limit_recursion = 2000;  // without the JIT, recursion takes the thread's stack
    }
  }
  ~Pcre() {
    if (extra_) pcre_free_study(extra_);
    pcre_free(re_);
  }
  Pcre(const Pcre&) = delete;
  Pcre& operator=(const Pcre&) = delete;

  int groups() const {
    int count = 0;
    pcre_fullinfo(re_, extra_, PCRE_INFO_CAPTURECOUNT, &count);
    return count;
  }
  // pcre_exec's result: < 0 no match (or a limit was reached).
  int match(std::string_view subject, std::vector<int>& ovector) const {
    return pcre_exec(re_, extra_, subject.data(), static_cast<int>(subject.size()), 0, 0, ovector.data(),
                     static_cast<int>(ovector.size()));
  }

 private:
  pcre* re_ = nullptr;
  pcre_extra* extra_ = nullptr;
};

// The first match's group `group` (0: the whole match).
class RegexFinder final : public KeyFinder {
 public:
  RegexFinder(const std::string& pattern, int group)
      : re_(pattern), group_(group), ovector_(3 * static_cast<std::size_t>(group + 1)) {}

  std::optional<std::string_view> find(std::string_view payload) override {
    if (payload.size() > static_cast<std::size_t>(INT32_MAX)) return std::nullopt;
    const int rc = re_.match(payload, ovector_);
    // rc 0: more groups matched than ovector_ holds; the ones it holds are set.
    if (rc < 0 || (rc > 0 && group_ >= rc)) return std::nullopt;
    const int begin = ovector_[2 * group_], end = ovector_[2 * group_ + 1];
    if (begin < 0) return std::nullopt;
    return payload.substr(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
  }

 private:
  const Pcre re_;
  const int group_;
  std::vector<int> ovector_;
};

class BytesFinder final : public KeyFinder {
 public:
  BytesFinder(std::size_t offset, std::size_t length) : offset_(offset), length_(length) {}

  std::optional<std::string_view> find(std::string_view payload) override {
    if (payload.size() < offset_ || payload.size() - offset_ < length_) return std::nullopt;
    return payload.substr(offset_, length_);
  }

 private:
  const std::size_t offset_;
  const std::size_t length_;
};

std::unique_ptr<KeyFinder> makeFinder(const KeyRule& rule) {
  switch (rule.kind) {
    case KeyRule::Kind::JsonPointer: return std::make_unique<JsonPointerFinder>(rule.pointer);
    case KeyRule::Kind::Regex: return std::make_unique<RegexFinder>(rule.pattern, rule.group);
    case KeyRule::Kind::Bytes: return std::make_unique<BytesFinder>(rule.offset, rule.length);
  }
  return nullptr;
}

}  // namespace

std::optional<KeyRuleProblem> keyRuleProblem(const KeyRule& rule) {
  switch (rule.kind) {
    case KeyRule::Kind::JsonPointer:
      if (std::string why = jsonPointerProblem(rule.pointer); !why.empty()) return KeyRuleProblem{"json_pointer", why};
      break;
    case KeyRule::Kind::Regex: {
      int groups = 0;
      try {
        groups = Pcre(rule.pattern).groups();
      } catch (const std::invalid_argument& e) {
        return KeyRuleProblem{"regex", e.what()};
      }
      if (rule.group < 0 || rule.group > groups)
        return KeyRuleProblem{"group", std::to_string(rule.group) + " is not a group of the regex, which has " +
                                           std::to_string(groups) + " (0 is the whole match)"};
      break;
    }
    case KeyRule::Kind::Bytes:
      if (rule.length == 0 || rule.length > kMaxKeyBytes)
        return KeyRuleProblem{"bytes.length", "must be 1.." + std::to_string(kMaxKeyBytes) + " (a key is at most " +
                                                  std::to_string(kMaxKeyBytes) + " bytes), got " +
                                                  std::to_string(rule.length)};
      break;
  }
  return std::nullopt;
}

KeyExtractor::KeyExtractor(KeyRule rule) : rule_(std::move(rule)) {
  if (auto problem = keyRuleProblem(rule_)) throw std::invalid_argument("key." + problem->key + ": " + problem->what);
  finder_ = makeFinder(rule_);
}

KeyExtractor::~KeyExtractor() = default;

std::optional<std::string_view> KeyExtractor::find(std::string_view payload) {
  std::optional<std::string_view> key = finder_->find(payload);
  if (!key || key->empty() || key->size() > kMaxKeyBytes) return std::nullopt;
  return key;
}

void KeyExtractor::keyBatch(FrameBatch& batch) {
  const std::size_t count = batch.frameCount();
  if (count == 0) return;
  FrameKeys keys;
  for (std::size_t i = 0; i < count; ++i) {
    if (batch.hasKey(i)) {
      keys.add(batch.key(i));
      continue;
    }
    const auto key = find(batch.payload(i));
    if (key) keys.add(*key);
    else keys.addNone();
  }
  batch.setKeys(std::move(keys));
}

}  // namespace streamrelay
