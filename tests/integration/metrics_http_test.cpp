// SPDX-License-Identifier: Apache-2.0
// The metrics plugin's HTTP side against a running relay: clients that stall
// cannot keep a scrape waiting, and the status page has its figures and
// recent history in its first answer.

#include <catch2/catch.hpp>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "relay_fixture.hpp"

using namespace streamrelay::test;
using Poco::JSON::Object;

namespace {

struct HttpReply {
  int status;
  std::string body;
  std::string contentType;
};

HttpReply httpGet(int port, const std::string& path) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path, Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpReply reply{static_cast<int>(response.getStatus()), "", response.getContentType()};
  Poco::StreamCopier::copyToString(in, reply.body);
  return reply;
}

Object::Ptr parseObject(const std::string& json) {
  Poco::JSON::Parser parser;
  return parser.parse(json).extract<Object::Ptr>();
}

// Starts a relay with the metrics plugin configured with `config`; returns its HTTP port.
int startMetrics(RunningRelay& relay, PluginDir& dir, const std::string& source, const std::string& config) {
  dir.drop(builtIn("metrics"), "metrics.so");
  relay = startRelay(source + pluginsSection(dir, "  instances:\n    - {name: metrics, type: metrics, config: {bind: "
                                                  "'127.0.0.1:0'" + config + "}}\n"),
                     {});
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(m.size() == 2);
  return std::stoi(m[1]);
}

// True once the peer closed `fd` (EOF or reset) within `timeout`.
bool closedByPeer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, 0);
    if (n <= 0) return true;  // 0: EOF; < 0: reset
  }
}

long long counterOf(const Object::Ptr& stats, const std::string& plugin, const std::string& counter) {
  auto plugins = stats->getArray("plugins");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    Object::Ptr p = plugins->getObject(static_cast<unsigned>(i));
    if (p->getValue<std::string>("name") != plugin) continue;
    Object::Ptr counters = p->getObject("counters");
    return counters->has(counter) ? counters->getValue<long long>(counter) : 0;
  }
  return -1;
}

}  // namespace

// Slowloris: each client sends half a request line and stalls. Once the
// metrics plugin had a thread per connection (4), four of them stopped every
// scrape for a minute.
TEST_CASE("metrics: clients stalled mid-request cannot hold up a scrape, and are closed after request_timeout_ms",
          "[builtin][metrics]") {
  PluginDir dir;
  RunningRelay relay;
  const int port = startMetrics(relay, dir, "upstream: {type: generator, rate: 100}\n",
                                ", request_timeout_ms: 2000, max_connections: 8");
  const int stalledCount = 12;  // more than the plugin ever had threads, and more than max_connections
  std::vector<int> stalled;
  for (int i = 0; i < stalledCount; ++i) {
    const int fd = connectLoopback(port);
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, "GET /met", 8, MSG_NOSIGNAL) == 8);
    stalled.push_back(fd);
  }
  const HttpReply scrape = httpGet(port, "/metrics");
  CHECK(scrape.status == 200);
  CHECK(scrape.body.find("streamrelay_frames_received_total") != std::string::npos);
  // Answered before any stalled one timed out: the page it got counts no
  // timeout yet (a clock in the test would measure this machine instead).
  std::smatch timeouts;
  const bool counted = std::regex_search(scrape.body, timeouts, std::regex("event=\"http_timeouts\"\\} (\\d+)\n"));
  CHECK((!counted || timeouts[1] == "0"));
  for (int fd : stalled) {
    CHECK(closedByPeer(fd, 10s));
    ::close(fd);
  }
  // Each stalled client was closed once: for the room a newer connection
  // needed, or at its deadline.
  const Object::Ptr stats = parseObject(httpGet(port, "/stats").body);
  CHECK(counterOf(stats, "metrics", "http_evicted") + counterOf(stats, "metrics", "http_timeouts") == stalledCount);
  CHECK(counterOf(stats, "metrics", "http_timeouts") > 0);
}

TEST_CASE("metrics: the status page's first answer holds the figures, and /history samples from before it",
          "[builtin][metrics]") {
  PluginDir dir;
  RunningRelay relay;
  const int port = startMetrics(relay, dir, "upstream: {type: generator, rate: 1000, count: 300}\n", "");
  // The plugin samples the totals every second from its start.
  REQUIRE(pollUntil([&] {
    auto samples = parseObject(httpGet(port, "/history").body)->getArray("samples");
    return samples->size() >= 2 && samples->getArray(static_cast<unsigned>(samples->size() - 1))->getElement<long long>(1) == 300;
  }));
  const long long requestedMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const HttpReply page = httpGet(port, "/");
  REQUIRE(page.status == 200);
  // The figures are in the page itself, for the first paint, not fetched after it.
  const std::string mark = "const initial = ";
  const std::size_t start = page.body.find(mark);
  REQUIRE(start != std::string::npos);
  const std::size_t end = page.body.find(";\n", start);
  const Object::Ptr initial = parseObject(page.body.substr(start + mark.size(), end - start - mark.size()));
  auto streams = initial->getObject("stats")->getArray("streams");
  Object::Ptr upstream;
  for (std::size_t i = 0; i < streams->size(); ++i)
    if (streams->getObject(static_cast<unsigned>(i))->getValue<std::string>("name") == "upstream")
      upstream = streams->getObject(static_cast<unsigned>(i));
  REQUIRE(upstream);
  CHECK(upstream->getValue<long long>("frames") == 300);
  CHECK(initial->getObject("stats")->getValue<long long>("frames_received") == 300);
  auto embedded = initial->getObject("history")->getArray("samples");
  REQUIRE(embedded->size() >= 2);
  CHECK(embedded->getArray(0)->getElement<long long>(0) < requestedMs);  // the charts start in the past

  const Object::Ptr history = parseObject(httpGet(port, "/history").body);
  CHECK(history->getValue<int>("interval_ms") == 1000);
  auto samples = history->getArray("samples");
  REQUIRE(samples->size() >= 2);
  CHECK(samples->getArray(0)->getElement<long long>(0) < requestedMs);
  for (std::size_t i = 1; i < samples->size(); ++i) {
    auto before = samples->getArray(static_cast<unsigned>(i - 1)), after = samples->getArray(static_cast<unsigned>(i));
    CHECK(after->getElement<long long>(0) > before->getElement<long long>(0));
    CHECK(after->getElement<long long>(1) >= before->getElement<long long>(1));
  }
  // Where a browser is at hand (Debian's chromium; not installed in CI): the
  // DOM right after loading has the tables filled, with no request of its own yet.
  if (std::system("command -v chromium >/dev/null 2>&1") == 0) {
    FILE* browser = ::popen(("chromium --headless --no-sandbox --disable-gpu --dump-dom http://127.0.0.1:" +
                             std::to_string(port) + "/ 2>/dev/null").c_str(), "r");
    REQUIRE(browser != nullptr);
    std::string dom;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, browser)) > 0;) dom.append(buffer, n);
    ::pclose(browser);
    INFO(dom);
    CHECK(dom.find("<td>upstream</td><td>300</td>") != std::string::npos);  // the streams table's row
  }
  // ?after=T: only what is newer, for the page's polling.
  const long long last = samples->getArray(static_cast<unsigned>(samples->size() - 1))->getElement<long long>(0);
  auto newer = parseObject(httpGet(port, "/history?after=" + std::to_string(last)).body)->getArray("samples");
  for (std::size_t i = 0; i < newer->size(); ++i)
    CHECK(newer->getArray(static_cast<unsigned>(i))->getElement<long long>(0) > last);
}

TEST_CASE("metrics: pages serves the files of its directory by plain name and nothing else", "[builtin][metrics]") {
  PluginDir dir;
  PluginDir pages;  // a fresh directory
  pages.write("index.html", "<!DOCTYPE html><p>hello</p>");
  pages.write("app.js", "console.log(1);");
  pages.write(".hidden", "secret");
  RunningRelay relay;
  const int port = startMetrics(relay, dir, "upstream: {type: generator, rate: 1}\n", ", pages: '" + pages.root() + "'");
  const HttpReply index = httpGet(port, "/pages/index.html");
  CHECK(index.status == 200);
  CHECK(index.contentType == "text/html; charset=utf-8");
  CHECK(index.body == "<!DOCTYPE html><p>hello</p>");
  const HttpReply script = httpGet(port, "/pages/app.js?v=2");
  CHECK(script.status == 200);
  CHECK(script.contentType == "text/javascript; charset=utf-8");
  // Edited: the next request gets the new file.
  pages.write("index.html", "<p>edited</p>");
  CHECK(httpGet(port, "/pages/index.html").body == "<p>edited</p>");
  for (const std::string& path : std::vector<std::string>{"/pages/.hidden", "/pages/missing.html", "/pages/", "/pages/../metrics.so",
                                 "/pages/%2e%2e%2fmetrics.so", "/pages/" + dir.root().substr(1) + "/metrics.so"}) {
    INFO(path);
    CHECK(httpGet(port, path).status == 404);
  }
  CHECK(httpGet(port, "/stats").status == 200);  // the figures as before
}
