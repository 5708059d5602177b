// SPDX-License-Identifier: Apache-2.0
#include "json_pointer.hpp"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <stdexcept>

namespace streamrelay::plugins {

JsonPointer::JsonPointer(const std::string& text) {
  if (!text.empty() && text[0] != '/')
    throw std::invalid_argument("'" + text + "' is not a JSON pointer (it starts with /)");
  for (std::size_t at = 0; at < text.size();) {
    std::size_t next = text.find('/', at + 1);
    std::string token = text.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    std::string decoded;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1'))
        decoded += token[++i] == '0' ? '~' : '/';
      else
        decoded += token[i];
    }
    tokens_.push_back(decoded);
    if (next == std::string::npos) break;
    at = next;
  }
}

std::optional<Poco::Dynamic::Var> JsonPointer::resolve(const Poco::Dynamic::Var& root) const {
  Poco::Dynamic::Var at = root;
  for (const std::string& token : tokens_) {
    if (at.type() == typeid(Poco::JSON::Object::Ptr)) {
      auto object = at.extract<Poco::JSON::Object::Ptr>();
      if (!object->has(token)) return std::nullopt;
      at = object->get(token);
    } else if (at.type() == typeid(Poco::JSON::Array::Ptr)) {
      auto array = at.extract<Poco::JSON::Array::Ptr>();
      if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      const unsigned long index = std::stoul(token);
      if (index >= array->size()) return std::nullopt;
      at = array->get(static_cast<unsigned>(index));
    } else {
      return std::nullopt;
    }
  }
  return at;
}

std::optional<Poco::Dynamic::Var> parseJson(std::string_view payload) {
  try {
    Poco::JSON::Parser parser;
    return parser.parse(std::string(payload));
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

std::optional<std::string> scalarText(const Poco::Dynamic::Var& value) {
  if (value.type() == typeid(Poco::JSON::Object::Ptr) || value.type() == typeid(Poco::JSON::Array::Ptr))
    return std::nullopt;
  if (value.isEmpty()) return std::string("null");
  if (value.isBoolean()) return std::string(value.extract<bool>() ? "true" : "false");
  return value.convert<std::string>();
}

}  // namespace streamrelay::plugins
