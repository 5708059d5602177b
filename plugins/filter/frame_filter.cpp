// SPDX-License-Identifier: Apache-2.0
#include "frame_filter.hpp"

#include <algorithm>
#include <stdexcept>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

const ConfigKeys& filterConfigKeys() {
  static const ConfigKeys keys{
      stringKey("contains").doc("keep frames whose payload contains these bytes"),
      stringKey("regex").doc("keep frames in which this regular expression (PCRE) finds a match"),
      groupKey("json").doc("keep frames whose JSON value at `pointer` passes one test"),
      stringKey("json.pointer").doc("a JSON pointer, such as /type (required with json)"),
      stringKey("json.equals").doc("the value equals this scalar"),
      stringsKey("json.in").doc("the value is one of these scalars"),
      boolKey("json.exists", false).doc("the pointer resolves (true) or does not (false)"),
      boolKey("invert", false).doc("keep the frames that fail the test instead"),
  };
  return keys;
}

FrameFilter::FrameFilter(const std::string& configYaml) {
  const ConfigReader config(configYaml, filterConfigKeys());
  auto fail = &ConfigReader::fail;
  const int tests = config.given("contains") + config.given("regex") + config.given("json");
  if (tests != 1) throw std::invalid_argument("config: needs exactly one of contains, regex, json");
  invert_ = config.boolean("invert");
  if (config.given("contains")) {
    kind_ = Kind::Contains;
    contains_ = config.string("contains");
    if (contains_.empty()) fail("contains", "must not be empty");
  } else if (config.given("regex")) {
    kind_ = Kind::Regex;
    try {
      regex_ = std::make_unique<Poco::RegularExpression>(config.string("regex"));
    } catch (const Poco::Exception& e) {
      fail("regex", e.displayText());
    }
  } else {
    kind_ = Kind::Json;
    if (!config.given("json.pointer")) fail("json", "needs {pointer: /path, and one of equals, in, exists}");
    const int checks = config.given("json.equals") + config.given("json.in") + config.given("json.exists");
    if (checks != 1) fail("json", "needs exactly one of equals, in, exists");
    try {
      pointer_.emplace(config.string("json.pointer"));
    } catch (const std::invalid_argument& e) {
      fail("json.pointer", e.what());
    }
    if (config.given("json.equals")) {
      accepted_.push_back(config.string("json.equals"));
    } else if (config.given("json.in")) {
      accepted_ = config.strings("json.in");
      if (accepted_.empty()) fail("json.in", "must be a non-empty list");
    } else {
      exists_ = config.boolean("json.exists");
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
