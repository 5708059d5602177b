// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "config.hpp"
#include "host_port.hpp"

using namespace streamrelay;

namespace {

std::string errorOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const char* kMinimal = "upstream: {type: generator}\n";

}  // namespace

TEST_CASE("the reference config loads with its documented values", "[config]") {
  Config c = loadConfig(STREAMRELAY_SOURCE_DIR "/config/streamrelay.yaml");
  CHECK(c.sources.at(0).type() == "generator");
  REQUIRE(c.listeners.size() == 2);
  CHECK(c.listeners[0].bind == "127.0.0.1:7000");
  CHECK(c.listeners[0].queue.maxFrames == 100000);
  CHECK(c.listeners[0].queue.onFull == OverflowPolicy::Disconnect);
  CHECK(c.listeners[1].framing.type == FramingType::Delimiter);
  CHECK(c.shutdownTimeoutMs == 5000);
}

TEST_CASE("defaults fill what a config leaves out", "[config]") {
  Config c = parseConfig(std::string(kMinimal) + "listeners: [{name: a, bind: '127.0.0.1:0'}]\n", "t");
  const ListenerConfig& l = c.listeners.at(0);
  CHECK(l.maxClients == 64);
  CHECK(l.maxPendingClients == 32);
  CHECK(l.framing.isWireForm());
  CHECK(l.framing.maxFrameBytes == 1 << 20);
  CHECK(l.queue.maxBytes == 16u << 20);
  CHECK(c.sources.at(0).settings.number("rate") == 5);
  Config tcp = parseConfig("upstream: {type: tcp, host: h, port: 1}\n", "t");
  CHECK(tcp.sources.at(0).settings.group("reconnect").integer("initial_delay_ms") == 100);
  CHECK(tcp.sources.at(0).settings.group("reconnect").integer("max_delay_ms") == 30000);
}

TEST_CASE("config errors name the key path and its line", "[config]") {
  SECTION("unknown key") {
    CHECK(errorOf("upstream:\n  type: generator\n  rte: 5\n") ==
          "test.yaml:3: upstream.rte: unknown key (expected one of: type, rate, size, count, framing)");
  }
  SECTION("a misspelt key whose value starts on the next line: the key's line, not its value's") {
    CHECK(errorOf(std::string(kMinimal) + "listeneers:\n  main: {bind: '127.0.0.1:0'}\n")
              .rfind("test.yaml:2: listeneers: unknown key (expected one of: ", 0) == 0);
    CHECK(errorOf("upstream:\n  type: generator\n  framming:\n    type: delimiter\n")
              .rfind("test.yaml:3: upstream.framming: unknown key", 0) == 0);
    CHECK(errorOf("upstream:\n  type: tcp\n  host: h\n  port: 1\n  rate:\n    5\n") ==
          "test.yaml:5: upstream.rate: belongs to source type generator, not tcp");
  }
  SECTION("wrong type") {
    CHECK(errorOf(std::string(kMinimal) + "listeners:\n  - name: a\n    bind: '127.0.0.1:1'\n    max_clients: lots\n") ==
          "test.yaml:5: listeners[0].max_clients: expected an integer, got 'lots'");
  }
  SECTION("bad CIDR") {
    CHECK(errorOf(std::string(kMinimal) + "listeners:\n  - {name: a, bind: '127.0.0.1:1', allow: ['10.0.0.0/33']}\n") ==
          "test.yaml:3: listeners[0].allow: '10.0.0.0/33' has a bad prefix length (0..32)");
  }
  SECTION("bad framing") {
    CHECK(errorOf("upstream:\n  type: generator\n  framing: {type: length-prefix, width: 3}\n") ==
          "test.yaml:3: upstream.framing.width: must be 1, 2, 4 or 8, got 3");
    CHECK(errorOf("upstream:\n  type: generator\n  framing: {type: chunks}\n") ==
          "test.yaml:3: upstream.framing.type: 'chunks' is not a framing type (length-prefix, delimiter, fixed, sse)");
    CHECK(errorOf("upstream:\n  type: generator\n  framing: {type: fixed}\n") ==
          "test.yaml:3: upstream.framing.size: fixed framing needs size >= 1");
  }
  SECTION("bad policy") {
    CHECK(errorOf(std::string(kMinimal) + "listeners:\n  - name: a\n    bind: '127.0.0.1:1'\n    queue: {on_full: wait}\n") ==
          "test.yaml:5: listeners[0].queue.on_full: 'wait' is not one of: disconnect, drop_oldest, drop_newest, block, conflate");
  }
  SECTION("bad bind") {
    CHECK(errorOf(std::string(kMinimal) + "listeners:\n  - {name: a, bind: 'localhost'}\n") ==
          "test.yaml:3: listeners[0].bind: expected HOST:PORT or [IPv6]:PORT, got 'localhost'");
  }
  SECTION("missing required key") {
    CHECK(errorOf("upstream:\n  type: tcp\n  port: 9000\n") ==
          "test.yaml:2: upstream: missing required key 'host' (or endpoints)");
  }
  SECTION("unset environment variable") {
    CHECK(errorOf("upstream:\n  type: tcp\n  host: h\n  port: 1\n  send_on_connect: 'AUTH ${STREAMRELAY_SURELY_UNSET}'\n") ==
          "test.yaml:5: upstream.send_on_connect: environment variable STREAMRELAY_SURELY_UNSET is not set");
  }
  SECTION("YAML syntax") {
    CHECK(errorOf("upstream: {type: generator\n").rfind("test.yaml:2: YAML syntax error", 0) == 0);
  }
  SECTION("duplicate listener name") {
    CHECK(errorOf(std::string(kMinimal) + "listeners:\n  - {name: a, bind: '127.0.0.1:1'}\n  - {name: a, bind: '127.0.0.1:2'}\n") ==
          "test.yaml:4: listeners[1].name: 'a' is used by another listener");
  }
}

// Defect: `upstream: {type: tcp, host: h, port: 1, rate: 99, bind: ...}` passed
// --check-config: every source read every type's keys.
TEST_CASE("a key of another type is an error that names the type it belongs to", "[config]") {
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, rate: 99}\n") ==
        "test.yaml:1: upstream.rate: belongs to source type generator, not tcp");
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, bind: '1.2.3.4:5'}\n") ==
        "test.yaml:1: upstream.bind: belongs to source type listen, not tcp");
  CHECK(errorOf("upstream: {type: listen, bind: '127.0.0.1:0', idle_timeout_ms: 5, reconnect: {}}\n") ==
        "test.yaml:1: upstream.reconnect: belongs to source types tcp, http, websocket, streamrelay, redis, not listen");
  CHECK(errorOf("upstream: {type: stdin, idle_timeout_ms: 5}\n") ==
        "test.yaml:1: upstream.idle_timeout_ms: belongs to source types tcp, http, websocket, streamrelay, redis, listen, not stdin");
  CHECK(errorOf("upstream: {type: gen}\n") ==
        "test.yaml:1: upstream.type: 'gen' is not a source type (tcp, http, websocket, streamrelay, redis, listen, stdin, "
        "generator), and no plugins directory is set to provide one");
  CHECK(errorOf("upstream: {type: stdin, framing: {type: delimiter, width: 2}}\n") ==
        "test.yaml:1: upstream.framing.width: belongs to framing type length-prefix, not delimiter");
  CHECK(errorOf(std::string(kMinimal) + "listeners: [{name: a, bind: '127.0.0.1:0', max_publishers: 3}]\n") ==
        "test.yaml:2: listeners[0].max_publishers: unknown key (expected one of: name, bind, inputs, framing, "
        "max_clients, max_pending_clients, queue, allow, send_buffer_bytes, write_deadline_ms, replay, select, protocol, "
        "hello_timeout_ms, heartbeat_ms, tls, auth)");
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, reconnect: {initial_delay_ms: 10, max_delay_ms: 5}}\n") ==
        "test.yaml:1: upstream.reconnect.max_delay_ms: must be >= initial_delay_ms");
}

TEST_CASE("the key reference printed by --list-keys describes every source type from the registry", "[config]") {
  const std::string reference = configKeysReference();
  CHECK(reference.find("sources.NAME.type  string (tcp, http, websocket, streamrelay, redis, listen, stdin, generator), default generator") !=
        std::string::npos);
  CHECK(reference.find("sources.NAME.rate  number 0.001..10000000, default 5 [source type generator]") !=
        std::string::npos);
  CHECK(reference.find("sources.NAME.endpoints  list of HOST:PORT [source type tcp]") != std::string::npos);
  CHECK(reference.find("sources.NAME.tls.ca_file  string") != std::string::npos);
  CHECK(reference.find("listeners[].queue.on_full  string (disconnect, drop_oldest, drop_newest, block, conflate), default "
                       "disconnect") != std::string::npos);
  CHECK(reference.find("plugins.instances[].queue.on_full  string (disconnect, drop_oldest, drop_newest, block), "
                       "default drop_newest") != std::string::npos);
  CHECK(reference.find("sources.NAME.framing.delimiter  string, default \"\\n\" [framing type delimiter]") !=
        std::string::npos);
}

// Defect: --list-keys offered sse as a listener framing, which the config then refused.
TEST_CASE("the --list-keys reference offers listeners only the framings they can write and sources sse too", "[config]") {
  const std::string reference = configKeysReference();
  CHECK(reference.find("listeners[].framing.type  string (length-prefix, delimiter, fixed), default length-prefix") !=
        std::string::npos);
  CHECK(reference.find("sources.NAME.framing.type  string (length-prefix, delimiter, fixed, sse), default") !=
        std::string::npos);
  CHECK(errorOf(std::string(kMinimal) + "listeners: [{name: l, bind: '127.0.0.1:0', framing: {type: sse}}]\n") ==
        "test.yaml:2: listeners[0].framing.type: 'sse' is not a listener framing type (length-prefix, delimiter, fixed)");
  CHECK(errorOf("upstream: {type: stdin, framing: {type: sse}}\n").empty());
}

TEST_CASE("replay: a ring per stream, a depth per listener, every mistake on one line", "[config]") {
  const std::string ring = "streams:\n  upstream: {replay: {frames: 1000}}\n";
  Config c = parseConfig(std::string(kMinimal) + ring +
                             "listeners: [{name: l, bind: '127.0.0.1:0', replay: {frames: 500}}]\n", "t");
  REQUIRE(c.streams.size() == 1);
  CHECK(c.streams[0].replay.maxFrames == 1000);
  CHECK(c.listeners[0].replayFrames == 500);
  std::string printed = effectiveConfigYaml(c);
  CHECK(printed.find("streams:\n  upstream:\n    replay: {frames: 1000, bytes: 0, age_s: 0}") != std::string::npos);
  CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);

  CHECK(errorOf(std::string(kMinimal) + "streams:\n  feed: {replay: {frames: 10}}\n") ==
        "test.yaml:3: streams.feed: unknown stream 'feed' (streams: upstream)");
  CHECK(errorOf(std::string(kMinimal) + "streams:\n  upstream: {replay: {}}\n") ==
        "test.yaml:3: streams.upstream.replay: set frames, bytes or age_s (a ring with no limit would keep the whole "
        "stream)");
  CHECK(errorOf(std::string(kMinimal) + "listeners: [{name: l, bind: '127.0.0.1:0', replay: {frames: 5}}]\n") ==
        "test.yaml:2: listeners[0].replay.frames: input 'upstream' keeps no replay ring (set "
        "streams.upstream.replay)");
  CHECK(errorOf(std::string(kMinimal) + ring + "listeners: [{name: l, bind: '127.0.0.1:0', replay: {frames: 2000}}]\n") ==
        "test.yaml:4: listeners[0].replay.frames: 2000 is more than streams.upstream.replay.frames (1000)");
  CHECK(errorOf(std::string(kMinimal) + ring +
                "listeners: [{name: l, bind: '127.0.0.1:0', queue: {max_frames: 100}, replay: {frames: 500}}]\n") ==
        "test.yaml:4: listeners[0].replay.frames: 500 is more than queue.max_frames (100)");
}

TEST_CASE("tcp: tls and endpoints keys, and their mistakes on one line", "[config]") {
  Config c = parseConfig("upstream: {type: tcp, endpoints: ['a.example:1', '[::1]:2'], tls: {enabled: true}}\n", "t");
  CHECK(c.sources[0].settings.strings("endpoints") == std::vector<std::string>{"a.example:1", "[::1]:2"});
  // What the source connects to: the host as getaddrinfo takes it (no brackets).
  const HostPort named = hostPortOf(c.sources[0].settings.strings("endpoints")[0]);
  const HostPort v6 = hostPortOf(c.sources[0].settings.strings("endpoints")[1]);
  CHECK((named.host == "a.example" && named.port == 1));
  CHECK((v6.host == "::1" && v6.port == 2));
  CHECK(c.sources[0].settings.group("tls").boolean("verify"));
  std::string printed = effectiveConfigYaml(c);
  CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);

  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, endpoints: ['a:1']}\n") ==
        "test.yaml:1: upstream.host: use either host and port, or endpoints");
  CHECK(errorOf("upstream: {type: tcp, endpoints: ['a']}\n") ==
        "test.yaml:1: upstream.endpoints: expected HOST:PORT or [IPv6]:PORT, got 'a'");
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, tls: {enabled: true, cert_file: " STREAMRELAY_SOURCE_DIR
                "/README.md}}\n") ==
        "test.yaml:1: upstream.tls.cert_file: cert_file and key_file go together");
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, tls: {enabled: true, ca_file: /nonexistent/ca.pem}}\n") ==
        "test.yaml:1: upstream.tls.ca_file: cannot read '/nonexistent/ca.pem': No such file or directory");
  CHECK(errorOf("upstream: {type: tcp, host: h, port: 1, tls: {server_name: x}}\n") ==
        "test.yaml:1: upstream.tls.enabled: is false while other tls keys are set");
  CHECK(errorOf("upstream: {type: stdin, tls: {enabled: true}}\n") ==
        "test.yaml:1: upstream.tls: belongs to source types tcp, http, websocket, streamrelay, redis, not stdin");
}

TEST_CASE("http: keys, the line framing default, and mistakes on one line", "[config]") {
  Config c = parseConfig("upstream: {type: http, url: 'https://x.example/s'}\n", "t");
  CHECK(c.sources[0].framing.type == FramingType::Delimiter);
  CHECK(c.sources[0].settings.string("method") == "GET");
  setenv("STREAMRELAY_TEST_TOKEN", "s3cret", 1);
  Config h = parseConfig("upstream: {type: http, url: 'http://x/', headers: {Authorization: 'Bearer ${STREAMRELAY_TEST_TOKEN}'}}\n", "t");
  CHECK(h.sources[0].settings.stringMap("headers").at(0).second == "Bearer s3cret");
  CHECK(effectiveConfigYaml(h).find("s3cret") == std::string::npos);

  CHECK(errorOf("upstream: {type: http, url: 'ftp://x/'}\n") ==
        "test.yaml:1: upstream.url: must start with http:// or https://, got 'ftp://x/'");
  CHECK(errorOf("upstream: {type: http}\n") == "test.yaml:1: upstream: missing required key 'url' (or endpoints)");
  CHECK(errorOf("upstream: {type: http, url: 'http://a/', endpoints: ['http://b/']}\n") ==
        "test.yaml:1: upstream: use either url or endpoints");
  CHECK(errorOf("upstream: {type: http, endpoints: ['http://a/', 'ws://b/']}\n") ==
        "test.yaml:1: upstream.endpoints: must start with http:// or https://, got 'ws://b/'");
  CHECK(errorOf("upstream: {type: http, url: 'http://x/', body: 'q'}\n") == "test.yaml:1: upstream.body: needs method: POST");
  CHECK(errorOf("upstream: {type: http, url: 'http://x/', method: PUT}\n") ==
        "test.yaml:1: upstream.method: 'PUT' is not one of: GET, POST");
  CHECK(errorOf("upstream: {type: http, url: 'http://x/', headers: {X: '${STREAMRELAY_SURELY_UNSET}'}}\n") ==
        "test.yaml:1: upstream.headers.X: environment variable STREAMRELAY_SURELY_UNSET is not set");
}

TEST_CASE("websocket: keys and mistakes on one line", "[config]") {
  setenv("STREAMRELAY_TEST_TOKEN", "s3cret", 1);
  Config c = parseConfig("upstream: {type: websocket, url: 'wss://x.example/ws', send_on_connect: "
                         "['{\"op\": \"auth\", \"key\": \"${STREAMRELAY_TEST_TOKEN}\"}', 'SUB a']}\n", "t");
  CHECK(c.sources[0].settings.strings("send_on_connect") ==
        std::vector<std::string>{"{\"op\": \"auth\", \"key\": \"s3cret\"}", "SUB a"});
  CHECK(c.sources[0].framing.maxFrameBytes == 1048576);
  CHECK(effectiveConfigYaml(c).find("s3cret") == std::string::npos);
  CHECK(errorOf("upstream: {type: websocket}\n") == "test.yaml:1: upstream: missing required key 'url' (or endpoints)");
  CHECK(errorOf("upstream: {type: websocket, url: 'http://x/'}\n") ==
        "test.yaml:1: upstream.url: must start with ws:// or wss://, got 'http://x/'");
  CHECK(errorOf("upstream: {type: websocket, url: 'ws://x/', framing: {type: delimiter}}\n") ==
        "test.yaml:1: upstream.framing: belongs to source types tcp, http, listen, stdin, generator, not websocket");
}

TEST_CASE("send_on_connect expands environment variables", "[config]") {
  setenv("STREAMRELAY_TEST_TOKEN", "s3cret", 1);
  Config c = parseConfig("upstream: {type: tcp, host: h, port: 1, send_on_connect: \"AUTH ${STREAMRELAY_TEST_TOKEN}\\n\"}\n", "t");
  CHECK(c.sources.at(0).settings.string("send_on_connect") == "AUTH s3cret\n");
}

// Defect: a key that is a list or a mapping escaped as YAML::TypedBadConversion
// and aborted the binary; some errors echoed raw values over several lines.
TEST_CASE("any file gives one ConfigError of one line, never another exception", "[config]") {
  const char* files[] = {
      "[x]: 1\n",
      "{a: 1}: 2\n",
      "upstream: {type: generator, [rate]: 5}\n",
      "upstream: {type: generator}\nlisteners: [{name: a, bind: '127.0.0.1:0', {q: 1}: 2}]\n",
      "upstream: {type: \"tcp\\nsecond line\"}\n",
      "upstream: {type: generator, rate: \"1\\n2\"}\n",
      "upstream: {type: generator}\nlisteners: [{name: a, bind: \"x\\nbad\"}]\n",
      "upstream: !!binary aGVsbG8=\n",
      "? [a, b]\n: c\n",
  };
  for (const char* yaml : files) {
    INFO(yaml);
    std::string error;
    CHECK_NOTHROW(error = errorOf(yaml));
    CHECK_FALSE(error.empty());
    CHECK(error.find('\n') == std::string::npos);
    CHECK(error.rfind("test.yaml:", 0) == 0);
  }
  CHECK(errorOf("[x]: 1\n") == "test.yaml:1: (top level): a key must be a plain name, not a list or mapping");
}

TEST_CASE("a NUL delimiter is allowed", "[config]") {
  Config c = parseConfig("upstream: {type: stdin, framing: {type: delimiter, delimiter: \"\\0\"}}\n", "t");
  CHECK(c.sources.at(0).framing.delimiter == std::string(1, '\0'));
}

TEST_CASE("allow lists match IPv4 and IPv6 and IPv4-mapped peers", "[config]") {
  CidrList list({Cidr::parse("127.0.0.0/8"), Cidr::parse("::1/128")});
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "127.1.2.3", &v4.sin_addr);
  CHECK(list.allows(reinterpret_cast<sockaddr*>(&v4)));
  inet_pton(AF_INET, "10.0.0.1", &v4.sin_addr);
  CHECK_FALSE(list.allows(reinterpret_cast<sockaddr*>(&v4)));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
  CHECK(list.allows(reinterpret_cast<sockaddr*>(&v6)));
  inet_pton(AF_INET6, "::1", &v6.sin6_addr);
  CHECK(list.allows(reinterpret_cast<sockaddr*>(&v6)));
  inet_pton(AF_INET6, "::2", &v6.sin6_addr);
  CHECK_FALSE(list.allows(reinterpret_cast<sockaddr*>(&v6)));
}

// Defect: "::/0" and "::/64" admitted every IPv4 client.
TEST_CASE("an IPv6 rule outside the IPv4-mapped space never admits an IPv4 peer", "[config]") {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:192.0.2.7", &mapped.sin6_addr);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
  for (const char* rule : {"::/0", "::/64", "::/95"}) {
    INFO(rule);
    CidrList list({Cidr::parse(rule)});
    CHECK_FALSE(list.allows(reinterpret_cast<sockaddr*>(&v4)));
    CHECK_FALSE(list.allows(reinterpret_cast<sockaddr*>(&mapped)));
  }
  CHECK(CidrList({Cidr::parse("::/0")}).allows(reinterpret_cast<sockaddr*>(&v6)));
  CHECK(CidrList({Cidr::parse("::ffff:192.0.2.0/120")}).allows(reinterpret_cast<sockaddr*>(&v4)));
  CHECK(CidrList({Cidr::parse("0.0.0.0/0")}).allows(reinterpret_cast<sockaddr*>(&mapped)));
  CHECK_FALSE(CidrList({Cidr::parse("0.0.0.0/0")}).allows(reinterpret_cast<sockaddr*>(&v6)));
}

TEST_CASE("the effective config printed by --check-config reads back the same", "[config]") {
  Config c = loadConfig(STREAMRELAY_SOURCE_DIR "/config/streamrelay.yaml");
  std::string printed = effectiveConfigYaml(c);
  Config again = parseConfig(printed, "printed");
  CHECK(effectiveConfigYaml(again) == printed);
  REQUIRE(again.plugins.instances.size() == 2);
  CHECK(again.plugins.instances[0].queue.onFull == OverflowPolicy::Block);
  CHECK(again.plugins.instances[0].configYaml.find("batch_frames: 1000") != std::string::npos);
  CHECK(again.listeners[1].framing.delimiter == "\n");
}

TEST_CASE("named sources and inputs: defaults and every topology error on one line", "[config]") {
  const std::string two = "sources:\n  a: {type: generator}\n  b: {type: stdin}\n";
  SECTION("upstream is one source named upstream; inputs default to it") {
    Config c = parseConfig(std::string(kMinimal) + "listeners: [{name: l, bind: '127.0.0.1:0'}]\n", "t");
    REQUIRE(c.sources.size() == 1);
    CHECK(c.sources[0].name == "upstream");
    CHECK(c.listeners[0].inputs == std::vector<std::string>{"upstream"});
  }
  SECTION("several sources, each named by its key, in file order") {
    Config c = parseConfig(two + "listeners: [{name: l, bind: '127.0.0.1:0', inputs: [b, a]}]\n", "t");
    REQUIRE(c.sources.size() == 2);
    CHECK(c.sources[0].name == "a");
    CHECK(c.sources[1].type() == "stdin");
    CHECK(c.listeners[0].inputs == std::vector<std::string>{"b", "a"});
    std::string printed = effectiveConfigYaml(c);
    CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);
  }
  SECTION("a plugin instance is a stream: listeners and other instances may read it") {
    Config c = parseConfig(two + "plugins: {directory: d, instances: [{name: f, type: filter, inputs: [a]}, "
                                 "{name: db, type: sqlite_writer, inputs: [f, b]}]}\n"
                                 "listeners: [{name: l, bind: '127.0.0.1:0', inputs: [f]}]\n", "t");
    CHECK(c.plugins.instances[1].inputs == std::vector<std::string>{"f", "b"});
    CHECK(c.listeners[0].inputs == std::vector<std::string>{"f"});
    CHECK(streamNames(c) == std::vector<std::string>{"a", "b", "f", "db"});
  }
  SECTION("a plugin instance without inputs is resolved when its plugin loads (one that reads no frames needs none)") {
    Config c = parseConfig(two + "plugins: {directory: d, instances: [{name: m, type: metrics}]}\n", "t");
    CHECK(c.plugins.instances[0].inputs.empty());
  }
  SECTION("errors") {
    CHECK(errorOf(two + "listeners: [{name: l, bind: '127.0.0.1:0'}]\n") ==
          "test.yaml:4: listeners[0].inputs: required when there are several sources (a, b)");
    CHECK(errorOf(two + "listeners: [{name: l, bind: '127.0.0.1:0', inputs: [c]}]\n") ==
          "test.yaml:4: listeners[0].inputs: unknown input 'c' (streams: a, b)");
    CHECK(errorOf(two + "listeners: [{name: l, bind: '127.0.0.1:0', inputs: [a, a]}]\n") ==
          "test.yaml:4: listeners[0].inputs: input 'a' is listed twice");
    CHECK(errorOf(two + "plugins: {directory: d, instances: [{type: t, inputs: [x]}]}\n") ==
          "test.yaml:4: plugins.instances[0].inputs: unknown input 'x' (streams: a, b, t)");
    CHECK(errorOf(two + "plugins: {directory: d, instances: [{name: p, type: t, inputs: [q]}, "
                        "{name: q, type: t, inputs: [p]}]}\n") ==
          "test.yaml:4: plugins.instances[0].inputs: 'p' reads its own output (a cycle through the inputs of plugin "
          "instances)");
    CHECK(errorOf(two + "plugins: {directory: d, instances: [{name: a, type: t, inputs: [b]}]}\n") ==
          "test.yaml:4: plugins.instances[0].name: 'a' is also a source: a stream name must be unique");
    CHECK(errorOf(std::string(kMinimal) + two) ==
          "test.yaml:2: sources: use either `upstream:` (one source) or `sources:`, not both");
    CHECK(errorOf("listeners: []\n") ==
          "test.yaml: sources: missing (every relay needs a source: `upstream:` or `sources:`)");
    CHECK(errorOf("sources:\n  'a b': {type: generator}\n") ==
          "test.yaml:2: sources.a b: a source name is letters, digits, '_', '-' and '.'");
  }
}

TEST_CASE("every example in config/ loads, and prints a config that loads the same", "[config]") {
  ::setenv("STREAMRELAY_TOKEN", "example-token", 1);
  ::setenv("JWT_SECRET", "example-secret", 1);
  for (const char* file : {"streamrelay.yaml", "two-sources.yaml", "processors.yaml", "provider-tls.yaml",
                           "http-ndjson.yaml", "http-sse.yaml", "websocket-exchange.yaml", "remote-subscribers.yaml",
                           "lua.yaml", "browser.yaml"}) {
    INFO(file);
    Config c = loadConfig(std::string(STREAMRELAY_SOURCE_DIR "/config/") + file);
    std::string printed = effectiveConfigYaml(c);
    CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);
  }
}

TEST_CASE("isolation: in_process by default, process with its limits, and their mistakes on one line", "[config]") {
  const std::string head = std::string(kMinimal) + "plugins:\n  directory: /tmp\n  instances:\n";
  SECTION("the default") {
    Config c = parseConfig(head + "    - {type: filter}\n", "t");
    CHECK(c.plugins.instances[0].isolation == PluginIsolation::InProcess);
    CHECK(c.plugins.instances[0].process.watchdogMs == 10000);
    CHECK(c.plugins.instances[0].process.memoryLimitBytes == 0);
    CHECK(c.plugins.instances[0].process.seccomp);
  }
  SECTION("process, with every limit given") {
    Config c = parseConfig(head + "    - type: filter\n      isolation: process\n      process: {memory_limit_bytes: "
                                  "67108864, watchdog_ms: 500, restart: {initial_delay_ms: 5, max_delay_ms: 50}, "
                                  "ring_bytes: 65536, seccomp: false}\n",
                           "t");
    const PluginInstanceConfig& i = c.plugins.instances[0];
    CHECK(i.isolation == PluginIsolation::Process);
    CHECK(i.process.memoryLimitBytes == 67108864);
    CHECK(i.process.watchdogMs == 500);
    CHECK(i.process.restartInitialDelayMs == 5);
    CHECK(i.process.restartMaxDelayMs == 50);
    CHECK(i.process.ringBytes == 65536);
    CHECK_FALSE(i.process.seccomp);
    std::string printed = effectiveConfigYaml(c);
    CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);
  }
  SECTION("mistakes") {
    CHECK(errorOf(head + "    - {type: filter, isolation: fork}\n") ==
          "test.yaml:5: plugins.instances[0].isolation: 'fork' is not one of: in_process, process");
    CHECK(errorOf(head + "    - {type: filter, process: {memory_limit_bytes: 1000}}\n") ==
          "test.yaml:5: plugins.instances[0].process.memory_limit_bytes: must be 0 (no limit) or at least 33554432 "
          "(the child's own code and libraries take about that much)");
    CHECK(errorOf(head + "    - {type: filter, process: {restart: {initial_delay_ms: 10, max_delay_ms: 5}}}\n") ==
          "test.yaml:5: plugins.instances[0].process.restart.max_delay_ms: must be >= initial_delay_ms");
  }
}

TEST_CASE("streams.NAME.key: one rule of three kinds, printed as written, every mistake on one line", "[config][keys]") {
  auto streamsOf = [](const std::string& block) {
    return std::string(kMinimal) + "streams:\n  upstream: " + block + "\n";
  };
  Config json = parseConfig(streamsOf("{key: {json_pointer: /a~1b/0}}"), "t");
  REQUIRE(json.streams.at(0).key);
  CHECK(json.streams[0].key->kind == KeyRule::Kind::JsonPointer);
  CHECK(json.streams[0].key->pointer == "/a~1b/0");
  CHECK_FALSE(json.streams[0].replay.enabled());  // a stream may set a key rule and no ring
  Config regex = parseConfig(streamsOf("{key: {regex: 'sym=(\\w+)'}}"), "t");
  CHECK(regex.streams.at(0).key->kind == KeyRule::Kind::Regex);
  CHECK(regex.streams[0].key->group == 1);
  Config bytes = parseConfig(streamsOf("{replay: {frames: 10}, key: {bytes: {offset: 2, length: 8}}}"), "t");
  CHECK(bytes.streams.at(0).key->kind == KeyRule::Kind::Bytes);
  CHECK(bytes.streams[0].key->offset == 2);
  CHECK(bytes.streams[0].key->length == 8);
  CHECK_FALSE(parseConfig(streamsOf("{replay: {frames: 10}}"), "t").streams.at(0).key);

  for (const Config* c : {&json, &regex, &bytes}) {
    const std::string printed = effectiveConfigYaml(*c);
    CHECK(effectiveConfigYaml(parseConfig(printed, "printed")) == printed);
  }
  CHECK(effectiveConfigYaml(json).find("streams:\n  upstream:\n    key: {json_pointer: /a~1b/0}\n") != std::string::npos);
  CHECK(effectiveConfigYaml(bytes).find(
            "streams:\n  upstream:\n    replay: {frames: 10, bytes: 0, age_s: 0}\n    key: {bytes: {offset: 2, length: 8}}") !=
        std::string::npos);

  CHECK(errorOf(streamsOf("{key: {}}")) ==
        "test.yaml:3: streams.upstream.key: give one of json_pointer, regex or bytes (how a frame's key is found)");
  CHECK(errorOf(streamsOf("{key: {json_pointer: /a, regex: x}}")) ==
        "test.yaml:3: streams.upstream.key: give one of json_pointer, regex or bytes (how a frame's key is found)");
  CHECK(errorOf(streamsOf("{key: {json_pointer: symbol}}")) ==
        "test.yaml:3: streams.upstream.key.json_pointer: must start with '/' (RFC 6901), e.g. /symbol; got 'symbol'");
  CHECK(errorOf(streamsOf("{key: {json_pointer: /a~2}}")) ==
        "test.yaml:3: streams.upstream.key.json_pointer: '~' at offset 2 must be followed by 0 or 1 (RFC 6901: ~0 is "
        "'~', ~1 is '/')");
  CHECK(errorOf(streamsOf("{key: {regex: 'sym=(\\w+'}}")) ==
        "test.yaml:3: streams.upstream.key.regex: does not compile: missing ) at offset 8");
  CHECK(errorOf(streamsOf("{key: {regex: 'sym=(\\w+)', group: 2}}")) ==
        "test.yaml:3: streams.upstream.key.group: 2 is not a group of the regex, which has 1 (0 is the whole match)");
  CHECK(errorOf(streamsOf("{key: {json_pointer: /a, group: 2}}")) ==
        "test.yaml:3: streams.upstream.key.group: applies to regex only");
  CHECK(errorOf(streamsOf("{key: {bytes: {offset: 2}}}")) ==
        "test.yaml:3: streams.upstream.key.bytes.length: must be 1..256 (a key is at most 256 bytes), got 0");
  CHECK(errorOf(streamsOf("{key: {bytes: {length: 300}}}")) ==
        "test.yaml:3: streams.upstream.key.bytes.length: must be 1..256 (a key is at most 256 bytes), got 300");
}

TEST_CASE("on_full conflate is a listener's policy, a plugin's queue refuses it", "[config][qos]") {
  Config c = parseConfig(std::string(kMinimal) + "listeners: [{name: a, bind: '127.0.0.1:0', queue: {on_full: conflate}}]\n", "t");
  CHECK(c.listeners.at(0).queue.onFull == OverflowPolicy::Conflate);
  const std::string error =
      errorOf(std::string(kMinimal) + "plugins: {directory: d, instances: [{name: m, type: metrics, queue: {on_full: conflate}}]}\n");
  CHECK_THAT(error, Catch::Contains("queue.on_full: 'conflate' is not one of: disconnect, drop_oldest, drop_newest, block"));
  CHECK(error.find('\n') == std::string::npos);
}

TEST_CASE("streams.NAME.log: its keys, defaults and the one-line errors that name them", "[config][log]") {
  const std::string base = "upstream: {type: generator}\nstreams:\n  upstream:\n    log: ";
  const Config c = parseConfig(base + "{dir: /var/lib/sr/up, fsync: always, retain: {frames: 9}}\n", "test.yaml");
  REQUIRE(c.streams.size() == 1);
  REQUIRE(c.streams.front().log);
  const LogOptions& log = *c.streams.front().log;
  CHECK(log.dir == "/var/lib/sr/up");
  CHECK(log.segmentBytes == 64u << 20);
  CHECK(log.fsync == FsyncPolicy::Always);
  CHECK(log.retain.frames == 9);
  const LogOptions defaults = *parseConfig(base + "{dir: d}\n", "test.yaml").streams.front().log;
  CHECK(defaults.fsync == FsyncPolicy::EveryMs);
  CHECK(defaults.fsyncEveryMs == 100);
  CHECK(parseConfig(base + "{dir: d, fsync: {every_ms: 7}}\n", "test.yaml").streams.front().log->fsyncEveryMs == 7);
  CHECK(parseConfig(base + "{dir: d, fsync: never}\n", "test.yaml").streams.front().log->fsync == FsyncPolicy::Never);
  CHECK_FALSE(parseConfig("upstream: {type: generator}\n", "test.yaml").streams.size());

  const std::string fsyncError =
      "test.yaml:4: streams.upstream.log.fsync: expected always, never or {every_ms: N} (N from 1 to 3600000)";
  CHECK(errorOf(base + "{dir: d, fsync: sometimes}\n") == fsyncError);
  CHECK(errorOf(base + "{dir: d, fsync: {every_ms: 0}}\n") == fsyncError);
  CHECK(errorOf(base + "{dir: d, fsync: {every_ms: 5, x: 1}}\n") == fsyncError);
  CHECK(errorOf(base + "{fsync: always}\n") ==
        "test.yaml:4: streams.upstream.log: missing required key 'dir' (the directory of the stream's log)");
  CHECK(errorOf(base + "{dir: d, segment_bytes: 100}\n") ==
        "test.yaml:4: streams.upstream.log.segment_bytes: 100 is out of range 4096..1099511627776");
  CHECK(errorOf(base + "{dir: d, retain: {age_s: -1}}\n").find("streams.upstream.log.retain.age_s: -1 is out of range") !=
        std::string::npos);
  CHECK(errorOf("sources: {a: {type: generator}, b: {type: generator}}\nstreams:\n  a: {log: {dir: x/}}\n"
                "  b: {log: {dir: x}}\n") ==
        "test.yaml:4: streams.b.log.dir: 'x' is stream a's log already (one stream per directory)");
}
