// SPDX-License-Identifier: Apache-2.0
#pragma once
// Schema and Settings: every config key is declared once, as a KeySpec (its
// name, kind, default, range, and the types it belongs to). readSettings
// validates a YAML mapping against a Schema and fills in defaults;
// emitSettings prints what it read (--check-config); the code that builds a
// source, listener or plugin instance reads its values from the Settings;
// diffSettings compares two of them key by key for a config reload, and
// each key says how a change to it applies (`reload`). Redis'
// standardConfig table is the model.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace streamrelay {

class YamlMap;
class Settings;
struct Schema;

enum class KeyKind {
  String,
  Int,
  Number,     // a double
  Bool,
  Strings,    // a list of strings
  Endpoint,   // HOST:PORT or [IPv6]:PORT
  Endpoints,  // a list of them
  Cidrs,      // a list of addresses or networks (allow lists)
  StringMap,  // a mapping of names to strings (HTTP headers)
  IntOrAuto,  // an integer, or `auto` (read as -1)
  Group,      // a mapping with keys of its own (`group`)
  Yaml,       // a sub-tree handed on as YAML text (a plugin's own config)
  Custom,     // read and printed by code (named here so it is a known key)
};

// How a config reload applies a changed key (NATS' reload.go options, Redis'
// IMMUTABLE flag): the running component takes it in place; the component
// (that one source, listener or plugin instance) is restarted alone; or only
// a restart of the relay applies it (said once, in the log).
// Inherit: the key's schema decides, else the key that holds the group.
enum class Reload { Inherit, InPlace, Component, Process };

// One key whose value differs between two Settings, and how that applies.
struct KeyChange {
  std::string key;  // its path inside the Settings: "allow", "auth.tokens", "tls.cert_file"
  Reload how;       // never Inherit
};

struct KeySpec {
  std::string name;
  KeyKind kind = KeyKind::String;
  std::string fallback;          // the default, as it would be written in YAML
  bool required = false;
  double min = 0, max = 0;       // Int, Number, IntOrAuto
  std::vector<std::string> choices;  // String: the accepted values (empty: any)
  bool expandEnv = false;        // ${NAME} expands from the environment (unset: an error)
  bool secret = false;           // printed as "(set)", never its value (StringMap: every value); compared by digest
  Reload reload = Reload::Inherit;
  const Schema* group = nullptr; // Group: the keys of the mapping
  std::string help;

  // Builders, so that a table reads as one line per key.
  KeySpec& def(std::string text) { fallback = std::move(text); return *this; }
  KeySpec& needed() { required = true; return *this; }
  KeySpec& range(double lo, double hi) { min = lo; max = hi; return *this; }
  KeySpec& oneOf(std::vector<std::string> values) { choices = std::move(values); return *this; }
  KeySpec& env() { expandEnv = true; return *this; }
  KeySpec& hidden() { secret = true; return *this; }
  KeySpec& applies(Reload how) { reload = how; return *this; }
  KeySpec& doc(std::string text) { help = std::move(text); return *this; }
};

KeySpec key(std::string name, KeyKind kind = KeyKind::String);
KeySpec groupKey(std::string name, const Schema& group);

// A check the table cannot express (one key against another). It calls
// m.fail(key, what) for what is wrong.
using SettingsCheck = std::function<void(const Settings&, const YamlMap&)>;

// One type of a typed schema (a source type, a framing type).
struct TypeSpec {
  std::string name;
  std::string summary;
  std::vector<KeySpec> keys;  // its own keys, beside the schema's common ones
  SettingsCheck check;
};

// The keys of one kind of mapping. With `types`, its `type` key (one of the
// common keys; `typeKey` names it) selects one, and the keys of every other type are errors that
// name the types they belong to.
struct Schema {
  std::string what;             // "source", "framing": how errors and docs name it
  std::vector<KeySpec> keys;    // keys every type has
  std::vector<TypeSpec> types;  // empty: untyped
  SettingsCheck check;          // after the type's own check
  Reload reload = Reload::Inherit;  // how its keys reload, unless a key says otherwise
  std::string typeKey = "type";     // with `types`: the common key that names the type (a listener's `protocol`)
  const TypeSpec* findType(const std::string& name) const;
};

// What readSettings read: every key that applies, in schema order, with
// defaults filled in. Immutable once read, except set() for values the
// config resolves later (a consumer's inputs, an instance's name).
class Settings {
 public:
  struct Value {
    std::string text;                   // String, Endpoint, Yaml; the type name of a typed schema
    std::int64_t integer = 0;           // Int, IntOrAuto (-1 = auto)
    double number = 0;
    bool boolean = false;
    std::vector<std::string> list;      // Strings, Cidrs, Endpoints
    std::vector<std::pair<std::string, std::string>> map;  // StringMap, in file order
    std::shared_ptr<const Settings> group;
    bool given = false;                 // written in the file (not the default)
  };

  Settings() = default;
  explicit Settings(const Schema& schema) : schema_(&schema) {}

  const Schema* schema() const { return schema_; }
  const std::string& type() const { return type_; }
  const std::string& string(const char* name) const { return at(name).text; }
  std::int64_t integer(const char* name) const { return at(name).integer; }
  double number(const char* name) const { return at(name).number; }
  bool boolean(const char* name) const { return at(name).boolean; }
  const std::vector<std::string>& strings(const char* name) const { return at(name).list; }
  const std::vector<std::pair<std::string, std::string>>& stringMap(const char* name) const { return at(name).map; }
  const Settings& group(const char* name) const { return *at(name).group; }
  bool given(const char* name) const { return at(name).given; }
  bool has(const char* name) const { return find(name) != nullptr; }

  void setString(const char* name, std::string text) { mutableAt(name).text = std::move(text); }
  void setStrings(const char* name, std::vector<std::string> list) { mutableAt(name).list = std::move(list); }

  struct Entry {
    const KeySpec* spec;
    Value value;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  friend Settings readSettings(const YamlMap& m, const Schema& schema);
  friend Settings adoptChanges(const Settings& running, const Settings& next, const std::vector<KeyChange>& taken);
  const Value* find(const char* name) const;
  // A key the schema does not give this type is a programming error: throws std::logic_error.
  const Value& at(const char* name) const;
  Value& mutableAt(const char* name);

  const Schema* schema_ = nullptr;
  std::string type_;
  std::vector<Entry> entries_;
};

// Validates `m` against `schema`: unknown keys, keys of another type, kinds,
// ranges, choices, required keys, then the checks. Throws ConfigError.
Settings readSettings(const YamlMap& m, const Schema& schema);

// Prints the keys of `settings` into an open mapping. `hook` may print an
// entry itself (it returns true); Custom keys it leaves are not printed.
using EmitHook = std::function<bool(YAML::Emitter&, const Settings::Entry&)>;
void emitSettings(YAML::Emitter& out, const Settings& settings, const EmitHook& hook = {});

// The keys whose values differ between two Settings read with the same
// schema, in schema order; a changed `type` is one change of `type`. Values
// are compared by value, secrets through a SHA-256 digest (never by how they
// print). `inherited`: how a key applies when neither it nor its schema says.
// Custom keys are left to the code that reads them.
std::vector<KeyChange> diffSettings(const Settings& before, const Settings& after,
                                    Reload inherited = Reload::Process);
inline bool sameSettings(const Settings& a, const Settings& b) { return diffSettings(a, b).empty(); }
// `running` with the values of the keys `taken` (as diffSettings names them)
// from `next`: what runs once a reload applied those keys and no others.
Settings adoptChanges(const Settings& running, const Settings& next, const std::vector<KeyChange>& taken);

// A reference of every key of `schema`, one per line, indented under `path`
// (what `streamrelay --list-keys` prints). `component`: what a change that
// restarts a component restarts ("listener"; empty: the schema's own name).
std::string describeSchema(const Schema& schema, const std::string& path, const std::string& component = "",
                           Reload inherited = Reload::Process);

// The pieces both key references (describeSchema, and the Markdown of
// keys_markdown.cpp) are made of, so that the two never say different things.
const char* kindName(KeyKind kind);
// The same for one key: a YAML key with choices is one of those words or a
// mapping (streams.NAME.log.fsync).
const char* kindName(const KeySpec& k);
// How a reload applies a change to `k` in `schema`: the key's own rule, else
// the schema's, else `inherited` (Inherit when the holder is not known).
Reload resolveReload(const KeySpec& k, const Schema& schema, Reload inherited);
// "in place", "restarts the listener", "needs a relay restart"; for Inherit,
// "as the key that holds it".
std::string reloadWords(Reload how, const std::string& component);
// The accepted values: `choices`, or for a typed schema's `type` its types.
std::vector<std::string> choicesOf(const KeySpec& k, const Schema& schema);
// "min..max" of a number, "" for other kinds.
std::string rangeOf(const KeySpec& k);
// The default as it would be written in YAML ("\n" quoted), "" if none.
std::string defaultOf(const KeySpec& k);

}  // namespace streamrelay
