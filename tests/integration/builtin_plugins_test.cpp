// SPDX-License-Identifier: Apache-2.0
// Integration tests of the built-in plugins (plugins/): real SQLite files and
// real HTTP scrapes of a running relay.

#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <regex>
#include <set>

#include "pki.hpp"
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

struct Row {
  long long seq;
  std::string payload;
};

// Every row of the table, in id order (an empty list if the file or table is missing).
std::vector<Row> readRows(const std::string& path, const std::string& table = "frames") {
  std::vector<Row> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, ("SELECT seq, payload FROM " + table + " ORDER BY id").c_str(), -1, &s, nullptr) == SQLITE_OK) {
      while (sqlite3_step(s) == SQLITE_ROW)
        rows.push_back({sqlite3_column_int64(s, 0), std::string(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                                                                 static_cast<std::size_t>(sqlite3_column_bytes(s, 1)))});
      sqlite3_finalize(s);
    }
  }
  sqlite3_close(db);
  return rows;
}

std::string sqliteInstance(const std::string& config, const std::string& queue = "{on_full: block}") {
  return "  instances:\n    - {name: db, type: sqlite_writer, queue: " + queue + ", config: " + config + "}\n";
}

// Feeds `count` frames and waits until the relay has read all of them (it
// logs the publisher's disconnect once it has read up to the end).
void feedFrames(const RunningRelay& relay, long count, const std::string& rate = "0") {
  const int disconnects = relay.process->countLines("publisher .* disconnected");
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", rate,
                         "--size", "100", "--count", std::to_string(count)});
  REQUIRE(feed->waitForExit(30s) == 0);
  REQUIRE(relay.process->waitForLines("publisher .* disconnected", disconnects + 1, 30s));
}

void stopRelay(RunningRelay& relay) {
  relay.process->terminate();
  REQUIRE(relay.process->waitForExit() == 0);
}

struct HttpReply {
  int status;
  std::string contentType;
  std::string body;
};

// Whether /stats says the consumer whose name starts with `prefix` holds its
// stream's publisher now (its `block` queue is full and the publisher waits).
bool holdsPublisher(int port, const std::string& prefix);

HttpReply httpGet(int port, const std::string& path) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path, Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpReply reply{static_cast<int>(response.getStatus()), response.getContentType(), ""};
  Poco::StreamCopier::copyToString(in, reply.body);
  return reply;
}

bool holdsPublisher(int port, const std::string& prefix) {
  auto stats = Poco::JSON::Parser().parse(httpGet(port, "/stats").body).extract<Poco::JSON::Object::Ptr>();
  for (const auto& c : *stats->getArray("consumers")) {
    auto consumer = c.extract<Poco::JSON::Object::Ptr>();
    if (consumer->getValue<std::string>("name").rfind(prefix, 0) == 0) return consumer->getValue<bool>("holding_publisher");
  }
  return false;
}

}  // namespace

TEST_CASE("sqlite_writer: N frames fed then SIGTERM leaves exactly N rows in order", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  std::string db = dir.path("frames.db");
  // What SIGTERM drains is bounded by shutdown_timeout_ms (5 s by default):
  // 20,000 rows on a loaded machine's disk may take longer, and this test is
  // about every row arriving, not about the deadline (tested apart).
  RunningRelay relay = startRelay(kListenUpstream + "shutdown_timeout_ms: 60000\n" +
                                      pluginsSection(dir, sqliteInstance("{path: " + db + "}")),
                                  {});
  REQUIRE(relay.process->waitForLine("plugin sqlite_writer loaded").size() > 0);
  const long frames = 20000;
  feedFrames(relay, frames);
  relay.process->terminate();
  REQUIRE(relay.process->waitForExit(90s) == 0);
  std::vector<Row> rows = readRows(db);
  REQUIRE(rows.size() == static_cast<std::size_t>(frames));
  for (long i = 0; i < frames; ++i) {
    std::string want = "feed " + std::to_string(i + 1) + ".";
    if (rows[i].seq != i + 1 || rows[i].payload.compare(0, want.size(), want) != 0 || rows[i].payload.size() != 100) {
      FAIL("row " << i << ": seq " << rows[i].seq << " payload '" << rows[i].payload.substr(0, 20) << "'");
    }
  }
}

TEST_CASE("sqlite_writer: a transaction per batch_frames or per flush_ms", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  std::string db = dir.path("batch.db");
  SECTION("full batches are committed; the rest waits for flush_ms or shutdown") {
    RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, sqliteInstance("{path: " + db + ", batch_frames: 100, flush_ms: 600000}")), {});
    feedFrames(relay, 250);
    CHECK(pollUntil([&] { return readRows(db).size() >= 200; }));
    CHECK(readRows(db).size() == 200);
    stopRelay(relay);
    CHECK(readRows(db).size() == 250);
  }
  SECTION("a partial batch is committed after flush_ms") {
    RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, sqliteInstance("{path: " + db + ", batch_frames: 100000, flush_ms: 200}")), {});
    feedFrames(relay, 10);
    CHECK(pollUntil([&] { return readRows(db).size() == 10; }));
  }
}

TEST_CASE("sqlite_writer: retention by row count and by age", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  std::string db = dir.path("retention.db");
  SECTION("max_rows keeps the newest rows") {
    RunningRelay relay = startRelay(kListenUpstream + pluginsSection(dir, sqliteInstance("{path: " + db + ", batch_frames: 100, max_rows: 100}")), {});
    feedFrames(relay, 1000);
    stopRelay(relay);
    std::vector<Row> rows = readRows(db);
    REQUIRE(rows.size() == 100);
    CHECK(rows.front().seq == 901);
    CHECK(rows.back().seq == 1000);
  }
  SECTION("max_age_s deletes rows older than that") {
    RunningRelay relay = startRelay("upstream: {type: generator, rate: 200}\n" +
                                        pluginsSection(dir, sqliteInstance("{path: " + db + ", batch_frames: 20, max_age_s: 1}")), {});
    CHECK(pollUntil([&] {
      std::vector<Row> rows = readRows(db);
      return !rows.empty() && rows.front().seq > 100 && rows.back().seq > 400;
    }, 20s));
  }
}

TEST_CASE("sqlite_writer: an unwritable path is logged and retried and the relay goes on", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100}\nlisteners:\n" + listener("main") +
                                  pluginsSection(dir, sqliteInstance("{path: /nonexistent-dir/x.db}", "{on_full: drop_newest}")));
  CHECK(relay.process->waitForLine("plugin db: cannot write to /nonexistent-dir/x.db: unable to open database file \\(retrying with backoff\\)").size() > 0);
  Subscriber sub(relay.address());
  std::string frame;
  for (int i = 0; i < 10; ++i) REQUIRE(sub.next(frame, 5s));
  CHECK(relay.process->countLines("cannot write to") == 1);  // one line per failure streak
  stopRelay(relay);
  CHECK(relay.process->countLines("gave up at shutdown: \\d+ frames not written to /nonexistent-dir/x.db") == 1);
}

TEST_CASE("metrics: /metrics and /stats and the status page report the relay", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main") +
                                  pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"));
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  int port = std::stoi(m[1]);
  Subscriber sub(relay.address());
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  const long frames = 500;
  feedFrames(relay, frames);
  REQUIRE(readSequence(sub, frames) == frames);

  // The writer counts a write just after the bytes left: the subscriber may read them first.
  HttpReply metrics;
  CHECK(pollUntil([&] {
    metrics = httpGet(port, "/metrics");
    return sampleValue(metrics.body, "streamrelay_write_latency_seconds_count") == frames;
  }));
  REQUIRE(metrics.status == 200);
  CHECK(metrics.contentType.rfind("text/plain; version=0.0.4", 0) == 0);
  const std::string& page = metrics.body;
  CHECK(sampleValue(page, "streamrelay_frames_received_total") == frames);
  CHECK(sampleValue(page, "streamrelay_bytes_received_total") == frames * 100);
  CHECK(sampleValue(page, "streamrelay_upstream_connects_total{source=\"upstream\"}") == 1);
  CHECK(sampleValue(page, "streamrelay_stream_frames_total{stream=\"upstream\"}") == frames);
  CHECK(sampleValue(page, "streamrelay_stream_last_seq{stream=\"upstream\"}") == frames);
  CHECK(sampleValue(page, "streamrelay_listener_clients{listener=\"main\"}") == 1);
  CHECK(sampleValue(page, "streamrelay_listener_accepted_total{listener=\"main\"}") == 1);
  CHECK(sampleValue(page, "streamrelay_frame_size_bytes_count") == frames);
  CHECK(sampleValue(page, "streamrelay_frame_size_bytes_bucket{le=\"256\"}") == frames);
  CHECK(sampleValue(page, "streamrelay_frame_size_bytes_bucket{le=\"64\"}") == 0);
  CHECK(sampleValue(page, "streamrelay_write_latency_seconds_count") == frames);
  std::smatch delivered;
  REQUIRE(std::regex_search(page, delivered, std::regex("streamrelay_consumer_delivered_frames_total\\{consumer=\"main/127\\.0\\.0\\.1:\\d+\",kind=\"subscriber\"\\} (\\d+)")));
  CHECK(std::stol(delivered[1]) == frames);

  // The exposition format: every family has HELP and TYPE before its samples;
  // every sample is `name{labels} value`.
  std::set<std::string> typed;
  std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|\+Inf|NaN)$)");
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) typed.insert(line.substr(7, line.find(' ', 7) - 7));
    if (line.empty() || line[0] == '#') continue;
    std::smatch s;
    INFO(line);
    REQUIRE(std::regex_match(line, s, sample));
    std::string family = std::regex_replace(s[1].str(), std::regex("_(bucket|sum|count)$"), "");
    CHECK((typed.count(s[1].str()) + typed.count(family)) > 0);
  }
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::string file = writeTempFile("metrics.txt", page);
    CHECK(std::system(("promtool check metrics < " + file).c_str()) == 0);
  }

  HttpReply stats = httpGet(port, "/stats");
  REQUIRE(stats.status == 200);
  Poco::JSON::Parser parser;
  auto json = parser.parse(stats.body).extract<Poco::JSON::Object::Ptr>();
  CHECK(json->getValue<long>("frames_received") == frames);
  CHECK(json->getArray("listeners")->getObject(0)->getValue<int>("clients") == 1);

  HttpReply home = httpGet(port, "/");
  CHECK(home.status == 200);
  CHECK(home.contentType.rfind("text/html", 0) == 0);
  CHECK(home.body.find("<canvas id=\"framesChart\"") != std::string::npos);
  CHECK(home.body.find("fetch(\"stats\")") != std::string::npos);
  CHECK(httpGet(port, "/nope").status == 404);
}

TEST_CASE("sqlite_writer: SIGTERM does not hang on a database that stays down", "[builtin]") {
  // `block` with a dead database: the queue fills and holds the upstream. The
  // relay must still stop within shutdown_timeout_ms.
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 2000}\nshutdown_timeout_ms: 1000\n" +
                                  pluginsSection(dir, sqliteInstance("{path: /nonexistent-dir/x.db, batch_frames: 5}",
                                                                     "{max_frames: 10, on_full: block}") +
                                                          "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"),
                                  {});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  int port = std::stoi(m[1]);
  // Wait until the upstream is held: the database's queue is full and the
  // source waits in it (a full queue alone may be emptied a moment later),
  // and the writer is in a backoff longer than shutdown_timeout_ms (after
  // its 6th failed write it waits 3.2 s), so that nothing empties the queue
  // before the deadline.
  auto writeErrors = [&] {
    auto stats = Poco::JSON::Parser().parse(httpGet(port, "/stats").body).extract<Poco::JSON::Object::Ptr>();
    for (const auto& p : *stats->getArray("plugins")) {
      auto plugin = p.extract<Poco::JSON::Object::Ptr>();
      if (plugin->getValue<std::string>("name") == "db" && plugin->getObject("counters")->has("write_errors"))
        return plugin->getObject("counters")->getValue<long>("write_errors");
    }
    return 0L;
  };
  REQUIRE(pollUntil([&] { return writeErrors() >= 6 && holdsPublisher(port, "plugin db"); }, 30s));
  auto start = std::chrono::steady_clock::now();
  stopRelay(relay);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // bounded (1 s and a loaded machine's margin), not forever
  CHECK(relay.process->countLines("closing every queue") == 1);
}

TEST_CASE("SIGTERM does not hang on a stalled subscriber whose queue blocks the upstream", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");  // to see the queue fill up from outside
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 20000, size: 1000}\nshutdown_timeout_ms: 1000\nlisteners:\n" +
                                  listener("main", "send_buffer_bytes: 4096, queue: {max_frames: 100, on_full: block}") +
                                  pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"));
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  int port = std::stoi(m[1]);
  Subscriber stalled(relay.address());  // connects, never reads
  // Held: its queue is full and the source waits in it.
  REQUIRE(pollUntil([&] { return holdsPublisher(port, "main/"); }));
  auto start = std::chrono::steady_clock::now();
  relay.process->terminate();
  CHECK(relay.process->waitForExit() == 0);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // bounded (1 s and a loaded machine's margin), not forever
  CHECK(relay.process->countLines("closing every queue") == 1);
}

namespace {
std::string testPlugin(const std::string& name) { return std::string(TEST_PLUGIN_DIR) + "/" + name + ".so"; }

// A relay with the metrics plugin and one recorder instance `rec`; returns the metrics port.
int startWithMetricsAndRecorder(PluginDir& dir, RunningRelay& relay, const std::string& recorderConfig) {
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.drop(testPlugin("recorder_v1"), "recorder.so");
  relay = startRelay("upstream: {type: generator, rate: 500, size: 20}\n" +
                         pluginsSection(dir, "  instances:\n"
                                             "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"
                                             "    - {name: rec, type: recorder, config: " + recorderConfig + "}\n"),
                     {});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  REQUIRE(relay.process->waitForLine("plugin recorder loaded").size() > 0);
  return std::stoi(m[1]);
}

double recorded(int port) {
  return sampleValue(httpGet(port, "/metrics").body, "streamrelay_plugin_events_total{plugin=\"rec\",event=\"recorded\"}");
}
}  // namespace

// Defect: a replacement whose create() refused replaced v1 by nothing.
TEST_CASE("a replacement whose create refuses keeps the old version running and shows in /stats and /metrics",
          "[builtin]") {
  PluginDir dir;
  RunningRelay relay;
  const std::string out = dir.path("rec.txt");
  int port = startWithMetricsAndRecorder(dir, relay, "{path: " + out + ", refuse_build: 2}");
  dir.drop(testPlugin("recorder_v2"), "recorder.so");
  CHECK(relay.process->waitForLine("recorder.so skipped: the replacement was not loaded \\(rec: create failed: build 2 "
                                   "refuses this config\\); the old version keeps running").size() > 0);
  std::size_t before = readLines(out).size();
  CHECK(pollUntil([&] { return readLines(out).size() > before + 50; }));  // v1 still records
  CHECK(relay.process->countLines("unloaded|reloaded") == 0);

  Poco::JSON::Parser parser;
  auto stats = parser.parse(httpGet(port, "/stats").body).extract<Poco::JSON::Object::Ptr>();
  auto failures = stats->getArray("plugin_load_failures");
  REQUIRE(failures->size() == 1);
  CHECK(failures->getObject(0)->getValue<std::string>("file") == dir.path("recorder.so"));
  CHECK(failures->getObject(0)->getValue<std::string>("error").find("build 2 refuses this config") != std::string::npos);
  CHECK(sampleValue(httpGet(port, "/metrics").body, "streamrelay_plugin_load_failed{file=\"" + dir.path("recorder.so") +
                                                        "\"}") == 1);
}

// Defect: counters started again from zero after a hot replace.
TEST_CASE("plugin counters and gauges survive a hot replace, and plugin messages stay on one line", "[builtin]") {
  PluginDir dir;
  RunningRelay relay;
  int port = startWithMetricsAndRecorder(dir, relay, "{path: " + dir.path("rec.txt") + ", greeting: \"two\\nlines\"}");
  CHECK(relay.process->waitForLine("plugin rec: two\\\\nlines$").size() > 0);  // escaped, one line
  REQUIRE(pollUntil([&] { return recorded(port) >= 200; }));
  const double before = recorded(port);
  dir.drop(testPlugin("recorder_v2"), "recorder.so");
  REQUIRE(relay.process->waitForLine("plugin recorder reloaded").size() > 0);
  const double justAfter = recorded(port);
  CHECK(justAfter >= before);
  CHECK(pollUntil([&] { return recorded(port) >= justAfter + 200; }));
  const std::string page = httpGet(port, "/metrics").body;
  CHECK(sampleValue(page, "streamrelay_plugin_gauge{plugin=\"rec\",gauge=\"last_seq\"}") > before);
  CHECK(sampleValue(page, "streamrelay_consumer_delivered_frames_total{consumer=\"plugin rec\",kind=\"plugin\"}") >=
        recorded(port) - 1000);
}

namespace {
// Connects to 127.0.0.1:port and resets the connection at once (SO_LINGER 0).
void connectAndReset(int port) {
  int fd = connectLoopback(port);
  if (fd < 0) return;
  linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
}

long listenerField(const Poco::JSON::Object::Ptr& stats, const char* field) {
  return stats->getArray("listeners")->getObject(0)->getValue<long>(field);
}
}  // namespace

// Defects: a client that reset before admission vanished without a log line
// or a counter; one that reset right after left its queue on the bus for good;
// and every refusal was one log line.
TEST_CASE("a flood of clients that reset at once: each is counted, none stays on the bus, the log stays short",
          "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 2000, size: 20}\nlisteners:\n" + listener("main") +
                                  pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"));
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  const int port = std::stoi(m[1]);
  const long clients = 500;
  for (long i = 0; i < clients; ++i) connectAndReset(relay.ports["main"]);
  Poco::JSON::Parser parser;
  Poco::JSON::Object::Ptr stats;
  auto settled = [&] {
    stats = parser.parse(httpGet(port, "/stats").body).extract<Poco::JSON::Object::Ptr>();
    long accounted = listenerField(stats, "accepted") + listenerField(stats, "lost_before_admission") +
                     listenerField(stats, "refused_max_clients") + listenerField(stats, "refused_allow");
    return accounted == clients && listenerField(stats, "clients") == 0;
  };
  CHECK(pollUntil(settled, 20s));
  INFO(stats->getArray("listeners")->getObject(0)->getValue<std::string>("name"));
  long subscribersOnBus = 0;
  auto consumers = stats->getArray("consumers");
  for (std::size_t i = 0; i < consumers->size(); ++i)
    subscribersOnBus += consumers->getObject(static_cast<unsigned>(i))->getValue<std::string>("kind") == "subscriber";
  CHECK(subscribersOnBus == 0);
  CHECK(relay.process->countLines("refused") < 20);
}

// send_buffer_bytes: auto (the default) gives a subscriber whose handshake RTT
// is under 1 ms the fast 256 KiB buffer; a number or 0 applies to everyone.
TEST_CASE("send_buffer_bytes auto treats a loopback subscriber as a near peer", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100}\nlisteners:\n" + listener("auto") +
                                      listener("kernel", "send_buffer_bytes: 0") +
                                      pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"),
                                  {"auto", "kernel"});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  Subscriber a(relay.address("auto")), b(relay.address("auto")), c(relay.address("kernel"));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 3));
  Poco::JSON::Parser parser;
  auto stats = parser.parse(httpGet(std::stoi(m[1]), "/stats").body).extract<Poco::JSON::Object::Ptr>();
  auto listeners = stats->getArray("listeners");
  CHECK(listeners->getObject(0)->getValue<long>("near_peers") == 2);
  CHECK(listeners->getObject(1)->getValue<long>("near_peers") == 0);
}

// Since plugin ABI 1.1 frames carry their stream's name and the relay run's
// epoch; a plugin binary built against the 1.0 header still loads and runs.
// The value of one instance's counter or gauge in /stats (-1 if absent).
double pluginFigure(const Poco::JSON::Object::Ptr& stats, const std::string& instance, const std::string& group,
                    const std::string& name) {
  auto plugins = stats->getArray("plugins");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    auto p = plugins->getObject(static_cast<unsigned>(i));
    if (p->getValue<std::string>("name") == instance && p->getObject(group)->has(name))
      return p->getObject(group)->getValue<double>(name);
  }
  return -1;
}

// Binaries built against the frozen 1.0 and 1.1 headers keep loading and
// working; a 1.2 binary gets its frames in batches, counts through handles,
// and writes each frame only at flush, from the bytes it retained.
TEST_CASE("plugin binaries of ABI 1.0, 1.1 and 1.2 run on this host, and newer ones see the stream and the run's epoch",
          "[builtin][abi]") {
  std::uint64_t firstEpoch = 0;
  for (int run = 0; run < 2; ++run) {
    PluginDir dir;
    dir.drop(builtIn("metrics"), "metrics.so");
    dir.drop(testPlugin("c_abi_1_0"), "c_abi_1_0.so");
    dir.drop(testPlugin("c_abi_1_1"), "c_abi_1_1.so");
    dir.drop(testPlugin("c_current"), "c_current.so");
    const std::string v10 = dir.path("v10.txt"), v11 = dir.path("v11.txt"), v12 = dir.path("v12.txt");
    RunningRelay relay = startRelay("upstream: {type: generator, rate: 500}\n" +
                                        pluginsSection(dir, "  instances:\n"
                                                            "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"
                                                            "    - {name: v10, type: c_abi_1_0, config: {path: " + v10 + "}}\n"
                                                            "    - {name: v11, type: c_abi_1_1, config: {path: " + v11 + "}}\n"
                                                            "    - {name: v12, type: c_current, config: {path: " + v12 + "}}\n"),
                                    {});
    auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
    REQUIRE(m.size() == 2);
    REQUIRE(pollUntil([&] {
      return readLines(v10).size() >= 20 && readLines(v11).size() >= 20 && readLines(v12).size() >= 20;
    }));
    Poco::JSON::Parser parser;
    auto stats = parser.parse(httpGet(std::stoi(m[1]), "/stats").body).extract<Poco::JSON::Object::Ptr>();
    // A decimal string: a 64-bit epoch does not fit a JSON number (53 bits in JavaScript).
    REQUIRE(stats->get("epoch").isString());
    const std::uint64_t epoch = std::stoull(stats->getValue<std::string>("epoch"));
    CHECK(epoch != 0);
    CHECK(pluginFigure(stats, "v11", "gauges", "last_seq") >= 20);  // set_gauge, asked through supports()
    CHECK(pluginFigure(stats, "v12", "counters", "frames") >= 20);  // counter handles
    CHECK(pluginFigure(stats, "v12", "counters", "calls") >= 1);
    CHECK(pluginFigure(stats, "v12", "counters", "calls") <= pluginFigure(stats, "v12", "counters", "frames"));
    const std::vector<std::string> a = readLines(v10), b = readLines(v11), c = readLines(v12);
    for (std::size_t i = 0; i < 20; ++i) {
      const std::string seq = std::to_string(i + 1);
      CHECK(a[i] == seq);  // the 1.0 binary: seq only, every frame
      CHECK(b[i] == seq + " upstream " + std::to_string(epoch));
      // Written after the call, from the retained bytes: the generator's payload "frame N at ...".
      CHECK(c[i].rfind(seq + " upstream " + std::to_string(epoch) + " frame " + seq + " at ", 0) == 0);
    }
    if (run == 0) firstEpoch = epoch;
    else CHECK(epoch != firstEpoch);  // a new run, a new epoch
  }
}

// The built-in filter, chained: source -> filter -> filter -> listener gets
// exactly the matching frames, in order; frames that are not JSON are counted.
TEST_CASE("filter chain: source, JSON filter, contains filter, listener: exactly the matching frames in order",
          "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("filter"), "filter.so");
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay(
      "upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" + listener("out", "inputs: [btc]") +
          pluginsSection(dir, "  instances:\n"
                              "    - {name: trades, type: filter, queue: {on_full: block}, "
                              "config: {json: {pointer: /type, equals: trade}}}\n"
                              "    - {name: btc, type: filter, inputs: [trades], queue: {on_full: block}, "
                              "config: {contains: BTC}}\n"
                              "    - {name: metrics, type: metrics, inputs: [upstream], config: {bind: '127.0.0.1:0'}}\n"),
      {"out"});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  Subscriber sub(relay.address("out"));
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  std::string input;
  std::vector<std::string> expected;
  const char* symbols[] = {"BTC", "ETH", "BTC", "SOL"};
  for (int i = 0; i < 2000; ++i) {
    std::string type = i % 3 == 0 ? "quote" : "trade";
    std::string line = "{\"type\":\"" + type + "\",\"sym\":\"" + symbols[i % 4] + "\",\"n\":" + std::to_string(i) + "}";
    if (i % 100 == 7) line = "garbage " + std::to_string(i);  // not JSON
    if (type == "trade" && std::string(symbols[i % 4]) == "BTC" && i % 100 != 7) expected.push_back(line);
    input += line + "\n";
  }
  // Last, one more matching frame: whatever else passed would come before it.
  const std::string last = R"({"type":"trade","sym":"BTC","n":"last"})";
  expected.push_back(last);
  relay.process->writeStdin(input + last + "\n");
  std::string frame;
  std::size_t got = 0;
  while (got < expected.size() && sub.next(frame, 10s)) {
    REQUIRE(frame == expected[got]);
    ++got;
  }
  CHECK(got == expected.size());
  Poco::JSON::Parser parser;
  auto counters = [&](const std::string& name) {
    auto stats = parser.parse(httpGet(std::stoi(m[1]), "/stats").body).extract<Poco::JSON::Object::Ptr>();
    auto plugins = stats->getArray("plugins");
    for (std::size_t i = 0; i < plugins->size(); ++i)
      if (plugins->getObject(static_cast<unsigned>(i))->getValue<std::string>("name") == name)
        return plugins->getObject(static_cast<unsigned>(i))->getObject("counters");
    return Poco::JSON::Object::Ptr();
  };
  REQUIRE(pollUntil([&] { return counters("btc")->getValue<long>("passed") == static_cast<long>(expected.size()); }));
  CHECK(counters("trades")->getValue<long>("unparsable") == 20);
}

// The built-in conflate processor: a dashboard listener gets the newest frame
// per key, a few per key instead of every one.
TEST_CASE("conflate: a dashboard listener gets the newest frame per key, not every frame", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("conflate"), "conflate.so");
  RunningRelay relay = startRelay(
      "upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" + listener("dash", "inputs: [latest]") +
          pluginsSection(dir, "  instances:\n    - {name: latest, type: conflate, queue: {on_full: block}, "
                              "config: {key: /sym, interval_ms: 300}}\n"),
      {"dash"});
  REQUIRE(relay.process->waitForLine("plugin conflate loaded").size() > 0);
  Subscriber sub(relay.address("dash"));
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  const char* symbols[] = {"BTC", "ETH", "SOL"};
  std::string input;
  std::map<std::string, std::string> newest;
  for (int i = 0; i < 3000; ++i) {
    std::string line = std::string("{\"sym\":\"") + symbols[i % 3] + "\",\"px\":" + std::to_string(i) + "}";
    newest[symbols[i % 3]] = line;
    input += line + "\n";
  }
  relay.process->writeStdin(input);
  std::map<std::string, std::string> seen;
  int frames = 0;
  std::string frame;
  auto caughtUp = [&] { return seen == newest; };
  while (!caughtUp() && sub.next(frame, 10s)) {
    ++frames;
    for (const char* sym : symbols)
      if (frame.find(std::string("\"") + sym + "\"") != std::string::npos) seen[sym] = frame;
  }
  CHECK(caughtUp());     // the newest frame of every key arrived
  CHECK(frames <= 60);   // conflated: a few per key, not 3000
}

TEST_CASE("metrics: a source with endpoints shows the live one and each one's failures", "[builtin][failover]") {
  // The primary: a port bound for the whole test and never listened on, so
  // every connect is refused and no other process can take it.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string primary = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } holdPrimary{probe};
  auto secondaryFeed = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "100", "--hold"});
  const std::string secondary = "127.0.0.1:" + std::to_string(feedPort(*secondaryFeed));

  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay(
      "upstream: {type: tcp, endpoints: ['" + primary + "', '" + secondary +
      "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 200}}\nlisteners:\n" + listener("main") +
      pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"));
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  const int port = std::stoi(m[1]);
  REQUIRE(relay.process->waitForLine("\\(endpoint 2 of 2\\): connected").size() > 0);

  HttpReply stats = httpGet(port, "/stats");
  Poco::JSON::Object::Ptr source =
      Poco::JSON::Parser().parse(stats.body).extract<Poco::JSON::Object::Ptr>()->getArray("sources")->getObject(0);
  CHECK(source->getValue<std::string>("endpoint") == secondary);
  Poco::JSON::Array::Ptr endpoints = source->getArray("endpoints");
  REQUIRE(endpoints->size() == 2);
  CHECK(endpoints->getObject(0)->getValue<std::string>("address") == primary);
  CHECK(endpoints->getObject(0)->getValue<std::uint64_t>("failures") >= 1);
  CHECK_FALSE(endpoints->getObject(0)->getValue<bool>("live"));
  CHECK(endpoints->getObject(1)->getValue<bool>("live"));

  const std::string page = httpGet(port, "/metrics").body;
  CHECK(sampleValue(page, "streamrelay_upstream_endpoint_live{source=\"upstream\",endpoint=\"" + secondary + "\"}") == 1);
  CHECK(sampleValue(page, "streamrelay_upstream_endpoint_live{source=\"upstream\",endpoint=\"" + primary + "\"}") == 0);
  CHECK(sampleValue(page, "streamrelay_upstream_endpoint_failures_total{source=\"upstream\",endpoint=\"" + primary +
                              "\"}") >= 1);
}

// Config reload of plugin instances under load (SIGHUP): a filter instance and
// a listener on its stream are added, the filter's config is changed, then
// both are removed, while one publisher sends 60,000 frames at 20,000
// frames/s to 16 subscribers of an unchanged listener. The publisher's one
// connection is never dropped and those subscribers get every frame.
// The filter reads a generator of its own, whose frames flow for as long as
// the test needs them (the load's 60,000 frames may be over before a loaded
// machine has applied the reloads).
TEST_CASE("config reload: a filter instance added, reconfigured and removed under load", "[builtin][reload]") {
  PluginDir dir;
  dir.drop(builtIn("filter"), "filter.so");
  const std::string base = "sources:\n  upstream: {type: listen, bind: '127.0.0.1:0'}\n"
                           "  gen: {type: generator, rate: 2000, size: 48}\nlisteners:\n" +
                           listener("main", "inputs: [upstream]");
  const std::string plugins = pluginsSection(dir, "");
  RunningRelay relay = startRelay(base + plugins);
  LoadUnderTest load(relay, 60000, 32);

  auto withFilter = [&](const std::string& regex) {
    return base + listener("picked", "inputs: [picked]") +
           pluginsSection(dir, "  instances:\n    - {name: picked, type: filter, inputs: [gen], config: {regex: '" +
                                   regex + "'}}\n");
  };
  // The number N of "frame N at ...", or -1.
  auto numberOf = [](const std::string& frame) { return frame.rfind("frame ", 0) == 0 ? std::atol(frame.c_str() + 6) : -1L; };

  relay.reload(withFilter("^frame [0-9]*[13579] "));  // odd N
  CHECK(relay.process->waitForLine("config reload: plugin instances picked added, removed or changed").size() > 0);
  auto m = relay.process->waitForLine("listener picked: listening on 127\\.0\\.0\\.1:(\\d+) ");
  REQUIRE(m.size() == 2);
  Subscriber picked("127.0.0.1:" + m[1].str());
  std::string frame;
  long previous = -1;
  for (int i = 0; i < 200 && picked.next(frame, 10s); ++i) {
    const long n = numberOf(frame);
    CHECK(n % 2 == 1);
    if (previous >= 0) CHECK(n == previous + 2);  // every odd frame, in order
    previous = n;
  }

  relay.reload(withFilter("^frame [0-9]*[02468] "));  // now even N: the instance is replaced in place
  CHECK(relay.process->waitForLines("config reload: plugin instances picked added, removed or changed", 2));
  bool even = false;
  for (int i = 0; i < 20000 && !even && picked.next(frame, 10s); ++i) even = numberOf(frame) % 2 == 0;
  CHECK(even);

  relay.reload(base + plugins);
  CHECK(relay.process->waitForLines("config reload: plugin instances picked added, removed or changed", 3));
  CHECK(relay.process->waitForLine("config reload: listener picked removed").size() > 0);

  load.finish();
}

TEST_CASE("metrics: refusals by reason (TLS and tokens) and each subscriber's lag", "[builtin][protocol]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  RunningRelay relay = startRelay(
      kListenUpstream + "listeners:\n" +
          listener("main", "protocol: streamrelay, auth: {tokens: [right]}, write_deadline_ms: 0, send_buffer_bytes: 4096, "
                           "queue: {max_frames: 1000000, max_bytes: 0}") +
          listener("secure", "tls: {enabled: true, cert_file: '" + pki().path("server.pem") + "', key_file: '" +
                                 pki().path("server.key") + "'}") +
          pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"),
      {"main", "secure"});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  const int port = std::stoi(m[1]);
  auto refusals = [&](const std::string& listenerName, const std::string& reason) {
    return sampleValue(httpGet(port, "/metrics").body, "streamrelay_listener_disconnects_total{listener=\"" +
                                                           listenerName + "\",reason=\"" + reason + "\"}");
  };
  std::string frame;
  for (int i = 0; i < 3; ++i) {
    Subscriber::Options o;
    o.protocol = Subscriber::Protocol::Streamrelay;
    o.token = "wrong";
    Subscriber refused(relay.address(), o);
    CHECK_THROWS_AS(refused.next(frame, 10s), streamrelay::client::Refused);
  }
  CHECK(pollUntil([&] { return refusals("main", "auth_failed") == 3; }));
  const int plain = connectLoopback(relay.ports.at("secure"));
  const std::string notTls = "GET / HTTP/1.1\r\n\r\n";
  ::send(plain, notTls.data(), notTls.size(), MSG_NOSIGNAL);
  CHECK(pollUntil([&] { return refusals("secure", "tls_failed") == 1; }));
  ::close(plain);

  // A subscriber that stops reading falls behind: its queue and the age of
  // its oldest frame show it.
  const int stalled = connectLoopback(relay.ports.at("main"), 4096);
  const std::string hello = "{\"token\": \"right\"}\n";
  REQUIRE(::send(stalled, hello.data(), hello.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(hello.size()));
  REQUIRE(relay.process->waitForLine("main: subscriber .* connected").size() > 0);
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "1000", "--count", "20000"});
  REQUIRE(feed->waitForExit(30s) == 0);
  Poco::JSON::Object::Ptr subscriber;
  CHECK(pollUntil([&] {
    auto stats = Poco::JSON::Parser().parse(httpGet(port, "/stats").body).extract<Poco::JSON::Object::Ptr>();
    for (const auto& c : *stats->getArray("consumers")) {
      auto consumer = c.extract<Poco::JSON::Object::Ptr>();
      if (consumer->getValue<std::string>("name").rfind("main/", 0) == 0) subscriber = consumer;
    }
    return subscriber && subscriber->getValue<double>("lag_seconds") > 0.2;
  }));
  REQUIRE(subscriber);
  CHECK(subscriber->getValue<std::uint64_t>("queue_frames") > 0);
  CHECK(sampleValue(httpGet(port, "/metrics").body,
                    "streamrelay_consumer_lag_seconds{consumer=\"" + subscriber->getValue<std::string>("name") +
                        "\",kind=\"subscriber\"}") > 0.2);
  ::close(stalled);
}

// A plugin that reads no frames (metrics) needs no inputs, however many
// sources there are; one that reads frames and has no config says what it
// needs in words about its config.
TEST_CASE("several sources: metrics needs no inputs, a sink without config or inputs says what it needs", "[builtin]") {
  PluginDir dir;
  dir.drop(builtIn("metrics"), "metrics.so");
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  const std::string twoSources = "sources:\n  a: {type: generator, rate: 100}\n  b: {type: generator, rate: 100}\n";
  std::string instances;
  SECTION("metrics dropped in with a sidecar file, sqlite_writer dropped in without a config") {
    dir.write("metrics.yaml", "instances:\n  - {config: {bind: '127.0.0.1:0'}}\n");
  }
  SECTION("metrics configured without inputs, sqlite_writer configured without inputs") {
    instances = "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n"
                "    - {name: db, type: sqlite_writer, config: {path: " + dir.path("x.db") + "}}\n";
  }
  RunningRelay relay = startRelay(twoSources + pluginsSection(dir, instances), {});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
  REQUIRE(relay.process->waitForLine("plugin sqlite_writer loaded").size() > 0);
  Poco::JSON::Parser parser;
  auto stats = parser.parse(httpGet(std::stoi(m[1]), "/stats").body).extract<Poco::JSON::Object::Ptr>();
  auto plugins = stats->getArray("plugins");
  REQUIRE(plugins->size() == 1);
  CHECK(plugins->getObject(0)->getValue<std::string>("type") == "metrics");
  for (std::size_t i = 0; i < stats->getArray("consumers")->size(); ++i)  // it subscribes to nothing
    CHECK(stats->getArray("consumers")->getObject(static_cast<unsigned>(i))->getValue<std::string>("kind") != "plugin");
  auto failures = stats->getArray("plugin_load_failures");
  if (instances.empty()) {
    // Not a failure of the file: it waits for a config, and says so.
    CHECK(failures->size() == 0);
    CHECK(relay.process->countLines("plugin sqlite_writer: not started: it needs a config of its own .*config: "
                                    "missing required key 'path'") == 1);
    CHECK(relay.process->countLines("sqlite_writer.*inputs") == 0);
  } else {
    REQUIRE(failures->size() == 1);
    CHECK(failures->getObject(0)->getValue<std::string>("error") ==
          "db: inputs: required when there are several sources (a, b)");
  }
}
