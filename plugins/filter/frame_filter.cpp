#include "frame_filter.hpp"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <yaml-cpp/yaml.h>

#include <stdexcept>

namespace streamrelay::plugins {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw std::invalid_argument("config." + key + ": " + what);
}

// RFC 6901: "/a/b~1c/0" -> {"a", "b/c", "0"}.
std::vector<std::string> parsePointer(const std::string& text) {
  if (!text.empty() && text[0] != '/') fail("json.pointer", "'" + text + "' is not a JSON pointer (starts with /)");
  std::vector<std::string> tokens;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t next = text.find('/', at + 1);
    std::string token = text.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    std::string decoded;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        decoded += token[++i] == '0' ? '~' : '/';
      } else {
        decoded += token[i];
      }
    }
    tokens.push_back(decoded);
    if (next == std::string::npos) break;
    at = next;
  }
  return tokens;
}

// The value a JSON scalar is compared by: strings as they are, numbers,
// booleans and null as JSON writes them.
std::string scalarText(const Poco::Dynamic::Var& value) {
  if (value.isEmpty()) return "null";
  if (value.isBoolean()) return value.extract<bool>() ? "true" : "false";
  return value.convert<std::string>();
}

}  // namespace

FrameFilter::FrameFilter(const std::string& configYaml) {
  YAML::Node config = YAML::Load(configYaml);
  if (!config.IsMap()) throw std::invalid_argument("config: expected a mapping with one of contains, regex, json");
  int tests = 0;
  for (const auto& entry : config) {
    const std::string key = entry.first.as<std::string>();
    if (key == "invert") continue;
    if (key != "contains" && key != "regex" && key != "json")
      fail(key, "unknown key (expected contains, regex or json, and invert)");
    ++tests;
  }
  if (tests != 1) throw std::invalid_argument("config: needs exactly one of contains, regex, json");
  invert_ = config["invert"] && config["invert"].as<bool>();
  if (config["contains"]) {
    kind_ = Kind::Contains;
    contains_ = config["contains"].as<std::string>();
    if (contains_.empty()) fail("contains", "must not be empty");
  } else if (config["regex"]) {
    kind_ = Kind::Regex;
    try {
      regex_ = std::make_unique<Poco::RegularExpression>(config["regex"].as<std::string>());
    } catch (const Poco::Exception& e) {
      fail("regex", e.displayText());
    }
  } else {
    kind_ = Kind::Json;
    YAML::Node json = config["json"];
    if (!json.IsMap() || !json["pointer"]) fail("json", "needs {pointer: /path, and one of equals, in, exists}");
    int checks = 0;
    for (const auto& entry : json) {
      const std::string key = entry.first.as<std::string>();
      if (key == "pointer") continue;
      if (key != "equals" && key != "in" && key != "exists") fail("json." + key, "unknown key (expected equals, in, exists)");
      ++checks;
    }
    if (checks != 1) fail("json", "needs exactly one of equals, in, exists");
    pointer_ = parsePointer(json["pointer"].as<std::string>());
    if (json["equals"]) {
      accepted_.push_back(json["equals"].as<std::string>());
    } else if (json["in"]) {
      if (!json["in"].IsSequence() || json["in"].size() == 0) fail("json.in", "must be a non-empty list");
      for (const auto& item : json["in"]) accepted_.push_back(item.as<std::string>());
    } else {
      exists_ = json["exists"].as<bool>();
    }
  }
}

bool FrameFilter::jsonPasses(std::string_view payload, bool& parsed) const {
  Poco::Dynamic::Var root;
  try {
    Poco::JSON::Parser parser;
    root = parser.parse(std::string(payload));
  } catch (const Poco::Exception&) {
    parsed = false;
    return false;
  }
  parsed = true;
  Poco::Dynamic::Var at = root;
  for (const std::string& token : pointer_) {
    if (at.type() == typeid(Poco::JSON::Object::Ptr)) {
      auto object = at.extract<Poco::JSON::Object::Ptr>();
      if (!object->has(token)) return !exists_ && accepted_.empty() ? true : false;
      at = object->get(token);
    } else if (at.type() == typeid(Poco::JSON::Array::Ptr)) {
      auto array = at.extract<Poco::JSON::Array::Ptr>();
      if (token.empty() || token.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(token) >= array->size())
        return !exists_ && accepted_.empty() ? true : false;
      at = array->get(static_cast<unsigned>(std::stoul(token)));
    } else {
      return !exists_ && accepted_.empty() ? true : false;
    }
  }
  if (accepted_.empty()) return exists_;  // the pointer resolved
  if (at.type() == typeid(Poco::JSON::Object::Ptr) || at.type() == typeid(Poco::JSON::Array::Ptr)) return false;
  const std::string text = scalarText(at);
  for (const std::string& accepted : accepted_)
    if (text == accepted) return true;
  return false;
}

FrameFilter::Verdict FrameFilter::test(std::string_view payload) const {
  bool pass = false;
  switch (kind_) {
    case Kind::Contains:
      pass = payload.find(contains_) != std::string_view::npos;
      break;
    case Kind::Regex: {  // a search, as grep does, not a match of the whole payload
      Poco::RegularExpression::Match found;
      pass = regex_->match(std::string(payload), 0, found) > 0;
      break;
    }
    case Kind::Json: {
      bool parsed = true;
      pass = jsonPasses(payload, parsed);
      if (!parsed) return Verdict::Unparsable;
      break;
    }
  }
  return pass != invert_ ? Verdict::Keep : Verdict::Drop;
}

}  // namespace streamrelay::plugins
