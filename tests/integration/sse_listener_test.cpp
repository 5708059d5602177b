// SPDX-License-Identifier: Apache-2.0
// Integration tests of the `sse` listener protocol (Server-Sent Events) with
// the real relay and streamrelay-feed, read byte by byte by the test's own
// HTTP client (web_client.hpp): the response head, CORS, the answer event,
// one event per frame with its id, heartbeats, Last-Event-ID resumes, and
// refusals as HTTP statuses, counted in /stats. A browser's EventSource
// reconnecting by itself: browser_example_test.cpp.

#include <catch2/catch.hpp>

#include <regex>
#include <string>

#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"
#include "web_client.hpp"

using namespace streamrelay::test;

namespace {

std::string get(const std::string& target, const std::string& headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" + headers + "\r\n";
}

std::string epochOf(const std::string& text) {
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex("\"epoch\":\"(\\d+)\"")));
  return m[1];
}

// The seqs of the events in `text` ("id: EPOCH-SEQ" lines), in order.
std::vector<std::uint64_t> seqsOf(const std::string& text) {
  std::vector<std::uint64_t> seqs;
  const std::regex id("id: \\d+-(\\d+)\n");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), id); it != std::sregex_iterator(); ++it)
    seqs.push_back(std::stoull((*it)[1]));
  return seqs;
}

}  // namespace

TEST_CASE("sse listener: an event stream with the answer, one event per frame with its id, and heartbeats", "[integration][sse]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: sse, path: /events, heartbeat_ms: 200, retry_ms: 1500, "
                                                   "allow_origins: ['http://page.example']"));
  WebClient client(relay.ports.at("main"));
  client.send(get("/events?inputs=upstream", "Origin: http://page.example\r\n"));
  const std::string head = client.readHead();
  CHECK(WebClient::statusOf(head) == 200);
  CHECK(head.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(head.find("Cache-Control: no-cache") != std::string::npos);
  CHECK(head.find("Access-Control-Allow-Origin: http://page.example\r\n") != std::string::npos);
  const std::string answer = client.readUntil("\n\n");
  CHECK(answer.rfind("retry: 1500\nevent: streamrelay-answer\ndata: {\"ok\":true,", 0) == 0);
  CHECK(answer.find("\"encoding\":\"text\"") != std::string::npos);
  const std::string epoch = epochOf(answer);
  CHECK(client.readUntil(": heartbeat\n").find(": heartbeat\n") != std::string::npos);  // nothing to send yet
  auto feed = publish(relay, 5, 0, 16);
  const std::string padding(10, '.');  // "feed N" padded to 16 bytes
  const std::string events = client.readUntil("id: " + epoch + "-5\ndata: feed 5" + padding + "\n\n");
  CHECK(events.find("id: " + epoch + "-1\ndata: feed 1" + padding + "\n\n") != std::string::npos);
  CHECK(seqsOf(events) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(events.find("event:") == std::string::npos);  // one input: no event type
}

TEST_CASE("sse listener: Last-Event-ID resumes after the event it names, with no gap and no duplicate", "[integration][sse][resume]") {
  RunningRelay relay = startRelay(kListenUpstream + "streams: {upstream: {replay: {frames: 1000}}}\nlisteners:\n" +
                                  listener("main", "protocol: sse"));
  const int port = relay.ports.at("main");
  std::string epoch;
  {
    WebClient first(port);
    first.send(get("/"));
    REQUIRE(WebClient::statusOf(first.readHead()) == 200);
    epoch = epochOf(first.readUntil("\n\n"));
    auto feed = publish(relay, 100);
    CHECK(feed->waitForExit() == 0);
    REQUIRE(seqsOf(first.readUntil("id: " + epoch + "-100\n")).size() == 100);
  }
  // As EventSource reconnects: the same URL (whose own resume is older) and
  // the last id it saw, which wins.
  WebClient again(port);
  again.send(get("/?resume=" + epoch + "-10", "Last-Event-ID: " + epoch + "-60\r\n"));
  REQUIRE(WebClient::statusOf(again.readHead()) == 200);
  const std::string events = again.readUntil("id: " + epoch + "-100\n");
  CHECK(events.find("\"recovered\":true,\"first_seq\":61") != std::string::npos);
  std::vector<std::uint64_t> expected;
  for (std::uint64_t seq = 61; seq <= 100; ++seq) expected.push_back(seq);
  CHECK(seqsOf(events) == expected);
  // Another run's id: where the stream restarts, and that it was not recovered.
  WebClient stale(port);
  stale.send(get("/", "Last-Event-ID: 1-60\r\n"));
  REQUIRE(WebClient::statusOf(stale.readHead()) == 200);
  CHECK(stale.readUntil("\n\n").find("\"recovered\":false") != std::string::npos);
}

TEST_CASE("sse listener: with several inputs each event names its stream, in its id and its type", "[integration][sse]") {
  RunningRelay relay = startRelay(
      "sources:\n  a: {type: listen, bind: '127.0.0.1:0'}\n  b: {type: generator, rate: 1000, size: 12}\nlisteners:\n" +
      listener("main", "protocol: sse, inputs: [a, b], encoding: base64"));
  WebClient client(relay.ports.at("main"));
  client.send(get("/?inputs=b"));
  REQUIRE(WebClient::statusOf(client.readHead()) == 200);
  const std::string events = client.readUntil("\n\nid: ");
  CHECK(events.find("\"encoding\":\"base64\"") != std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(events, m, std::regex("id: \\d+-b-\\d+\nevent: b\ndata: ([A-Za-z0-9+/=]+)\n\n")));
  CHECK(m[1].str().size() == 16);  // 12 bytes
}

TEST_CASE("sse listener: a control byte in a header value is a 400, never copied into the answer, and the Bearer scheme in any case", "[integration][sse]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: sse, allow_origins: ['*'], auth: {tokens: [sse-token]}") +
                                  stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  for (const std::string& origin : {std::string("https://page\rX-Injected: yes"), std::string("https://page\x01x", 15),
                                    std::string("https://page\0x", 14)}) {
    WebClient client(port);
    client.send(get("/?token=sse-token", "Origin: " + origin + "\r\n"));
    const std::string head = client.readHead();
    INFO(head);
    CHECK(WebClient::statusOf(head) == 400);
    CHECK(head.find("X-Injected") == std::string::npos);
    CHECK(head.find("Access-Control-Allow-Origin") == std::string::npos);
  }
  CHECK(pollUntil([&] { return stats.listener("main", "disconnects.bad_request") == 3; }));
  WebClient lower(port);
  lower.send(get("/", "Authorization: bearer sse-token\r\n"));
  CHECK(WebClient::statusOf(lower.readHead()) == 200);
}

TEST_CASE("sse listener: refusals are HTTP statuses that say why, counted", "[integration][sse]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                      listener("main", "protocol: sse, auth: {tokens: [sse-token]}, "
                                                       "allow_origins: ['https://app.example']") +
                                      listener("one", "protocol: sse, max_clients: 1") + stats.section(),
                                  {"main", "one"});
  stats.attach(relay);
  auto statusOf = [&](int port, const std::string& request, std::string* head = nullptr) {
    WebClient client(port);
    client.send(request);
    const std::string got = client.readHead();
    if (head) *head = got;
    return WebClient::statusOf(got);
  };
  const int port = relay.ports.at("main");
  std::string head;
  CHECK(statusOf(port, get("/?token=nope", "Origin: https://app.example\r\n"), &head) == 401);
  CHECK(head.find("Access-Control-Allow-Origin: https://app.example\r\n") != std::string::npos);  // the page can tell
  CHECK(statusOf(port, get("/", "Authorization: Bearer nope\r\n")) == 401);
  CHECK(statusOf(port, get("/?token=sse-token", "Last-Event-ID: yesterday\r\n")) == 400);
  CHECK(statusOf(port, get("/elsewhere?token=sse-token")) == 404);
  CHECK(statusOf(port, "POST /?token=sse-token HTTP/1.1\r\n\r\n") == 405);
  CHECK(statusOf(port, get("/?token=sse-token", "Origin: https://evil.example\r\n")) == 403);
  WebClient admitted(port);
  admitted.send(get("/", "Authorization: Bearer sse-token\r\nOrigin: https://app.example\r\n"));
  CHECK(WebClient::statusOf(admitted.readHead()) == 200);
  // Each refused client is counted once its session is closed.
  CHECK(pollUntil([&] {
    return stats.listener("main", "disconnects.auth_failed") == 2 && stats.listener("main", "disconnects.bad_hello") == 1 &&
           stats.listener("main", "disconnects.bad_request") == 2 &&
           stats.listener("main", "disconnects.origin_refused") == 1;
  }));
  CHECK(stats.listener("main", "clients") == 1);
  // /stats shows each subscriber's listener and protocol.
  Poco::JSON::Array::Ptr consumers = stats.get()->getArray("consumers");
  REQUIRE(consumers->size() == 1);
  Poco::JSON::Object::Ptr subscriber = consumers->getObject(0);
  CHECK(subscriber->getValue<std::string>("kind") == "subscriber");
  CHECK(subscriber->getValue<std::string>("protocol") == "sse");
  CHECK(subscriber->getValue<std::string>("listener") == "main");
  CHECK(stats.get()->getArray("listeners")->getObject(0)->getValue<std::string>("protocol") == "sse");
  // Beyond max_clients a client is closed at once, as on every listener
  // (EventSource then tries again after its retry time).
  WebClient first(relay.ports.at("one"));
  first.send(get("/"));
  REQUIRE(WebClient::statusOf(first.readHead()) == 200);
  WebClient second(relay.ports.at("one"));
  second.send(get("/"));
  CHECK(second.readHead().empty());
  CHECK(second.waitForEnd());
  CHECK(stats.listener("one", "refused_max_clients") == 1);
}
