// SPDX-License-Identifier: Apache-2.0
#include "keys.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config.hpp"
#include "file_trust.hpp"
#include "lease_keys.hpp"
#include "listener_protocol_type.hpp"
#include "source_type.hpp"
#include "subject.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

// `conflate` keeps the newest frame per key: for a subscriber that wants
// current values; a plugin gets every frame or a counted loss.
Schema queueSchema(const char* maxFrames, const char* maxBytes, const char* onFull, bool conflate) {
  std::vector<std::string> policies{"disconnect", "drop_oldest", "drop_newest", "block"};
  if (conflate) policies.push_back("conflate");
  Schema s;
  s.what = "queue";
  s.keys = {
      key("max_frames", KeyKind::Int).def(maxFrames).range(0, 1LL << 40).doc("frames waiting before on_full applies (0: no limit)"),
      key("max_bytes", KeyKind::Int).def(maxBytes).range(0, 1LL << 40).doc("bytes waiting before on_full applies (0: no limit)"),
      key("on_full").def(onFull).oneOf(policies)
          .doc("what happens to a consumer whose queue is full"),
  };
  s.check = [](const Settings& q, const YamlMap& m) {
    if (q.integer("max_frames") == 0 && q.integer("max_bytes") == 0)
      m.failHere("max_frames and max_bytes cannot both be 0 (unbounded)");
  };
  return s;
}

// Subscribers: a slow one is cut so that it cannot hold memory or others back.
const Schema& listenerQueueSchema() {
  static const Schema schema = queueSchema("100000", "16777216", "disconnect", true);
  return schema;
}

// Plugins: one that falls behind loses the newest frames (counted) rather
// than slowing the relay; `block` is opt-in.
const Schema& pluginQueueSchema() {
  static const Schema schema = queueSchema("100000", "67108864", "drop_newest", false);
  return schema;
}

const Schema& logSchema() {
  static const Schema schema{
      "log",
      {key("level").def("information").oneOf({"none", "fatal", "critical", "error", "warning", "notice",
                                              "information", "debug", "trace"})
           .doc("the least severe level logged (stderr: the journal under systemd)")},
      {},
      {},
      Reload::InPlace};
  return schema;
}

const Schema& replaySchema() {
  static const Schema schema{
      "replay",
      {key("frames", KeyKind::Int).def("0").range(0, 1000000000).doc("the newest frames kept (0: no limit)"),
       key("bytes", KeyKind::Int).def("0").range(0, 1LL << 40).doc("wire bytes kept at most (0: no limit)"),
       key("age_s", KeyKind::Int).def("0").range(0, 604800).doc("frames older than this are let go (0: no limit)")},
      {},
      {}};
  return schema;
}

const Schema& lastValueSchema() {
  static const Schema schema{
      "last_value",
      {key("max_keys", KeyKind::Int).def("0").range(0, 100000000)
           .doc("the newest frame of up to this many keys is kept for a hello's snapshot (0: none; beyond it the key "
                "updated least recently goes)")},
      {},
      {}};
  return schema;
}

void checkReplay(const Settings& r, const YamlMap& m) {
  if (r.integer("frames") == 0 && r.integer("bytes") == 0 && r.integer("age_s") == 0)
    m.failHere("set frames, bytes or age_s (a ring with no limit would keep the whole stream)");
}

const Schema& keyBytesSchema() {
  static const Schema schema{
      "bytes",
      {key("offset", KeyKind::Int).def("0").range(0, kMaxFrameBytesLimit).doc("where the key starts in the payload"),
       key("length", KeyKind::Int).def("0").range(0, kIntMax)
           .doc("the key's size, 1..256 bytes; a frame shorter than offset + length has no key")},
      {},
      {}};
  return schema;
}

// One of three ways to find a frame's key (key_extractor.hpp).
const Schema& keyRuleSchema() {
  static const Schema schema{
      "key",
      {key("json_pointer").doc("RFC 6901 pointer to a string or number in a JSON frame, e.g. /symbol"),
       key("regex").doc("a PCRE pattern; the key is `group` of its first match in the frame"),
       key("group", KeyKind::Int).def("1").range(0, 99).doc("with regex: the group that is the key (0: the whole match)"),
       groupKey("bytes", keyBytesSchema())},
      {},
      {}};
  return schema;
}

void checkKeyRule(const Settings& k, const YamlMap& m) {
  const int rules = k.given("json_pointer") + k.given("regex") + k.given("bytes");
  if (rules != 1) m.failHere("give one of json_pointer, regex or bytes (how a frame's key is found)");
  if (k.given("group") && !k.given("regex")) m.fail("group", "applies to regex only");
  if (auto problem = keyRuleProblem(keyRuleFrom(k))) {
    if (problem->key == "bytes.length") m.map("bytes").fail("length", problem->what);
    m.fail(problem->key.c_str(), problem->what);
  }
}

const Schema& retainSchema() {
  static const Schema schema{
      "retain",
      {key("bytes", KeyKind::Int).def("0").range(0, 1LL << 50)
           .doc("the oldest whole segments go while the rest still holds this many bytes (0: no limit)"),
       key("age_s", KeyKind::Int).def("0").range(0, 100LL * 365 * 86400)
           .doc("a segment goes once its newest frame is older than this (0: no limit)"),
       key("frames", KeyKind::Int).def("0").range(0, 1LL << 50)
           .doc("the oldest whole segments go while the rest still holds this many frames (0: no limit)")},
      {},
      {}};
  return schema;
}

const char* const kFsyncForms = "expected always, never or {every_ms: N} (N from 1 to 3600000)";

// `fsync: always | never | {every_ms: N}`: the one key that is a word or a mapping.
void readFsync(const std::string& text, LogOptions& options) {
  const YAML::Node node = YAML::Load(text);
  if (node.IsScalar() && node.Scalar() == "always") options.fsync = FsyncPolicy::Always;
  else if (node.IsScalar() && node.Scalar() == "never") options.fsync = FsyncPolicy::Never;
  else if (node.IsMap() && node.size() == 1 && node["every_ms"] && node["every_ms"].IsScalar()) {
    options.fsync = FsyncPolicy::EveryMs;
    const std::string ms = node["every_ms"].Scalar();
    if (ms.empty() || ms.size() > 7 || ms.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument(kFsyncForms);
    options.fsyncEveryMs = std::stoi(ms);
    if (options.fsyncEveryMs < 1 || options.fsyncEveryMs > 3600000) throw std::invalid_argument(kFsyncForms);
  } else {
    throw std::invalid_argument(kFsyncForms);
  }
}

// streams.NAME.log: where and how the stream's frames are kept on disk (log/).
const Schema& logStoreSchema() {
  static const Schema schema{
      "log",
      {key("dir").doc("the directory of the stream's segment files (created if missing; one stream per directory)"),
       key("segment_bytes", KeyKind::Int).def("67108864").range(4096, 1LL << 40)
           .doc("a segment file is sealed and the next begun at about this size"),
       key("fsync", KeyKind::Yaml).def("{every_ms: 100}").oneOf({"always", "never", "{every_ms: N}"})
           .doc("always (each write is on the disk before the next), never (the kernel decides), or {every_ms: N} "
                "(at most N ms after a frame is written)"),
       groupKey("retain", retainSchema())},
      {},
      {}};
  return schema;
}

void checkLog(const Settings& l, const YamlMap& m) {
  if (l.string("dir").empty()) m.failHere("missing required key 'dir' (the directory of the stream's log)");
  LogOptions options;
  try {
    readFsync(l.string("fsync"), options);
  } catch (const std::exception&) {
    m.fail("fsync", kFsyncForms);
  }
}

const Schema& listenerReplaySchema() {
  static const Schema schema{
      "replay",
      {key("frames", KeyKind::Int).def("0").range(0, 1000000000)
           .doc("a new subscriber first gets up to this many of the newest frames of each input")},
      {},
      {}};
  return schema;
}

const Schema& restartSchema() {
  static const Schema schema{
      "restart",
      {key("initial_delay_ms", KeyKind::Int).def("100").range(0, kIntMax)
           .doc("wait before restarting a child that died; doubles while none acknowledges a frame"),
       key("max_delay_ms", KeyKind::Int).def("30000").range(0, kIntMax).doc("the wait doubles up to this")},
      {},
      [](const Settings& r, const YamlMap& m) {
        if (r.integer("max_delay_ms") < r.integer("initial_delay_ms"))
          m.fail("max_delay_ms", "must be >= initial_delay_ms");
      }};
  return schema;
}

// A child process resident in less than this is not a plugin being careless:
// the relay's own code and libraries take about that much.
constexpr std::int64_t kMinMemoryLimit = 32LL << 20;

const Schema& pluginProcessSchema() {
  static const Schema schema{
      "process",
      {key("memory_limit_bytes", KeyKind::Int).def("0").range(0, 1LL << 46)
           .doc("resident memory above which the child is killed and restarted (0: no limit)"),
       key("watchdog_ms", KeyKind::Int).def("10000").range(0, kIntMax)
           .doc("a child that acknowledges no frame this long while frames wait is killed and restarted (0: never)"),
       groupKey("restart", restartSchema()),
       key("ring_bytes", KeyKind::Int).def("4194304").range(65536, 1LL << 30)
           .doc("the shared-memory ring that carries frames to the child"),
       key("seccomp", KeyKind::Bool).def("true")
           .doc("limit the child's system calls to what the built-in plugins need (docs/plugin-isolation.md)")},
      {},
      [](const Settings& p, const YamlMap& m) {
        const std::int64_t limit = p.integer("memory_limit_bytes");
        if (limit != 0 && limit < kMinMemoryLimit)
          m.fail("memory_limit_bytes", "must be 0 (no limit) or at least " + std::to_string(kMinMemoryLimit) +
                                           " (the child's own code and libraries take about that much)");
      }};
  return schema;
}

std::vector<KeySpec> instanceKeys(bool withType) {
  std::vector<KeySpec> keys{key("name").doc("the instance's name and the stream it emits (default: its type)")};
  if (withType) keys.push_back(key("type").needed().doc("the plugin: its file name without lib and .so"));
  keys.push_back(key("inputs", KeyKind::Strings).doc("streams it consumes (default: the only source)"));
  keys.push_back(groupKey("queue", pluginQueueSchema()));
  keys.push_back(key("config", KeyKind::Yaml).doc("the plugin's own keys, handed to it as YAML"));
  keys.push_back(key("max_failures", KeyKind::Int).def("10").range(1, 1000000)
                     .doc("consecutive on_frame failures before the instance is disabled"));
  keys.push_back(key("isolation").def("in_process").oneOf({"in_process", "process"})
                     .doc("process: run the instance in a child process of its own, restarted if it dies"));
  keys.push_back(groupKey("process", pluginProcessSchema()));
  keys.push_back(key("max_emit_bytes", KeyKind::Int).def("16777216").range(65536, 1LL << 30)
                     .doc("bytes a processor's frames emitted in one drain may hold; more are published in several "
                          "batches"));
  return keys;
}

}  // namespace

const Schema& topSchema() {
  static const Schema schema{
      "config",
      {key("upstream", KeyKind::Custom).doc("one source named `upstream` (shorthand for sources:)"),
       key("sources", KeyKind::Custom).doc("NAME: {type: ..., ...}, one stream each"),
       key("streams", KeyKind::Custom).doc("NAME: {replay: ..., key: ...}, what a stream keeps and how its keys are found"),
       key("listeners", KeyKind::Custom).doc("a list of listeners"),
       groupKey("plugins", pluginsSchema()),
       groupKey("log", logSchema()),
       key("shutdown_timeout_ms", KeyKind::Int).def("5000").range(0, 3600000).applies(Reload::InPlace)
           .doc("how long consumers get to drain at shutdown"),
       key("writer_threads", KeyKind::Int).def("0").range(0, 64).doc("0: one per CPU core, at most 4"),
       key("watch_config", KeyKind::Bool).def("false").doc("reload when this file changes, as on SIGHUP (read at start)")},
      {},
      {},
      Reload::Process};
  return schema;
}

const Schema& sourceSchema() {
  static const Schema schema = [] {
    Schema s;
    s.what = "source";
    for (const SourceType& t : sourceTypes()) s.types.push_back(t.spec);
    s.keys = {key("type").def("generator").doc("where the frames come from")};
    s.reload = Reload::Component;  // a changed source reconnects alone; its stream goes on
    s.check = &checkLease;  // lease and follow go together (connecting sources)
    return s;
  }();
  return schema;
}

namespace {
// `sse` only decodes (a source reads events); a listener's framing encodes,
// so its schema, its errors and --list-keys offer the other three.
enum class FramingUse { Source, Listener };

Schema makeFramingSchema(const char* defaultType, FramingUse use) {
  Schema s;
  s.what = use == FramingUse::Source ? "framing" : "listener framing";
  s.keys = {
      key("type").def(defaultType).doc("how bytes are cut into frames"),
      key("max_frame_bytes", KeyKind::Int).def("1048576").range(1, kMaxFrameBytesLimit)
          .doc("a longer frame is a protocol error"),
  };
  s.types = {
      {"length-prefix",
       "a length before each frame (4-byte big-endian is the relay's wire form)",
       {key("width", KeyKind::Int).def("4").range(1, 8).doc("bytes of the length: 1, 2, 4 or 8"),
        key("byte_order").def("big").oneOf({"big", "little"}).doc("of the length")},
       [](const Settings& f, const YamlMap& m) {
         const auto width = f.integer("width");
         if (width != 1 && width != 2 && width != 4 && width != 8)
           m.fail("width", "must be 1, 2, 4 or 8, got " + std::to_string(width));
       }},
      {"delimiter",
       "each frame ends with a delimiter",
       {key("delimiter").def("\n").doc("any non-empty byte string"),
        key("strip", KeyKind::Bool).def("true").doc("drop the delimiter from the payload")},
       [](const Settings& f, const YamlMap& m) {
         if (f.string("delimiter").empty()) m.fail("delimiter", "must not be empty");
       }},
      {"fixed",
       "every frame has the same size",
       {key("size", KeyKind::Int).def("0").range(0, kMaxFrameBytesLimit).doc("bytes per frame")},
       [](const Settings& f, const YamlMap& m) {
         if (f.integer("size") == 0) m.fail("size", "fixed framing needs size >= 1");
         if (f.integer("size") > f.integer("max_frame_bytes")) m.fail("size", "is larger than max_frame_bytes");
       }},
  };
  if (use == FramingUse::Source)
    s.types.push_back({"sse", "Server-Sent Events: each event's data is a frame", {}, {}});
  return s;
}
}  // namespace

const Schema& framingSchema() {
  static const Schema schema = makeFramingSchema("length-prefix", FramingUse::Source);
  return schema;
}

const Schema& lineFramingSchema() {
  static const Schema schema = makeFramingSchema("delimiter", FramingUse::Source);
  return schema;
}

const Schema& listenerFramingSchema() {
  static const Schema schema = makeFramingSchema("length-prefix", FramingUse::Listener);
  return schema;
}

const Schema& reconnectSchema() {
  static const Schema schema{
      "reconnect",
      {key("initial_delay_ms", KeyKind::Int).def("100").range(1, kIntMax).doc("first backoff after a drop"),
       key("max_delay_ms", KeyKind::Int).def("30000").range(1, kIntMax).doc("the backoff doubles up to this")},
      {},
      [](const Settings& r, const YamlMap& m) {
        if (r.integer("max_delay_ms") < r.integer("initial_delay_ms"))
          m.fail("max_delay_ms", "must be >= initial_delay_ms");
      }};
  return schema;
}

namespace {
void checkTlsFiles(const Settings& t, const YamlMap& m) {
  for (const char* file : {"ca_file", "cert_file", "key_file"}) {
    const std::string& path = t.string(file);
    if (!path.empty() && ::access(path.c_str(), R_OK) != 0)
      m.fail(file, "cannot read '" + path + "': " + std::strerror(errno));
  }
  if (t.string("cert_file").empty() != t.string("key_file").empty())
    m.fail(t.string("cert_file").empty() ? "key_file" : "cert_file", "cert_file and key_file go together");
}

std::vector<KeySpec> tlsKeys() {
  return {key("ca_file").doc("PEM CA certificates to trust (empty: the system's trust store)"),
          key("cert_file").doc("PEM client certificate (mutual TLS), with key_file"),
          key("key_file").doc("PEM private key of cert_file"),
          key("verify", KeyKind::Bool).def("true").doc("false: the certificate is NOT checked (warned at start)")};
}
}  // namespace

const Schema& tlsSchema() {
  static const Schema schema = [] {
    Schema s{"tls", tlsKeys(), {}, {}};
    s.keys.insert(s.keys.begin(), key("enabled", KeyKind::Bool).def("false"));
    s.keys.push_back(key("server_name").doc("the name the certificate must carry (empty: the host connected to)"));
    s.check = [](const Settings& t, const YamlMap& m) {
      checkTlsFiles(t, m);
      const bool anySet = !t.string("ca_file").empty() || !t.string("cert_file").empty() ||
                          !t.string("server_name").empty() || !t.boolean("verify");
      if (anySet && !t.boolean("enabled")) m.fail("enabled", "is false while other tls keys are set");
    };
    return s;
  }();
  return schema;
}

const Schema& urlTlsSchema() {
  static const Schema schema{"tls", tlsKeys(), {}, &checkTlsFiles};
  return schema;
}

// In a listener the tls keys apply in place (new clients get the new
// certificate), but turning TLS on or off restarts the listener.
const Schema& listenerTlsSchema() {
  static const Schema schema{
      "tls",
      {key("enabled", KeyKind::Bool).def("false").applies(Reload::Component),
       key("cert_file").doc("PEM certificate chain the relay presents"),
       key("key_file").doc("PEM private key of cert_file"),
       key("client_ca_file").doc("PEM CA certificates a client certificate must chain to"),
       key("require_client_cert", KeyKind::Bool).def("false").doc("mutual TLS: refuse clients without a trusted certificate"),
       key("handshake_timeout_ms", KeyKind::Int).def("5000").range(1, kIntMax)
           .doc("a handshake not done by then is closed and counted")},
      {},
      [](const Settings& t, const YamlMap& m) {
        for (const char* file : {"cert_file", "key_file", "client_ca_file"}) {
          const std::string& path = t.string(file);
          if (!path.empty() && ::access(path.c_str(), R_OK) != 0)
            m.fail(file, "cannot read '" + path + "': " + std::strerror(errno));
        }
        const bool anySet = !t.string("cert_file").empty() || !t.string("key_file").empty() ||
                            !t.string("client_ca_file").empty() || t.boolean("require_client_cert");
        if (!t.boolean("enabled")) {
          if (anySet) m.fail("enabled", "is false while other tls keys are set");
          return;
        }
        if (t.string("cert_file").empty()) m.fail("cert_file", "is needed when tls is enabled");
        if (t.string("key_file").empty()) m.fail("key_file", "is needed when tls is enabled");
        if (t.boolean("require_client_cert") && t.string("client_ca_file").empty())
          m.fail("require_client_cert", "needs client_ca_file (the CA client certificates are checked against)");
      }};
  return schema;
}

const Schema& listenerJwtSchema() {
  static const Schema schema{
      "jwt",
      {key("secret").env().hidden().doc("HS256 shared secret (${ENV} expands)"),
       key("public_key_file").doc("PEM public key for RS256 tokens"),
       key("audience").doc("the aud claim a token must carry (empty: not checked)"),
       key("inputs_claim").def("inputs").doc("the claim listing the streams the holder may read (absent: all)"),
       key("select_claim").def("select")
           .doc("the claim listing the key patterns the holder may select (absent: any); a hello's select must lie inside them"),
       key("leeway_s", KeyKind::Int).def("30").range(0, 3600)
           .doc("seconds of clock difference allowed when exp, nbf and iat are checked")},
      {},
      [](const Settings& j, const YamlMap& m) {
        const std::string& file = j.string("public_key_file");
        if (!file.empty() && ::access(file.c_str(), R_OK) != 0)
          m.fail("public_key_file", "cannot read '" + file + "': " + std::strerror(errno));
        if (!j.string("secret").empty() && !file.empty())
          m.fail("public_key_file", "give secret (HS256) or public_key_file (RS256), not both");
      }};
  return schema;
}

const Schema& listenerAuthSchema() {
  static const Schema schema{
      "auth",
      {key("tokens", KeyKind::Strings).env().hidden().doc("static tokens a client may present (never logged)"),
       key("tokens_file").doc("a file of tokens, one per line (read at start and on reload)"),
       groupKey("jwt", listenerJwtSchema()),
       key("allow_insecure", KeyKind::Bool).def("false")
           .doc("read tokens_file and jwt.public_key_file even if others may write them")},
      {},
      [](const Settings& a, const YamlMap& m) {
        // The files that admit clients: readable, and (file_trust.hpp) not
        // open to changes by other users. The listener checks them again
        // when it reads them (at start and on every reload).
        auto check = [&](const YamlMap& where, const char* key, const std::string& file) {
          if (file.empty()) return;
          struct stat st {};
          if (::stat(file.c_str(), &st) != 0 || ::access(file.c_str(), R_OK) != 0)
            where.fail(key, "cannot read '" + file + "': " + std::strerror(errno));
          if (const std::string why = untrustedBecause(file, st); !why.empty() && !a.boolean("allow_insecure"))
            where.fail(key, why + " (auth.allow_insecure: true overrides)");
        };
        check(m, "tokens_file", a.string("tokens_file"));
        if (!a.group("jwt").string("public_key_file").empty())
          check(m.map("jwt"), "public_key_file", a.group("jwt").string("public_key_file"));
      }};
  return schema;
}

// A listener's `protocol` selects one of the registered protocols
// (subscribers/listener_protocols.def), whose own keys join the listener's.
const Schema& listenerSchema() {
  static const Schema schema = [] {
    Schema s;
    s.what = "listener";
    s.typeKey = "protocol";
    for (const ListenerProtocolType& p : listenerProtocols()) s.types.push_back(p.spec);
    s.keys = {
        key("name").needed().doc("names the listener in log lines, /stats and /metrics"),
        key("bind", KeyKind::Endpoint).needed()
            .doc("HOST:PORT subscribers connect to (port 0: any free port; kept across a reload that restarts it)"),
        key("inputs", KeyKind::Strings).doc("streams its subscribers get (default: the only source)"),
        groupKey("framing", listenerFramingSchema()),
        key("max_clients", KeyKind::Int).def("64").range(1, 100000).applies(Reload::InPlace)
            .doc("admitted subscribers at once; one more is closed at once"),
        key("max_pending_clients", KeyKind::Int).def("32").range(1, 100000).applies(Reload::InPlace)
            .doc("clients still in their TLS handshake or hello at once; one more is closed at once"),
        groupKey("queue", listenerQueueSchema()).applies(Reload::InPlace),
        key("allow", KeyKind::Cidrs).applies(Reload::InPlace).doc("subscribers admitted (empty: everyone)"),
        key("send_buffer_bytes", KeyKind::IntOrAuto).def("auto").range(0, 1 << 30).applies(Reload::InPlace)
            .doc("SO_SNDBUF per subscriber; auto caps a near peer's, 0 is the kernel's autotuning"),
        key("write_deadline_ms", KeyKind::Int).def("10000").range(0, kIntMax).applies(Reload::InPlace)
            .doc("a subscriber that accepts no byte this long while frames wait is closed (0: never)"),
        groupKey("replay", listenerReplaySchema()),
        key("select", KeyKind::Strings)
            .doc("key patterns (NATS subjects: a.*.c, a.>) its subscribers get at most; a raw subscriber gets these, "
                 "a hello without select gets these, a hello's own select must lie inside them (absent: every frame)"),
        key("protocol").def("raw").doc("what subscribers speak: raw, frames only; streamrelay, a hello then frames "
                                       "with stream, seq and time; websocket and sse, for browsers (see listener-protocols.md)"),
        key("hello_timeout_ms", KeyKind::Int).def("5000").range(1, kIntMax).applies(Reload::InPlace)
            .doc("protocols whose clients speak first: a client that has not sent its hello by then is closed"),
        key("heartbeat_ms", KeyKind::Int).def("5000").range(0, kIntMax).applies(Reload::InPlace)
            .doc("protocols with heartbeats: a subscriber sent nothing this long gets a heartbeat (0: never)"),
        groupKey("tls", listenerTlsSchema()).applies(Reload::InPlace),
        groupKey("auth", listenerAuthSchema()).applies(Reload::InPlace)};
    s.check = [](const Settings& l, const YamlMap& m) {
      for (const std::string& pattern : l.strings("select"))
        if (std::string why = subject::checkPattern(pattern); !why.empty()) m.fail("select", why);
      const Settings& auth = l.group("auth");
      const bool authSet = !auth.strings("tokens").empty() || !auth.string("tokens_file").empty() ||
                           !auth.group("jwt").string("secret").empty() ||
                           !auth.group("jwt").string("public_key_file").empty();
      if (authSet && !listenerProtocol(l.type()).readsHello) {
        std::string withHello;
        for (const ListenerProtocolType& p : listenerProtocols())
          if (p.readsHello) withHello += (withHello.empty() ? "" : ", ") + p.spec.name;
        m.fail("auth", "tokens need a protocol whose clients send a hello (" + withHello + "; a " + l.type() +
                           " client sends nothing); use tls.require_client_cert for " + l.type());
      }
    };
    s.reload = Reload::Component;  // the keys marked in place are taken by the running listener
    return s;
  }();
  return schema;
}

const Schema& streamSchema() {
  static const Schema schema{"stream",
                             {groupKey("replay", replaySchema()), groupKey("key", keyRuleSchema()),
                              groupKey("last_value", lastValueSchema()), groupKey("log", logStoreSchema())},
                             {},
                             [](const Settings& s, const YamlMap& m) {
                               if (s.given("replay")) checkReplay(s.group("replay"), m.map("replay"));
                               if (s.given("key")) checkKeyRule(s.group("key"), m.map("key"));
                               if (s.given("log")) checkLog(s.group("log"), m.map("log"));
                             },
                             Reload::Process};
  return schema;
}

const Schema& pluginsSchema() {
  static const Schema schema{
      "plugins",
      {key("directory").doc("where .so files are loaded from (empty: no plugins)"),
       key("allow_insecure", KeyKind::Bool).def("false").doc("load files others may write"),
       key("rescan_ms", KeyKind::Int).def("1000").range(50, 3600000).doc("how often the directory is scanned"),
       key("instances", KeyKind::Custom).doc("a list of plugin instances")},
      {},
      {},
      Reload::Process};
  return schema;
}

const Schema& instanceSchema() {
  // A changed instance is hot-replaced by its plugin (all or nothing).
  static const Schema schema{"plugin instance", instanceKeys(true), {}, {}, Reload::Component};
  return schema;
}

const Schema& sidecarInstanceSchema() {
  static const Schema schema{"plugin instance", instanceKeys(false), {}, {}, Reload::Component};
  return schema;
}

FramingSpec framingFrom(const Settings& f) {
  FramingSpec spec;
  spec.maxFrameBytes = static_cast<std::size_t>(f.integer("max_frame_bytes"));
  if (f.type() == "length-prefix") {
    spec.type = FramingType::LengthPrefix;
    spec.width = static_cast<int>(f.integer("width"));
    spec.byteOrder = f.string("byte_order") == "big" ? ByteOrder::Big : ByteOrder::Little;
  } else if (f.type() == "delimiter") {
    spec.type = FramingType::Delimiter;
    spec.delimiter = f.string("delimiter");
    spec.strip = f.boolean("strip");
  } else if (f.type() == "fixed") {
    spec.type = FramingType::Fixed;
    spec.fixedSize = static_cast<std::size_t>(f.integer("size"));
  } else {
    spec.type = FramingType::Sse;
  }
  return spec;
}

QueueLimits queueFrom(const Settings& q) {
  QueueLimits limits;
  limits.maxFrames = static_cast<std::size_t>(q.integer("max_frames"));
  limits.maxBytes = static_cast<std::size_t>(q.integer("max_bytes"));
  const std::string& policy = q.string("on_full");
  limits.onFull = policy == "disconnect"    ? OverflowPolicy::Disconnect
                  : policy == "drop_oldest" ? OverflowPolicy::DropOldest
                  : policy == "drop_newest" ? OverflowPolicy::DropNewest
                  : policy == "conflate"    ? OverflowPolicy::Conflate
                                            : OverflowPolicy::Block;
  return limits;
}

PluginProcessConfig pluginProcessFrom(const Settings& p) {
  PluginProcessConfig c;
  c.memoryLimitBytes = static_cast<std::uint64_t>(p.integer("memory_limit_bytes"));
  c.watchdogMs = static_cast<int>(p.integer("watchdog_ms"));
  c.restartInitialDelayMs = static_cast<int>(p.group("restart").integer("initial_delay_ms"));
  c.restartMaxDelayMs = static_cast<int>(p.group("restart").integer("max_delay_ms"));
  c.ringBytes = static_cast<std::size_t>(p.integer("ring_bytes"));
  c.seccomp = p.boolean("seccomp");
  return c;
}

ReplayLimits replayFrom(const Settings& r) {
  ReplayLimits limits;
  limits.maxFrames = static_cast<std::size_t>(r.integer("frames"));
  limits.maxBytes = static_cast<std::size_t>(r.integer("bytes"));
  limits.maxAge = std::chrono::seconds(r.integer("age_s"));
  return limits;
}

LogOptions logOptionsFrom(const Settings& l) {
  LogOptions options;
  options.dir = l.string("dir");
  options.segmentBytes = static_cast<std::uint64_t>(l.integer("segment_bytes"));
  readFsync(l.string("fsync"), options);
  const Settings& retain = l.group("retain");
  options.retain.bytes = static_cast<std::uint64_t>(retain.integer("bytes"));
  options.retain.ageS = retain.integer("age_s");
  options.retain.frames = static_cast<std::uint64_t>(retain.integer("frames"));
  return options;
}

KeyRule keyRuleFrom(const Settings& k) {
  KeyRule rule;
  if (k.given("regex")) {
    rule.kind = KeyRule::Kind::Regex;
    rule.pattern = k.string("regex");
    rule.group = static_cast<int>(k.integer("group"));
  } else if (k.given("bytes")) {
    rule.kind = KeyRule::Kind::Bytes;
    rule.offset = static_cast<std::size_t>(k.group("bytes").integer("offset"));
    rule.length = static_cast<std::size_t>(k.group("bytes").integer("length"));
  } else {
    rule.kind = KeyRule::Kind::JsonPointer;
    rule.pointer = k.string("json_pointer");
  }
  return rule;
}

}  // namespace streamrelay
