// SPDX-License-Identifier: Apache-2.0
#pragma once
// FrameFilter: the test the `filter` processor applies to each frame: the
// payload contains a byte string, matches a regular expression (POCO's
// RegularExpression: PCRE), or holds a JSON value that passes a test at a
// JSON pointer (equals, in a list, exists). `invert` keeps what fails instead.
//
// Built from the instance's config text; throws std::invalid_argument with
// "config.KEY: what is wrong". Not thread safe (one per instance).

#include <Poco/RegularExpression.h>

#include <streamrelay/plugin.hpp>

#include "json/json_pointer.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay::plugins {

// Its keys (the tests, and invert). Which test applies, and that there is
// exactly one, the plugin checks itself.
const ConfigKeys& filterConfigKeys();

class FrameFilter {
 public:
  enum class Verdict { Keep, Drop, Unparsable };

  explicit FrameFilter(const std::string& configYaml);
  // Unparsable: a JSON test on a payload that is not valid JSON (dropped).
  Verdict test(std::string_view payload) const;

 private:
  bool jsonPasses(const Poco::Dynamic::Var& root) const;

  enum class Kind { Contains, Regex, Json } kind_ = Kind::Contains;
  bool invert_ = false;
  std::string contains_;
  std::unique_ptr<Poco::RegularExpression> regex_;
  std::optional<JsonPointer> pointer_;
  std::vector<std::string> accepted_;      // equals (one) or in (several), as JSON text of scalars
  bool exists_ = false;                    // json.exists: the pointer resolves at all
};

}  // namespace streamrelay::plugins
