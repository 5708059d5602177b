// SPDX-License-Identifier: Apache-2.0
// Integration tests of the http source against a real HTTP server on
// loopback (tests/support/http_feed.py, Python's http.server): chunked NDJSON,
// gzip, Server-Sent Events with a connection dropped mid-event and resumed by
// Last-Event-ID, 429 with Retry-After, 500, redirects (and where the
// configured headers may go), headers from the environment, POST, an idle
// body, a response that ends, and garbage instead of HTTP.

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>

#include "pki.hpp"
#include "relay_fixture.hpp"
#include "scratch_dir.hpp"

using namespace streamrelay::test;

namespace {

struct HttpFeed {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  bool https = false;
  explicit HttpFeed(int fixedPort = 0, bool withTls = false) : https(withTls) {
    std::vector<std::string> args{STREAMRELAY_SOURCE_DIR "/tests/support/http_feed.py", "--port",
                                  std::to_string(fixedPort)};
    if (https) args.insert(args.end(), {"--cert", pki().path("server.pem"), "--key", pki().path("server.key")});
    process = std::make_unique<ChildProcess>("/usr/bin/python3", args);
    auto m = process->waitForLine("listening on 127.0.0.1:(\\d+)");
    INFO(process->output());
    REQUIRE(m.size() == 2);
    port = std::stoi(m[1]);
  }
  std::string url(const std::string& path) const {
    return (https ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port) + path;
  }
};

// The subscriber connects after the relay started fetching: a replay ring
// gives it every frame from the first.
std::string httpUpstream(const std::string& url, const std::string& extra = "") {
  return "upstream: {type: http, url: '" + url + "', reconnect: {initial_delay_ms: 50, max_delay_ms: 400}" +
         (extra.empty() ? "" : ", " + extra) + "}\nstreams: {upstream: {replay: {frames: 10000}}}\nlisteners:\n" +
         listener("main", "replay: {frames: 10000}");
}

}  // namespace

TEST_CASE("http: a chunked NDJSON body, lines cut across chunks, one frame per line", "[integration][http]") {
  HttpFeed feed;
  SECTION("identity") {
    RunningRelay relay = startRelay(httpUpstream(feed.url("/ndjson?n=2000")));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 2000) == 2000);
  }
  SECTION("gzip") {
    RunningRelay relay = startRelay(httpUpstream(feed.url("/ndjson?n=2000&gzip=1")));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 2000) == 2000);
  }
  SECTION("through a redirect") {
    RunningRelay relay = startRelay(httpUpstream(feed.url("/redirect?to=/ndjson%3Fn%3D300")));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 300) == 300);
  }
  SECTION("POST with a body") {
    RunningRelay relay = startRelay(httpUpstream(feed.url("/post"), "method: POST, body: '250'"));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 250) == 250);
  }
}

TEST_CASE("http: headers take secrets from the environment and never print them", "[integration][http]") {
  HttpFeed feed;
  ::setenv("STREAMRELAY_TEST_BEARER", "s3cret", 1);
  RunningRelay relay =
      startRelay(httpUpstream(feed.url("/auth?n=100"), "headers: {Authorization: 'Bearer ${STREAMRELAY_TEST_BEARER}'}"));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 100) == 100);
  CHECK(relay.process->output().find("s3cret") == std::string::npos);
}

// A frame is whole or not published: the event cut by the dropped connection
// is not, and the resume starts right after the last whole event.
TEST_CASE("http sse: a connection dropped mid-event resumes with Last-Event-ID, nothing twice or cut",
          "[integration][http]") {
  HttpFeed feed;
  RunningRelay relay = startRelay(httpUpstream(feed.url("/sse?n=600&drop_after=250"), "framing: {type: sse}"));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 600) == 600);
  CHECK(feed.process->waitForLine("GET /sse\\?n=600&drop_after=250 Last-Event-ID=250").size() > 0);
  CHECK(relay.process->countLines("transfer closed with outstanding read data remaining; retrying in") == 1);
}

TEST_CASE("http: 429 waits for Retry-After, 500 is retried with backoff, each one line", "[integration][http]") {
  HttpFeed feed;
  SECTION("429") {
    RelayStats stats;
    RunningRelay relay = startRelay(httpUpstream(feed.url("/limited?n=100")) + stats.section());
    stats.attach(relay);
    auto m = relay.process->waitForLine("(HTTP 429 Too Many Requests: slow down, please); retrying in 1000 ms "
                                        "\\(Retry-After\\)");
    INFO(relay.process->output());
    REQUIRE(m.size() == 2);
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 100) == 100);
    CHECK(stats.counter("connects") == 1);  // the refused request was a failed try, not a connection
    CHECK(stats.endpointFailures(0) == 1);
  }
  SECTION("500") {
    RunningRelay relay = startRelay(httpUpstream(feed.url("/fail")));
    INFO(relay.process->output());
    CHECK(relay.process->waitForLines("HTTP 500 Internal Server Error: boom: the feed is down; retrying in \\d+ ms$", 3));
  }
}

TEST_CASE("http: a body that goes quiet for idle_timeout_ms is requested again", "[integration][http]") {
  HttpFeed feed;
  RunningRelay relay = startRelay(httpUpstream(feed.url("/ndjson?n=5"), "idle_timeout_ms: 300"));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 5) == 5);
  CHECK(relay.process->waitForLine("no data for idle_timeout_ms 300 ms; retrying in").size() > 0);
  CHECK(feed.process->waitForLines("GET /ndjson\\?n=5 ", 2));
}

TEST_CASE("http: garbage instead of an HTTP response is one line and a retry, never a crash",
          "[integration][http]") {
  // A provider that answers every connection with bytes that are not HTTP.
  int server = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(server, 8) == 0);
  ::getsockname(server, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  std::thread provider([server] {
    for (int i = 0; i < 3; ++i) {
      int c = ::accept(server, nullptr, nullptr);
      if (c < 0) return;
      const std::string garbage = "\x16\x03\x01 NOT HTTP AT ALL \r\n\r\n\xff\xfe";
      (void)!::send(c, garbage.data(), garbage.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  });
  {
    RunningRelay relay = startRelay(httpUpstream("http://127.0.0.1:" + std::to_string(port) + "/"));
    INFO(relay.process->output());
    CHECK(relay.process->waitForLines("upstream http://127\\.0\\.0\\.1:\\d+/: .*; retrying in \\d+ ms", 3));
  }
  ::shutdown(server, SHUT_RDWR);
  ::close(server);
  provider.join();
}

// Failover with `return_to_primary: probe`: the primary dies mid-stream, the
// secondary takes over at once, and the primary is taken back (probed while
// the secondary streams) when it serves again. Every frame arrives whole.
// (The default policy is tested with the other sources in connecting_source_test.)
TEST_CASE("http endpoints, probe: fail over when the primary dies, and back when it answers",
          "[integration][http][failover]") {
  auto primary = std::make_unique<HttpFeed>();
  const int primaryPort = primary->port;
  HttpFeed secondary;
  const std::string path = "/ndjson?n=100000&rate=2000";
  RunningRelay relay = startRelay(
      "upstream: {type: http, endpoints: ['" + primary->url(path) + "', '" + secondary.url(path) +
      "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}, failover: {return_to_primary: probe}}\nlisteners:\n" +
      listener("main"));
  Subscriber sub(relay.address());
  REQUIRE(relay.process->waitForLine("\\(endpoint 1 of 2\\): connected \\(HTTP 200\\)").size() > 0);
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  primary->process->kill();
  primary->process->waitForExit();
  CHECK(relay.process->waitForLine("\\(endpoint 2 of 2\\): connected \\(HTTP 200\\)").size() > 0);
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  HttpFeed back(primaryPort);
  CHECK(relay.process->waitForLine("the primary .* answers again: switching back").size() > 0);
  CHECK(relay.process->waitForLines("\\(endpoint 1 of 2\\): connected \\(HTTP 200\\)", 2));
  CHECK(readWholeFeedFrames(sub, 100) == 100);
}

// Retry-After in seconds is read with 64-bit arithmetic and capped at an
// hour: 4294968 s in a 32-bit int of ms wraps to 704 ms, 2147484 goes negative.
TEST_CASE("http: a Retry-After too large for an int waits the cap (an hour), never a wrapped value",
          "[integration][http]") {
  HttpFeed feed;
  const std::string value = GENERATE(as<std::string>{}, "4294968", "2147484", "99999999999999999999");
  RunningRelay relay = startRelay(httpUpstream(feed.url("/limited?n=10&retry_after=" + value)));
  INFO(relay.process->output());
  CHECK(relay.process->waitForLine("HTTP 429 Too Many Requests: slow down, please; retrying in 3600000 ms "
                                   "\\(Retry-After\\)").size() > 0);
}

// The configured headers (API keys) go only to the configured URL's origin:
// a redirect to another host (here: another port) does not get them, unless
// headers_on_redirect says so. The same origin still gets them.
TEST_CASE("http: the configured headers never follow a redirect to another origin", "[integration][http]") {
  HttpFeed origin;
  HttpFeed other;
  const std::string elsewhere = other.url("/ndjson?n=50");
  const std::string key = "headers: {X-Api-Key: k3y, Authorization: 'Bearer s3cret'}";
  SECTION("to another origin: without them") {
    RunningRelay relay = startRelay(httpUpstream(origin.url("/redirect?to=" + elsewhere), key));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 50) == 50);
    auto m = other.process->waitForLine("GET /ndjson\\?n=50 .* headers=(.*)");
    INFO(other.process->output());
    REQUIRE(m.size() == 2);
    CHECK(m[1].str().find("x-api-key") == std::string::npos);
    CHECK(m[1].str().find("authorization") == std::string::npos);
    CHECK(origin.process->waitForLine("GET /redirect.* headers=.*x-api-key").size() > 0);
  }
  SECTION("to another origin with headers_on_redirect: true") {
    RunningRelay relay = startRelay(httpUpstream(origin.url("/redirect?to=" + elsewhere), key + ", headers_on_redirect: true"));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 50) == 50);
    CHECK(other.process->waitForLine("GET /ndjson\\?n=50 .* headers=.*x-api-key").size() > 0);
  }
  SECTION("to the same origin: with them") {
    RunningRelay relay = startRelay(httpUpstream(origin.url("/redirect?to=/auth%3Fn%3D50"), key));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 50) == 50);  // /auth serves only with the bearer token
  }
}

TEST_CASE("http: https is never redirected to http, with one line", "[integration][http][tls]") {
  HttpFeed secure(0, true);
  HttpFeed plain;
  RelayStats stats;
  RunningRelay relay = startRelay(
      httpUpstream(secure.url("/redirect?to=" + plain.url("/ndjson?n=10%26token=t0k3n")),  // the line names no query
                   "headers: {X-Api-Key: k3y}, tls: {ca_file: '" + pki().path("ca.pem") + "'}") +
      stats.section());
  stats.attach(relay);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines(
      "upstream https://127\\.0\\.0\\.1:\\d+/redirect\\?to=.*: HTTP 302: the redirect to http://127\\.0\\.0\\.1:" +
          std::to_string(plain.port) + "/ndjson is refused: https must not be downgraded to http .*; retrying in "
          "\\d+ ms$", 2));
  CHECK(plain.process->countLines("GET ") == 0);
  CHECK(stats.counter("connects") == 0);
  CHECK(stats.endpointFailures(0) >= 2);
}

// A response that ends after its frames is the provider's own end of the
// stream: requested again, and not an endpoint failure.
TEST_CASE("http: a response that ends after its frames is requested again, and is no failure",
          "[integration][http]") {
  HttpFeed feed;
  RelayStats stats;
  RunningRelay relay = startRelay(httpUpstream(feed.url("/ndjson?n=5&end=1")) + stats.section());
  stats.attach(relay);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("the response ended \\(HTTP 200\\); retrying in", 2));
  CHECK(pollUntil([&] { return stats.counter("connects") >= 2; }));
  CHECK(stats.endpointFailures(0) == 0);
}

// A URL may carry credentials (user:password@, ?token=): they are sent to the
// provider, never shown in a log line, /stats or /metrics.
TEST_CASE("http: a URL's password and token are used but never shown", "[integration][http][secrets]") {
  HttpFeed feed;
  RelayStats stats;
  const std::string url =
      "http://reader:hunter3@127.0.0.1:" + std::to_string(feed.port) + "/ndjson?n=100&token=hunter2";
  RunningRelay relay = startRelay(httpUpstream(url) + stats.section());
  stats.attach(relay);
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 100) == 100);
  std::ostringstream shown;
  stats.source()->stringify(shown);
  INFO(shown.str());
  CHECK(shown.str().find("127.0.0.1") != std::string::npos);
  CHECK(shown.str().find("hunter") == std::string::npos);
  CHECK(relay.process->output().find("hunter") == std::string::npos);
}

namespace {

// The frames of a stream's log directory, read straight from its segment
// files (the layout of docs/durable-streams.md): position records skipped.
struct LogFrame {
  std::uint64_t seq;
  std::string payload;
};
std::vector<LogFrame> framesOnDisk(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".seg") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  auto get = [](const std::string& b, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
    return v;
  };
  std::vector<LogFrame> frames;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::size_t at = 40; at + 12 <= bytes.size();) {
      const std::size_t length = get(bytes, at, 4);
      REQUIRE(at + 12 + length <= bytes.size());
      const std::uint32_t keyField = static_cast<std::uint32_t>(get(bytes, at + 28, 4));
      if (keyField != 0xFFFFFFFFu) {
        const std::size_t key = keyField == 0 ? 0 : keyField - 1;
        frames.push_back({get(bytes, at + 12, 8), bytes.substr(at + 32 + key, length - 20 - key)});
      }
      at += 12 + length;
    }
  }
  return frames;
}

}  // namespace

// The source keeps the provider's position (the SSE last event id) in the
// stream's log with the frames it follows: started again, stopped cleanly or
// killed, it resumes the provider after the last event the log holds.
TEST_CASE("http sse with a log: a restart resumes the provider after the last event kept, no gap, no duplicate",
          "[integration][http][log]") {
  const bool kill = GENERATE(false, true);
  INFO((kill ? "kill -9" : "clean stop"));
  HttpFeed feed;
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  auto config = [&](const RelayStats& stats) {
    return "upstream: {type: http, url: '" + feed.url("/sse?n=1000000&rate=2000") +
           "', framing: {type: sse}, reconnect: {initial_delay_ms: 50, max_delay_ms: 400}}\n"
           "streams: {upstream: {log: {dir: '" + dir + "', fsync: never}}}\nlisteners:\n" + listener("main") +
           stats.section();
  };
  // Frames this run's log wrote (a count, not a seq: after a kill the seqs jump).
  auto written = [](const RelayStats& stats) -> std::uint64_t {
    Poco::JSON::Object::Ptr upstream = stats.stream("upstream");
    REQUIRE(upstream);
    return upstream->getObject("log")->getValue<std::uint64_t>("frames_written");
  };
  for (int run = 1; run <= 2; ++run) {
    INFO("run " << run);
    RelayStats stats;
    RunningRelay relay = startRelay(config(stats));
    stats.attach(relay);
    REQUIRE(pollUntil([&] { return written(stats) >= 300; }));
    if (kill && run == 1) {
      relay.process->kill();
      relay.process->waitForExit();
    } else {
      relay.process->terminate();
      CHECK(relay.process->waitForExit() == 0);
    }
  }
  // The second run asked the provider to resume after an event of the first.
  auto resumed = feed.process->waitForLine("GET /sse\\?n=1000000&rate=2000 Last-Event-ID=(\\d+)");
  REQUIRE(resumed.size() == 2);
  const std::vector<LogFrame> frames = framesOnDisk(dir);
  REQUIRE(frames.size() >= 600);
  // Events 1, 2, 3... each once, in order; seqs rise (a hole after a kill is allowed).
  bool resumedAfterKept = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    INFO("frame " << i << " seq " << frames[i].seq);
    REQUIRE(frames[i].payload == "feed " + std::to_string(i + 1));
    if (i > 0) REQUIRE(frames[i].seq > frames[i - 1].seq);
    if (frames[i].payload == "feed " + resumed[1].str()) resumedAfterKept = i + 1 < frames.size();
  }
  CHECK(resumedAfterKept);
}

// A reload that changes the source starts it again on the same stream: it
// resumes the provider after the last event the stream published (the
// stream keeps the position, with or without a log), so its subscribers
// see no gap and no repeat.
TEST_CASE("http sse: a source changed by a reload resumes its provider after the last event, no gap, no duplicate",
          "[integration][http][reload]") {
  HttpFeed feed;
  auto config = [&](int maxDelayMs) {
    return "upstream: {type: http, url: '" + feed.url("/sse?n=1000000&rate=2000") +
           "', framing: {type: sse}, reconnect: {initial_delay_ms: 50, max_delay_ms: " + std::to_string(maxDelayMs) +
           "}}\nstreams: {upstream: {replay: {frames: 10000}}}\nlisteners:\n" + listener("main", "replay: {frames: 10000}");
  };
  RunningRelay relay = startRelay(config(400));
  Subscriber sub(relay.address());
  REQUIRE(readSequence(sub, 200) == 200);
  relay.reload(config(500));
  REQUIRE(relay.process->waitForLine("config reload: source upstream changed").size() > 0);
  auto resumed = feed.process->waitForLine("GET /sse\\?n=1000000&rate=2000 Last-Event-ID=(\\d+)");
  INFO(feed.process->output());
  REQUIRE(resumed.size() == 2);
  const long last = std::stol(resumed[1].str());
  CHECK(last >= 200);
  // Events 201... each once, in order, across the restart of the source.
  std::string frame;
  for (long next = 201; next <= last + 200; ++next) {
    REQUIRE(sub.next(frame, 20s));
    REQUIRE(frame == "feed " + std::to_string(next));
  }
}
