// SPDX-License-Identifier: Apache-2.0
#pragma once
// YamlMap: typed, validated access to one YAML mapping of the config file.
// Every error it raises is one line: "FILE:LINE: key.path: what is wrong".

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "config.hpp"

namespace streamrelay {

class YamlMap {
 public:
  // `node` must be a map (or null/absent: then every key takes its default).
  YamlMap(YAML::Node node, std::string path, std::string source);

  // Unknown keys are errors, with the line of the offending key.
  void allowOnly(std::initializer_list<const char*> keys) const;

  bool has(const char* key) const;
  // The keys of this mapping, in file order (each a plain name; see allowOnly).
  std::vector<std::string> keys() const;
  std::string getString(const char* key, const std::string& fallback) const;
  std::string requireString(const char* key) const;
  std::int64_t getInt(const char* key, std::int64_t fallback, std::int64_t min, std::int64_t max) const;
  double getDouble(const char* key, double fallback, double min, double max) const;
  bool getBool(const char* key, bool fallback) const;
  YamlMap map(const char* key) const;
  // A sequence of maps (or absent: empty).
  std::vector<YamlMap> mapList(const char* key) const;
  std::vector<std::string> stringList(const char* key) const;
  // The raw node under `key` (for sub-trees handed on as text).
  YAML::Node node(const char* key) const { return node_[key]; }

  [[noreturn]] void fail(const char* key, const std::string& what) const;
  [[noreturn]] void failHere(const std::string& what) const;
  std::string where(const char* key) const;  // "FILE:LINE" of the key (of this mapping if absent)
  std::string path(const char* key) const;
  const std::string& source() const { return source_; }

 private:
  YAML::Node scalar(const char* key) const;

  YAML::Node node_;
  std::string path_;
  std::string source_;
};

}  // namespace streamrelay
