// SPDX-License-Identifier: Apache-2.0
#include "secret_mask.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace streamrelay {

namespace {

// The key's words, lower case: split at '_', '-', '.', and where camelCase
// starts a new word.
std::vector<std::string> wordsOf(std::string_view key) {
  std::vector<std::string> words(1);
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    const bool separator = c == '_' || c == '-' || c == '.';
    const bool camel = std::isupper(c) && i > 0 && std::islower(static_cast<unsigned char>(key[i - 1]));
    if ((separator || camel) && !words.back().empty()) words.emplace_back();
    if (!separator) words.back() += static_cast<char>(std::tolower(c));
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

bool isOneOf(const std::string& word, std::initializer_list<const char*> list) {
  return std::any_of(list.begin(), list.end(), [&](const char* w) { return word == w; });
}

// True if `c` ends a URL written inside other text.
bool endsUrl(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

// Masks, inside one URL, its userinfo and its secret query values.
std::string maskUrl(std::string_view url, std::size_t authorityStart) {
  std::string out(url.substr(0, authorityStart));
  const std::size_t authorityEnd = std::min(url.find_first_of("/?#", authorityStart), url.size());
  const std::string_view authority = url.substr(authorityStart, authorityEnd - authorityStart);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) out += std::string(kSecretShown) + std::string(authority.substr(at));
  else out += authority;
  std::string_view rest = url.substr(authorityEnd);
  const std::size_t query = rest.find('?');
  out += rest.substr(0, query);
  if (query == std::string_view::npos) return out;
  // ?name=value&name=value#fragment
  for (std::size_t i = query; i < rest.size();) {
    const char c = rest[i];
    out += c;
    ++i;
    if (c != '?' && c != '&') continue;
    const std::size_t nameEnd = std::min(rest.find_first_of("=&#", i), rest.size());
    out += rest.substr(i, nameEnd - i);
    if (nameEnd >= rest.size() || rest[nameEnd] != '=') {
      i = nameEnd;
      continue;
    }
    const std::size_t valueEnd = std::min(rest.find_first_of("&#", nameEnd + 1), rest.size());
    out += '=';
    out += isSecretKey(rest.substr(i, nameEnd - i)) ? std::string_view(kSecretShown)
                                                    : rest.substr(nameEnd + 1, valueEnd - nameEnd - 1);
    i = valueEnd;
  }
  return out;
}

YAML::Node masked(const YAML::Node& node, bool secret) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      if (secret) return YAML::Node(node.Scalar().empty() ? "" : kSecretShown);
      std::string text = maskUrlSecrets(node.Scalar());
      return text == node.Scalar() ? YAML::Clone(node) : YAML::Node(text);
    }
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      out.SetStyle(node.Style());
      for (const YAML::Node& item : node) out.push_back(masked(item, secret));
      return out;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      out.SetStyle(node.Style());
      for (const auto& entry : node)
        out.force_insert(YAML::Clone(entry.first),
                         masked(entry.second, secret || (entry.first.IsScalar() && isSecretKey(entry.first.Scalar()))));
      return out;
    }
    default:
      return YAML::Clone(node);
  }
}

}  // namespace

bool isSecretKey(std::string_view key) {
  const std::vector<std::string> words = wordsOf(key);
  if (words.empty() || isOneOf(words.back(), {"file", "files", "path", "dir", "claim"})) return false;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (isOneOf(words[i], {"password", "passwd", "pass", "pwd", "passphrase", "secret", "secrets", "token", "tokens",
                           "credential", "credentials", "creds", "auth", "authorization", "apikey", "bearer"}))
      return true;
    if (i + 1 < words.size() && words[i + 1] == "key" && isOneOf(words[i], {"api", "access", "private"})) return true;
  }
  return false;
}

std::string maskUrlSecrets(std::string_view text) {
  std::string out;
  std::size_t done = 0;
  for (std::size_t scheme = text.find("://"); scheme != std::string_view::npos; scheme = text.find("://", done)) {
    std::size_t start = scheme;  // the scheme's first letter
    while (start > done && (std::isalnum(static_cast<unsigned char>(text[start - 1])) || text[start - 1] == '+' ||
                            text[start - 1] == '-' || text[start - 1] == '.'))
      --start;
    std::size_t end = scheme + 3;
    while (end < text.size() && !endsUrl(text[end])) ++end;
    out += text.substr(done, start - done);
    out += maskUrl(text.substr(start, end - start), scheme + 3 - start);
    done = end;
  }
  out += text.substr(done);
  return out;
}

YAML::Node maskedPluginConfig(const std::string& yaml) {
  try {
    return masked(YAML::Load(yaml), false);
  } catch (const YAML::Exception&) {
    return YAML::Node(kSecretShown);  // never echo what could not be read
  }
}

}  // namespace streamrelay
