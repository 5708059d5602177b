// SPDX-License-Identifier: Apache-2.0
#include "schema.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "cidr.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

// Expands ${NAME} from the environment; an unset variable is an error.
std::string expandEnv(const YamlMap& m, const char* key, const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    auto close = text.find('}', i);
    if (close == std::string::npos) m.fail(key, "unterminated ${ in '" + text + "'");
    std::string name = text.substr(i + 2, close - i - 2);
    const char* value = std::getenv(name.c_str());
    if (!value) m.fail(key, "environment variable " + name + " is not set");
    out += value;
    i = close + 1;
  }
  return out;
}

void checkEndpoint(const YamlMap& m, const char* key, const std::string& text) {
  auto colon = text.rfind(':');
  bool bracketsOk = text.empty() || text[0] != '[' || (colon != std::string::npos && colon > 0 && text[colon - 1] == ']');
  std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (colon == std::string::npos || colon == 0 || !bracketsOk || port.empty() ||
      port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
    m.fail(key, "expected HOST:PORT or [IPv6]:PORT, got '" + text + "'");
}

// Reads one key of `m` as `spec` says.
Settings::Value readValue(const YamlMap& m, const KeySpec& spec) {
  const char* name = spec.name.c_str();
  Settings::Value v;
  v.given = m.has(name);
  if (spec.required && !v.given) m.failHere("missing required key '" + spec.name + "'");
  switch (spec.kind) {
    case KeyKind::String:
      v.text = m.getString(name, spec.fallback);
      if (spec.expandEnv) v.text = expandEnv(m, name, v.text);
      if (!spec.choices.empty()) {
        bool known = false;
        for (const std::string& choice : spec.choices) known = known || choice == v.text;
        if (!known) m.fail(name, "'" + v.text + "' is not one of: " + join(spec.choices));
      }
      break;
    case KeyKind::Int:
      v.integer = m.getInt(name, std::stoll(spec.fallback), static_cast<std::int64_t>(spec.min),
                           static_cast<std::int64_t>(spec.max));
      break;
    case KeyKind::Number:
      v.number = m.getDouble(name, std::stod(spec.fallback), spec.min, spec.max);
      break;
    case KeyKind::Bool:
      v.boolean = m.getBool(name, spec.fallback == "true");
      break;
    case KeyKind::Strings:
      v.list = m.stringList(name);
      if (spec.expandEnv)
        for (std::string& item : v.list) item = expandEnv(m, name, item);
      break;
    case KeyKind::Cidrs:
      v.list = m.stringList(name);
      for (const std::string& text : v.list) {
        try {
          Cidr::parse(text);
        } catch (const std::invalid_argument& e) {
          m.fail(name, e.what());
        }
      }
      break;
    case KeyKind::Endpoint:
      v.text = m.getString(name, spec.fallback);
      if (v.given || !v.text.empty()) checkEndpoint(m, name, v.text);
      break;
    case KeyKind::StringMap: {
      const YamlMap entries = m.map(name);
      for (const std::string& entry : entries.keys()) {
        std::string text = entries.getString(entry.c_str(), "");
        if (spec.expandEnv) text = expandEnv(entries, entry.c_str(), text);
        v.map.emplace_back(entry, std::move(text));
      }
      break;
    }
    case KeyKind::Endpoints:
      v.list = m.stringList(name);
      for (const std::string& text : v.list) checkEndpoint(m, name, text);
      break;
    case KeyKind::IntOrAuto:
      if (m.getString(name, spec.fallback) == "auto") v.integer = -1;
      else v.integer = m.getInt(name, -1, static_cast<std::int64_t>(spec.min), static_cast<std::int64_t>(spec.max));
      break;
    case KeyKind::Group:
      v.group = std::make_shared<const Settings>(readSettings(m.map(name), *spec.group));
      break;
    case KeyKind::Yaml:
      if (v.given) {
        YAML::Emitter out;
        out << YAML::Flow << m.node(name);
        v.text = out.c_str();
      } else {
        v.text = spec.fallback.empty() ? "{}" : spec.fallback;
      }
      break;
    case KeyKind::Custom:
      break;
  }
  return v;
}

const KeySpec* findKey(const std::vector<KeySpec>& keys, const std::string& name) {
  for (const KeySpec& k : keys)
    if (k.name == name) return &k;
  return nullptr;
}

bool hasCustomKeys(const Schema& schema) {
  for (const KeySpec& k : schema.keys)
    if (k.kind == KeyKind::Custom) return true;
  return false;
}

bool printable(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') return false;
  return true;
}

std::string number(double value) {
  std::ostringstream text;
  text.precision(15);
  text << value;
  return text.str();
}

// The text as a YAML double-quoted string would write it ("\n" for a newline).
std::string escaped(const std::string& text) {
  YAML::Emitter out;
  out << YAML::DoubleQuoted << text;
  return out.c_str();
}

void describeKeys(std::ostringstream& out, const Schema& schema, const std::vector<KeySpec>& keys,
                  const std::string& path, const std::string& only, const std::string& component,
                  Reload inherited) {
  for (const KeySpec& k : keys) {
    const std::string keyPath = path.empty() ? k.name : path + "." + k.name;
    const Reload how = resolveReload(k, schema, inherited);
    std::string line = keyPath + "  " + kindName(k);
    if (const std::string range = rangeOf(k); !range.empty()) line += " " + range;
    if (const std::vector<std::string> choices = choicesOf(k, schema); !choices.empty())
      line += " (" + join(choices) + ")";
    if (k.required) line += ", required";
    else if (const std::string fallback = defaultOf(k); !fallback.empty()) line += ", default " + fallback;
    if (k.expandEnv) line += ", ${ENV} expands";
    if (!only.empty()) line += " [" + only + "]";
    if (!k.help.empty()) line += " — " + k.help;
    // A group's keys say for themselves; code reads (and reloads) Custom ones.
    if (k.kind != KeyKind::Group && k.kind != KeyKind::Custom) line += " [reload: " + reloadWords(how, component) + "]";
    out << line << "\n";
    if (k.kind == KeyKind::Group) out << describeSchema(*k.group, keyPath, component, how);
  }
}

// A value as bytes that differ exactly when the values differ: every piece
// carries its length, so no two values share an encoding.
void appendCanonical(std::string& out, const std::string& piece) {
  out += std::to_string(piece.size()) + ":" + piece;
}

std::string canonical(const KeySpec& k, const Settings::Value& v) {
  std::string out;
  switch (k.kind) {
    case KeyKind::String:
    case KeyKind::Endpoint:
    case KeyKind::Yaml: appendCanonical(out, v.text); break;
    case KeyKind::Int:
    case KeyKind::IntOrAuto: appendCanonical(out, std::to_string(v.integer)); break;
    case KeyKind::Number: appendCanonical(out, std::string(reinterpret_cast<const char*>(&v.number), sizeof v.number)); break;
    case KeyKind::Bool: appendCanonical(out, v.boolean ? "1" : "0"); break;
    case KeyKind::Strings:
    case KeyKind::Cidrs:
    case KeyKind::Endpoints:
      for (const std::string& item : v.list) appendCanonical(out, item);
      break;
    case KeyKind::StringMap:
      for (const auto& [name, text] : v.map) {
        appendCanonical(out, name);
        appendCanonical(out, text);
      }
      break;
    case KeyKind::Group:
    case KeyKind::Custom: break;  // compared key by key, or by the code that reads them
  }
  return out;
}

// What two values are compared by: the value itself, or a secret's SHA-256
// digest, so that nothing derived from a reload comparison holds a secret.
std::string comparable(const KeySpec& k, const Settings::Value& v) {
  std::string bytes = canonical(k, v);
  if (!k.secret) return bytes;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

void diffInto(std::vector<KeyChange>& out, const Settings& before, const Settings& after, const std::string& path,
              Reload inherited) {
  const Schema& schema = *before.schema();
  if (before.type() != after.type()) {  // another type: other keys, all of them new
    const KeySpec* typeKey = findKey(schema.keys, schema.typeKey);
    out.push_back({path + schema.typeKey, resolveReload(*typeKey, schema, inherited)});
    return;
  }
  const auto& a = before.entries();
  const auto& b = after.entries();
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const KeySpec& k = *a[i].spec;
    const Reload how = resolveReload(k, schema, inherited);
    if (k.kind == KeyKind::Group)
      diffInto(out, *a[i].value.group, *b[i].value.group, path + k.name + ".", how);
    else if (k.kind != KeyKind::Custom && comparable(k, a[i].value) != comparable(k, b[i].value))
      out.push_back({path + k.name, how});
  }
}

}  // namespace

KeySpec key(std::string name, KeyKind kind) {
  KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  return k;
}

KeySpec groupKey(std::string name, const Schema& group) {
  KeySpec k = key(std::move(name), KeyKind::Group);
  k.group = &group;
  return k;
}

const TypeSpec* Schema::findType(const std::string& name) const {
  for (const TypeSpec& t : types)
    if (t.name == name) return &t;
  return nullptr;
}

const Settings::Value* Settings::find(const char* name) const {
  for (const Entry& e : entries_)
    if (e.spec->name == name) return &e.value;
  return nullptr;
}

const Settings::Value& Settings::at(const char* name) const {
  if (const Value* v = find(name)) return *v;
  throw std::logic_error(std::string("config key '") + name + "' is not declared for " +
                         (schema_ ? schema_->what : "?") + (type_.empty() ? "" : " type " + type_));
}

Settings::Value& Settings::mutableAt(const char* name) { return const_cast<Value&>(at(name)); }

Settings readSettings(const YamlMap& m, const Schema& schema) {
  Settings s(schema);
  const TypeSpec* type = nullptr;
  if (!schema.types.empty()) {
    const char* name = schema.typeKey.c_str();
    const KeySpec* typeKey = findKey(schema.keys, schema.typeKey);
    if (typeKey->required && !m.has(name)) m.failHere("missing required key '" + schema.typeKey + "'");
    s.type_ = m.getString(name, typeKey->fallback);
    type = schema.findType(s.type_);
    if (!type) {
      std::vector<std::string> names;
      for (const TypeSpec& t : schema.types) names.push_back(t.name);
      m.fail(name, "'" + s.type_ + "' is not a " + schema.what + " " + schema.typeKey + " (" + join(names) + ")");
    }
  }
  std::vector<const KeySpec*> specs;
  for (const KeySpec& k : schema.keys) specs.push_back(&k);
  if (type)
    for (const KeySpec& k : type->keys) specs.push_back(&k);

  for (const std::string& name : m.keys()) {
    bool known = false;
    for (const KeySpec* k : specs) known = known || k->name == name;
    if (known) continue;
    std::vector<std::string> owners;
    for (const TypeSpec& t : schema.types)
      if (findKey(t.keys, name)) owners.push_back(t.name);
    if (!owners.empty())
      m.fail(name.c_str(), "belongs to " + schema.what + " " + schema.typeKey + (owners.size() > 1 ? "s " : " ") +
                               join(owners) + ", not " + s.type_);
    std::vector<std::string> expected;
    for (const KeySpec* k : specs) expected.push_back(k->name);
    m.fail(name.c_str(), "unknown key (expected one of: " + join(expected) + ")");
  }

  for (const KeySpec* k : specs) {
    Settings::Value v;
    if (type && k->name == schema.typeKey) {  // read and checked above
      v.text = s.type_;
      v.given = m.has(schema.typeKey.c_str());
    } else {
      v = readValue(m, *k);
    }
    s.entries_.push_back({k, std::move(v)});
  }
  if (type && type->check) type->check(s, m);
  if (schema.check) schema.check(s, m);
  return s;
}

void emitSettings(YAML::Emitter& out, const Settings& settings, const EmitHook& hook) {
  for (const Settings::Entry& e : settings.entries()) {
    const KeySpec& k = *e.spec;
    const Settings::Value& v = e.value;
    if (hook && hook(out, e)) continue;
    if (k.kind == KeyKind::Custom) continue;
    out << YAML::Key << k.name << YAML::Value;
    switch (k.kind) {
      case KeyKind::String:
      case KeyKind::Endpoint:
        if (k.secret) out << YAML::DoubleQuoted << (v.text.empty() ? "" : "(set)");
        else if (printable(v.text)) out << v.text;
        else out << YAML::DoubleQuoted << v.text;
        break;
      case KeyKind::Int: out << v.integer; break;
      case KeyKind::Number: out << v.number; break;
      case KeyKind::Bool: out << v.boolean; break;
      case KeyKind::Strings:
      case KeyKind::Cidrs:
      case KeyKind::Endpoints:
        out << YAML::Flow << YAML::BeginSeq;
        for (const std::string& item : v.list) {
          if (k.secret) out << YAML::DoubleQuoted << "(set)";
          else if (printable(item)) out << item;
          else out << YAML::DoubleQuoted << item;
        }
        out << YAML::EndSeq;
        break;
      case KeyKind::StringMap:
        out << YAML::Flow << YAML::BeginMap;
        for (const auto& [entry, text] : v.map) {
          out << YAML::Key << entry << YAML::Value;
          if (k.secret) out << YAML::DoubleQuoted << "(set)";
          else if (printable(text)) out << text;
          else out << YAML::DoubleQuoted << text;
        }
        out << YAML::EndMap;
        break;
      case KeyKind::IntOrAuto:
        if (v.integer < 0) out << "auto";
        else out << v.integer;
        break;
      case KeyKind::Group:
        if (!hasCustomKeys(*k.group)) out << YAML::Flow;
        out << YAML::BeginMap;
        emitSettings(out, *v.group);
        out << YAML::EndMap;
        break;
      case KeyKind::Yaml: out << YAML::Load(v.text); break;
      case KeyKind::Custom: break;
    }
  }
}

std::vector<KeyChange> diffSettings(const Settings& before, const Settings& after, Reload inherited) {
  if (before.schema() != after.schema())
    throw std::logic_error("diffSettings: settings of two schemas (" + (before.schema() ? before.schema()->what : "?") +
                           ", " + (after.schema() ? after.schema()->what : "?") + ")");
  std::vector<KeyChange> changes;
  if (before.schema()) diffInto(changes, before, after, "", inherited);
  return changes;
}

Settings adoptChanges(const Settings& running, const Settings& next, const std::vector<KeyChange>& taken) {
  auto isTaken = [&](const std::string& path) {
    return std::any_of(taken.begin(), taken.end(), [&](const KeyChange& k) { return k.key == path; });
  };
  auto within = [&](const std::string& prefix) {
    return std::any_of(taken.begin(), taken.end(), [&](const KeyChange& k) { return k.key.rfind(prefix, 0) == 0; });
  };
  if (running.schema_ && isTaken(running.schema_->typeKey)) return next;  // another type: every key is new
  Settings out = running;
  for (std::size_t i = 0; i < out.entries_.size() && i < next.entries_.size(); ++i) {
    Settings::Entry& e = out.entries_[i];
    const std::string& name = e.spec->name;
    if (e.spec->kind == KeyKind::Group && within(name + ".")) {
      std::vector<KeyChange> inner;
      for (const KeyChange& k : taken)
        if (k.key.rfind(name + ".", 0) == 0) inner.push_back({k.key.substr(name.size() + 1), k.how});
      e.value.group = std::make_shared<const Settings>(adoptChanges(*e.value.group, *next.entries_[i].value.group, inner));
    } else if (isTaken(name)) {
      e.value = next.entries_[i].value;
    }
  }
  return out;
}

const char* kindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::String: return "string";
    case KeyKind::Int: return "integer";
    case KeyKind::Number: return "number";
    case KeyKind::Bool: return "true|false";
    case KeyKind::Strings: return "list of strings";
    case KeyKind::Endpoint: return "HOST:PORT";
    case KeyKind::Endpoints: return "list of HOST:PORT";
    case KeyKind::StringMap: return "mapping of strings";
    case KeyKind::Cidrs: return "list of addresses/networks";
    case KeyKind::IntOrAuto: return "integer or auto";
    case KeyKind::Group: return "mapping";
    case KeyKind::Yaml: return "mapping (handed on)";
    case KeyKind::Custom: return "described below";
  }
  return "?";
}

Reload resolveReload(const KeySpec& k, const Schema& schema, Reload inherited) {
  if (k.reload != Reload::Inherit) return k.reload;
  return schema.reload != Reload::Inherit ? schema.reload : inherited;
}

std::string reloadWords(Reload how, const std::string& component) {
  switch (how) {
    case Reload::InPlace: return "in place";
    case Reload::Component: return "restarts the " + component;
    case Reload::Process: return "needs a relay restart";
    case Reload::Inherit: return "as the key that holds it";
  }
  return "?";
}

const char* kindName(const KeySpec& k) {
  return k.kind == KeyKind::Yaml && !k.choices.empty() ? "word or mapping" : kindName(k.kind);
}

std::vector<std::string> choicesOf(const KeySpec& k, const Schema& schema) {
  std::vector<std::string> choices = k.choices;
  if (k.name == schema.typeKey && !schema.types.empty())
    for (const TypeSpec& t : schema.types) choices.push_back(t.name);
  return choices;
}

std::string rangeOf(const KeySpec& k) {
  if (k.kind == KeyKind::Number) return number(k.min) + ".." + number(k.max);
  if (k.kind == KeyKind::Int || k.kind == KeyKind::IntOrAuto)
    return std::to_string(static_cast<long long>(k.min)) + ".." + std::to_string(static_cast<long long>(k.max));
  return "";
}

std::string defaultOf(const KeySpec& k) {
  if (k.fallback.empty() || k.kind == KeyKind::Group || k.kind == KeyKind::Custom) return "";
  return printable(k.fallback) ? k.fallback : escaped(k.fallback);
}

std::string describeSchema(const Schema& schema, const std::string& path, const std::string& component,
                           Reload inherited) {
  const std::string& owner = component.empty() ? schema.what : component;
  std::ostringstream out;
  describeKeys(out, schema, schema.keys, path, "", owner, inherited);
  for (const TypeSpec& t : schema.types)
    describeKeys(out, schema, t.keys, path, schema.what + " " + schema.typeKey + " " + t.name, owner, inherited);
  return out.str();
}

}  // namespace streamrelay
