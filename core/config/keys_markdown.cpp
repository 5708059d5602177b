// SPDX-License-Identifier: Apache-2.0
// configKeysMarkdown: the key reference as Markdown, what
// `streamrelay --list-keys --format markdown` prints and docs/configuration.md
// holds, word for word (a test compares them). It reads the same tables as
// validation, --check-config and --list-keys (keys.hpp), so the page cannot
// drift from what the relay accepts.
//
// Layout: one section per part of the file (top level, sources, framing,
// streams, listeners, listener TLS and auth, plugins, plugin instances), one
// table per section and one more per type of a typed schema (source types,
// framing types). A group is written inline as dotted keys (`queue.on_full`),
// except a typed one (framing) and those given a section of their own, which
// get one row that links to it.
#include <cctype>
#include <map>
#include <sstream>

#include "config.hpp"
#include "keys.hpp"

namespace streamrelay {

namespace {

// Where the keys read by code (Custom) are described, and what they are.
struct CustomKey {
  const char* kind;
  const char* section;
};
const std::map<std::string, CustomKey>& customKeys() {
  static const std::map<std::string, CustomKey> keys{
      {"upstream", {"a source", "Sources"}},
      {"sources", {"mapping of names to sources", "Sources"}},
      {"streams", {"mapping of stream names", "Streams"}},
      {"listeners", {"list of listeners", "Listeners"}},
      {"instances", {"list of plugin instances", "Plugin instances"}},
  };
  return keys;
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'.
std::string anchorOf(const std::string& title) {
  std::string anchor;
  for (char c : title) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte)) anchor += static_cast<char>(std::tolower(byte));
    else if (c == ' ' || c == '-') anchor += '-';
    else if (c == '_') anchor += '_';
  }
  return anchor;
}

std::string link(const std::string& title) { return "[" + title + "](#" + anchorOf(title) + ")"; }

// A table cell: one line, no column separator.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

std::string code(const std::string& text) { return text.empty() ? "" : "`" + text + "`"; }

std::string capitalised(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

std::string sentence(const std::string& text) {
  std::string out = capitalised(text);
  if (!out.empty() && out.back() != '.') out += '.';
  return out;
}

std::string codeList(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + code(item);
  return out;
}

// What a section is about: how its tables are read, and where its groups go.
struct Part {
  std::string component;             // what a Component reload restarts ("listener")
  Reload inherited = Reload::Process;
  // Groups documented in a section of their own, and that section's title.
  std::vector<std::pair<std::string, std::string>> ownSections;
  const std::string* sectionOf(const std::string& group) const {
    for (const auto& [name, title] : ownSections)
      if (name == group) return &title;
    return nullptr;
  }
};

class Writer {
 public:
  std::string text() const { return out_.str(); }

  // Every block ends with a blank line.
  void heading(int level, const std::string& title) { out_ << std::string(level, '#') << " " << title << "\n\n"; }
  void paragraph(const std::string& text) { out_ << text << "\n\n"; }

  // The keys of one table: `keys` of `schema`, named under `prefix`.
  void table(const Schema& schema, const std::vector<KeySpec>& keys, const Part& part) {
    out_ << "| key | kind | default | range / choices | reload | what it does |\n";
    out_ << "|---|---|---|---|---|---|\n";
    rows(schema, keys, "", part, part.inherited);
    out_ << "\n";
  }

 private:
  void rows(const Schema& schema, const std::vector<KeySpec>& keys, const std::string& prefix, const Part& part,
            Reload inherited) {
    for (const KeySpec& k : keys) {
      const std::string name = prefix + k.name;
      const Reload how = resolveReload(k, schema, inherited);
      if (k.kind == KeyKind::Custom) {
        customRow(k, name);
      } else if (k.kind == KeyKind::Group && !k.group->types.empty()) {
        typedGroupRow(k, name, how, part);
      } else if (k.kind == KeyKind::Group && part.sectionOf(name)) {
        row(name, "mapping", "", "", "", joinHelp(k.help, "see " + link(*part.sectionOf(name))));
      } else if (k.kind == KeyKind::Group) {
        rows(*k.group, k.group->keys, name + ".", part, how);
      } else {
        row(name, kindName(k), k.required ? "required" : code(defaultOf(k)), range(k, schema),
            reloadWords(how, part.component), help(k));
      }
    }
  }

  void customRow(const KeySpec& k, const std::string& name) {
    const auto it = customKeys().find(k.name);
    const std::string where = it == customKeys().end() ? "see [configuring.md](configuring.md)"
                                                       : "see " + link(it->second.section);
    row(name, it == customKeys().end() ? "mapping" : it->second.kind, "", "", "", joinHelp(k.help, where));
  }

  // A typed group (a framing): its type and a link to the section that
  // lists every type's keys.
  void typedGroupRow(const KeySpec& k, const std::string& name, Reload how, const Part& part) {
    const Schema& group = *k.group;
    std::string fallback, what;
    for (const KeySpec& inner : group.keys)
      if (inner.name == "type") {
        fallback = "type " + code(inner.fallback);
        what = inner.help;
      }
    std::vector<std::string> types;
    for (const TypeSpec& t : group.types) types.push_back(t.name);
    const std::string title = capitalised(group.what == "listener framing" ? "framing" : group.what);
    row(name, "mapping", fallback, "types " + codeList(types), "its keys: " + reloadWords(how, part.component),
        joinHelp(what, "see " + link(title)));
  }

  static std::string range(const KeySpec& k, const Schema& schema) {
    const std::vector<std::string> choices = choicesOf(k, schema);
    if (!choices.empty()) return codeList(choices);
    return rangeOf(k);
  }

  static std::string help(const KeySpec& k) {
    std::string text = k.help;
    if (k.secret) text = joinHelp(text, "a secret: printed as `(set)`, never logged");
    if (k.expandEnv && text.find("${ENV}") == std::string::npos) text = joinHelp(text, "`${ENV}` expands");
    return text;
  }

  static std::string joinHelp(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + "; " + b;
  }

  void row(const std::string& name, const std::string& kind, const std::string& fallback, const std::string& range,
           const std::string& reload, const std::string& help) {
    out_ << "| " << cell(code(name)) << " | " << cell(kind) << " | " << cell(fallback) << " | " << cell(range)
         << " | " << cell(reload) << " | " << cell(help) << " |\n";
  }

  std::ostringstream out_;
};

const KeySpec& keyOf(const Schema& schema, const char* name) {
  for (const KeySpec& k : schema.keys)
    if (k.name == name) return k;
  throw std::logic_error(std::string("keys_markdown: no key '") + name + "' in " + schema.what);
}

// A section for a schema, and one sub-section per type if it has types.
void section(Writer& w, const std::string& title, const std::string& intro, const Schema& schema, const Part& part,
             const std::string& typeWord) {
  w.heading(2, title);
  w.paragraph(intro);
  w.table(schema, schema.keys, part);
  for (const TypeSpec& t : schema.types) {
    w.heading(3, typeWord + " " + code(t.name));
    if (!t.summary.empty()) w.paragraph(sentence(t.summary));
    if (t.keys.empty()) {
      w.paragraph("No keys of its own.");
      continue;
    }
    w.table(schema, t.keys, part);
  }
}

}  // namespace

std::string configKeysMarkdown() {
  Writer w;
  w.paragraph("# Configuration keys");
  w.paragraph(
      "<!-- Generated by `streamrelay --list-keys --format markdown` from the relay's key registry: do not edit.\n"
      "     After changing a key, regenerate it: build/core/streamrelay --list-keys --format markdown > "
      "docs/configuration.md -->");
  w.paragraph(
      "Every key the config file may hold, generated from the table the relay validates the file with (the same "
      "table prints `--check-config` and applies a reload). How to put them together — sources, inputs, overflow "
      "policies, queue sizes, secrets and `${ENV}` — is in [configuring.md](configuring.md); what each part does, in "
      "[sources.md](sources.md), [subscribers.md](subscribers.md) and [plugins.md](plugins.md).");
  w.paragraph(
      "Columns: **kind** — what the value is; **default** — what applies when the key is absent (`required`: it "
      "may not be); **range / choices** — the values accepted; anything else is a config error naming the file, "
      "line and key; **reload** — what a change to the key does when the config is reloaded (SIGHUP, "
      "`systemctl reload`, `watch_config`): `in place` (the running component takes it), `restarts the ...` (that "
      "one source, listener or plugin instance restarts alone), or `needs a relay restart` (logged, not applied "
      "while running).");

  Part top;
  top.ownSections = {{"plugins", "Plugins"}};
  section(w, "Top level", "The keys at the top of the file.", topSchema(), top, "");

  Part sources;
  sources.component = "source";
  section(w, "Sources",
          "`sources.NAME` — one stream each, named after the source — or `upstream`, one source named `upstream`. "
          "Every source has a `type`; the other keys depend on it, and a key of another type is an error that names "
          "its type.",
          sourceSchema(), sources, "Source type");

  Part framing;
  framing.inherited = Reload::Inherit;
  section(w, "Framing",
          "`framing` of a source (how its bytes are cut into frames) or of a listener (how frames are written to "
          "its subscribers). Every framing has `type` and `max_frame_bytes`; the other keys depend on the type. "
          "Listeners cannot write `sse`. A change applies as the `framing` key that holds it says.",
          framingSchema(), framing, "Framing type");

  Part streams;
  section(w, "Streams", "`streams.NAME` — what the stream NAME (a source's or a plugin instance's) keeps.",
          streamSchema(), streams, "");

  Part listeners;
  listeners.component = "listener";
  listeners.ownSections = {{"tls", "Listener TLS"}, {"auth", "Listener auth"}};
  section(w, "Listeners", "`listeners[]` — each listener serves subscribers on one address.", listenerSchema(),
          listeners, "Listener protocol");
  for (const auto& [name, title] : listeners.ownSections) {
    const KeySpec& group = keyOf(listenerSchema(), name.c_str());
    Part part;
    part.component = "listener";
    part.inherited = resolveReload(group, listenerSchema(), Reload::Process);
    w.heading(3, title);
    w.paragraph("`listeners[]." + name + "`");
    w.table(*group.group, group.group->keys, part);
  }

  Part plugins;
  section(w, "Plugins", "`plugins` — where plugins are loaded from.", pluginsSchema(), plugins, "");

  Part instances;
  instances.component = "plugin instance";
  section(w, "Plugin instances",
          "`plugins.instances[]` — each instance of a plugin, with its own queue, worker thread and stream. The "
          "same keys, without `type`, go in a plugin's sidecar `NAME.yaml` (`instances:`).",
          instanceSchema(), instances, "");
  std::string text = w.text();
  while (text.size() > 1 && text[text.size() - 1] == '\n' && text[text.size() - 2] == '\n') text.pop_back();
  return text;
}

}  // namespace streamrelay
