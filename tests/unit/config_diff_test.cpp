// SPDX-License-Identifier: Apache-2.0
// The reload diff (config_diff.hpp): what changed, per component, and how
// each change applies, as the key tables say.
#include <catch2/catch.hpp>

#include "config.hpp"
#include "config_diff.hpp"

using namespace streamrelay;
using Kind = ComponentChange::Kind;
using What = ComponentChange::What;

namespace {

const std::string kBase =
    "sources:\n"
    "  feed: {type: http, url: 'http://127.0.0.1:1/x', headers: {Authorization: 'Bearer one'}}\n"
    "  gen: {type: generator, rate: 10}\n"
    "streams:\n  gen: {replay: {frames: 100}}\n"
    "listeners:\n"
    "  - {name: hello, bind: '127.0.0.1:0', inputs: [gen], protocol: streamrelay, auth: {tokens: [t1]}}\n"
    "  - {name: raw, bind: '127.0.0.1:0', inputs: [feed]}\n";

Config parse(const std::string& yaml) { return parseConfig(yaml, "test.yaml"); }

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The one change of `kind` `name`, which must exist.
const ComponentChange& changeOf(const ConfigDiff& diff, Kind kind, const std::string& name) {
  const ComponentChange* change = diff.find(kind, name);
  REQUIRE(change != nullptr);
  return *change;
}

}  // namespace

TEST_CASE("reload diff: the same file is no change", "[config][reload]") {
  CHECK(diffConfigs(parse(kBase), parse(kBase)).empty());
}

// Defect: a changed Authorization header logged "no change": sources were
// compared through a printout that shows every secret as "(set)".
TEST_CASE("reload diff: a changed secret is a change, though it prints the same", "[config][reload]") {
  const Config before = parse(kBase);
  const Config after = parse(replaced(kBase, "Bearer one", "Bearer two"));
  REQUIRE(effectiveConfigYaml(before) == effectiveConfigYaml(after));  // both print "(set)"
  const ConfigDiff diff = diffConfigs(before, after);
  REQUIRE(diff.changes.size() == 1);
  const ComponentChange& feed = changeOf(diff, Kind::Source, "feed");
  CHECK(feed.what == What::Changed);
  CHECK(feed.keyList() == "headers");
  CHECK(feed.how() == Reload::Component);  // a source restarts alone
}

TEST_CASE("reload diff: each listener key applies as the key table says", "[config][reload]") {
  const Config before = parse(kBase);
  SECTION("auth removed: in place (the running listener drops the tokens)") {
    const ConfigDiff diff = diffConfigs(before, parse(replaced(kBase, ", auth: {tokens: [t1]}", "")));
    const ComponentChange& hello = changeOf(diff, Kind::Listener, "hello");
    CHECK(hello.keyList() == "auth.tokens");
    CHECK(hello.how() == Reload::InPlace);
  }
  SECTION("allow, queue, limits and timeouts: in place") {
    const ConfigDiff diff = diffConfigs(
        before, parse(replaced(kBase, "inputs: [feed]}",
                               "inputs: [feed], allow: ['127.0.0.0/8'], max_clients: 5, max_pending_clients: 2, "
                               "queue: {max_frames: 10}, hello_timeout_ms: 100}")));
    const ComponentChange& raw = changeOf(diff, Kind::Listener, "raw");
    CHECK(raw.keyList() == "max_clients, max_pending_clients, queue.max_frames, allow, hello_timeout_ms");
    CHECK(raw.how() == Reload::InPlace);
  }
  SECTION("framing, protocol, inputs, bind: a restart of that listener") {
    const ConfigDiff diff =
        diffConfigs(before, parse(replaced(kBase, "inputs: [feed]}", "inputs: [feed], framing: {type: delimiter}, "
                                                                     "allow: ['127.0.0.0/8']}")));
    const ComponentChange& raw = changeOf(diff, Kind::Listener, "raw");
    CHECK(raw.how() == Reload::Component);
    CHECK(raw.keysApplying(Reload::Component) == "framing.type");
    CHECK(raw.keysApplying(Reload::InPlace) == "allow");
  }
  SECTION("a listener added and one removed") {
    const ConfigDiff diff = diffConfigs(
        before, parse(replaced(kBase, "  - {name: raw, bind: '127.0.0.1:0', inputs: [feed]}\n",
                               "  - {name: other, bind: '127.0.0.1:0', inputs: [feed]}\n")));
    CHECK(changeOf(diff, Kind::Listener, "raw").what == What::Removed);
    CHECK(changeOf(diff, Kind::Listener, "other").what == What::Added);
    CHECK(changeOf(diff, Kind::Listener, "other").how() == Reload::Component);
  }
}

TEST_CASE("reload diff: the relay's keys and streams, in place or only by a restart", "[config][reload]") {
  const Config before = parse(kBase);
  const Config after = parse(kBase + "writer_threads: 2\nlog: {level: debug}\nshutdown_timeout_ms: 100\n" +
                             "plugins: {rescan_ms: 500}\n");
  const ConfigDiff diff = diffConfigs(before, after);
  const ComponentChange& relay = changeOf(diff, Kind::Relay, "");
  CHECK(relay.keysApplying(Reload::InPlace) == "log.level, shutdown_timeout_ms");
  CHECK(relay.keysApplying(Reload::Process) == "plugins.rescan_ms, writer_threads");

  // What runs after a reload that applied only the in-place keys.
  std::vector<KeyChange> applied;
  for (const KeyChange& k : relay.keys)
    if (k.how == Reload::InPlace) applied.push_back(k);
  const Settings running = adoptChanges(before.settings, after.settings, applied);
  CHECK(running.group("log").string("level") == "debug");
  CHECK(running.integer("shutdown_timeout_ms") == 100);
  CHECK(running.integer("writer_threads") == 0);
  CHECK(running.group("plugins").integer("rescan_ms") == 1000);
}

TEST_CASE("reload diff: a replay ring changed on a running stream needs a restart, a new stream's comes with it",
          "[config][reload]") {
  const Config before = parse(kBase);
  const std::string more = replaced(kBase, "  gen: {type: generator, rate: 10}\n",
                                    "  gen: {type: generator, rate: 10}\n  extra: {type: generator}\n");
  const Config after =
      parse(replaced(more, "gen: {replay: {frames: 100}}", "gen: {replay: {frames: 200}}\n  extra: {replay: {frames: 5}}"));
  const ConfigDiff diff = diffConfigs(before, after);
  const ComponentChange& gen = changeOf(diff, Kind::Stream, "gen");
  CHECK(gen.keyList() == "replay.frames");
  CHECK(gen.how() == Reload::Process);
  CHECK(diff.find(Kind::Stream, "extra") == nullptr);  // made with its source, as configured
  CHECK(changeOf(diff, Kind::Source, "extra").what == What::Added);
}

TEST_CASE("reload diff: a stream's log changed, added or removed needs a restart", "[config][reload][log]") {
  const Config before = parse(replaced(kBase, "gen: {replay: {frames: 100}}",
                                       "gen: {replay: {frames: 100}, log: {dir: /tmp/a, fsync: always}}"));
  const ConfigDiff changed = diffConfigs(before, parse(replaced(kBase, "gen: {replay: {frames: 100}}",
                                                                "gen: {replay: {frames: 100}, log: {dir: /tmp/a}}")));
  CHECK(changeOf(changed, Kind::Stream, "gen").keyList() == "log.fsync");
  CHECK(changeOf(changed, Kind::Stream, "gen").how() == Reload::Process);
  const ConfigDiff removed = diffConfigs(before, parse(kBase));
  CHECK(changeOf(removed, Kind::Stream, "gen").how() == Reload::Process);
  const ConfigDiff added = diffConfigs(parse(kBase), before);
  CHECK(changeOf(added, Kind::Stream, "gen").keyList().find("log") != std::string::npos);
  CHECK(changeOf(added, Kind::Stream, "gen").how() == Reload::Process);
}

TEST_CASE("the key reference (--list-keys) says how a change to each key is applied by a reload", "[config][reload]") {
  const std::string reference = configKeysReference();
  auto has = [&](const std::string& text) {
    INFO(text);
    CHECK(reference.find(text) != std::string::npos);
  };
  has("listeners[].allow  list of addresses/networks — subscribers admitted (empty: everyone) [reload: in place]");
  has("listeners[].max_pending_clients  integer 1..100000, default 32 — clients still in their TLS handshake or hello "
      "at once; one more is closed at once [reload: in place]");
  has("listeners[].framing.type  string (length-prefix, delimiter, fixed), default length-prefix — how bytes are "
      "cut into frames [reload: restarts the listener]");
  has("listeners[].tls.enabled  true|false, default false [reload: restarts the listener]");
  has("listeners[].tls.cert_file  string — PEM certificate chain the relay presents [reload: in place]");
  has("listeners[].auth.tokens  list of strings, ${ENV} expands — static tokens a client may present (never logged) "
      "[reload: in place]");
  has("sources.NAME.headers  mapping of strings, ${ENV} expands [source type http] — sent with every request to the URL's origin; "
      "${ENV} expands [reload: restarts the source]");
  has("writer_threads  integer 0..64, default 0 — 0: one per CPU core, at most 4 [reload: needs a relay restart]");
  has("log.level  string");
  has("shutdown_timeout_ms  integer 0..3600000, default 5000 — how long consumers get to drain at shutdown [reload: "
      "in place]");
  has("streams.NAME.replay.frames  integer 0..1000000000, default 0 — the newest frames kept (0: no limit) [reload: "
      "needs a relay restart]");
  has("plugins.instances[].config  mapping (handed on) — the plugin's own keys, handed to it as YAML [reload: "
      "restarts the plugin instance]");
}
