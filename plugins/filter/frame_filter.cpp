// SPDX-License-Identifier: Apache-2.0
#include "frame_filter.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <stdexcept>

namespace streamrelay::plugins {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw std::invalid_argument("config." + key + ": " + what);
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
    try {
      pointer_.emplace(json["pointer"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      fail("json.pointer", e.what());
    }
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

bool FrameFilter::jsonPasses(const Poco::Dynamic::Var& root) const {
  std::optional<Poco::Dynamic::Var> value = pointer_->resolve(root);
  if (accepted_.empty()) return value.has_value() == exists_;
  if (!value) return false;
  std::optional<std::string> text = scalarText(*value);
  return text && std::find(accepted_.begin(), accepted_.end(), *text) != accepted_.end();
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
      std::optional<Poco::Dynamic::Var> root = parseJson(payload);
      if (!root) return Verdict::Unparsable;
      pass = jsonPasses(*root);
      break;
    }
  }
  return pass != invert_ ? Verdict::Keep : Verdict::Drop;
}

}  // namespace streamrelay::plugins
