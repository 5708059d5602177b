// SPDX-License-Identifier: Apache-2.0
#pragma once
// JSON pointers (RFC 6901) over POCO's JSON values, for the processors that
// test or key frames by a field: "/data/0/sym" names data[0].sym.

#include <Poco/Dynamic/Var.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay::plugins {

class JsonPointer {
 public:
  // Throws std::invalid_argument if `text` is not a pointer ("" or "/...").
  explicit JsonPointer(const std::string& text);
  // The value the pointer names in `root`, if any.
  std::optional<Poco::Dynamic::Var> resolve(const Poco::Dynamic::Var& root) const;

 private:
  std::vector<std::string> tokens_;  // decoded: "~1" is "/", "~0" is "~"
};

// Parses a payload as JSON; nothing if it is not JSON.
std::optional<Poco::Dynamic::Var> parseJson(std::string_view payload);
// How a scalar compares with a configured value: strings as they are;
// numbers, booleans and null as JSON writes them. Nothing for objects and arrays.
std::optional<std::string> scalarText(const Poco::Dynamic::Var& value);

}  // namespace streamrelay::plugins
