// SPDX-License-Identifier: Apache-2.0
// Integration tests of the `streamrelay` subscriber protocol with the real
// relay, streamrelay-feed and the clients (client.hpp, streamrelay-sub, the
// Python example): hello and answer, frame headers, resume from the replay
// ring, epochs as strings, heartbeats, and connections that end or are lost.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <regex>
#include <string>

#include "pki.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using streamrelay::client::Recovery;
using streamrelay::client::Refused;
using Protocol = streamrelay::client::Subscriber::Protocol;

namespace {

using Clock = std::chrono::steady_clock;

// Sends `hello` on a new plain connection to `port`; returns the JSON of the
// first frame the relay sends back (its answer).
std::string answerJson(int port, const std::string& hello) {
  const int fd = connectLoopback(port);
  REQUIRE(fd >= 0);
  ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
  std::string got;
  std::size_t want = 24;
  char chunk[4096];
  pollfd p{fd, POLLIN, 0};
  while (got.size() < want && ::poll(&p, 1, 10000) > 0) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    got.append(chunk, static_cast<std::size_t>(n));
    if (want == 24 && got.size() >= 24)
      for (int i = 0; i < 4; ++i) want += static_cast<std::size_t>(static_cast<unsigned char>(got[i])) << (24 - 8 * i);
  }
  ::close(fd);
  REQUIRE(got.size() >= want);
  return got.substr(24, want - 24);
}

// A TLS client of a listener that only reads: it tells how the relay ended
// the connection.
class TlsReader {
 public:
  explicit TlsReader(int port) : fd_(connectLoopback(port)), ctx_(SSL_CTX_new(TLS_client_method())) {
    REQUIRE(fd_ >= 0);
    SSL_CTX_load_verify_locations(ctx_, pki().path("ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    REQUIRE(SSL_connect(ssl_) == 1);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~TlsReader() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
  }
  TlsReader(const TlsReader&) = delete;
  TlsReader& operator=(const TlsReader&) = delete;

  // Reads until the connection ends; returns SSL_get_error() of the read
  // that saw the end (SSL_ERROR_ZERO_RETURN: a close_notify), or -1 if it
  // had not ended by the deadline.
  int readToEnd(std::chrono::milliseconds timeout = 15s) {
    const auto deadline = Clock::now() + timeout;
    char buffer[16384];
    for (;;) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buffer, sizeof buffer);
      if (n > 0) continue;
      const int error = SSL_get_error(ssl_, n);
      if (error != SSL_ERROR_WANT_READ) return error;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
    }
  }

 private:
  int fd_;
  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
};

// The Python example, its stdout joined to stderr (which the test reads).
std::unique_ptr<ChildProcess> pythonClient(const std::string& address, const std::string& args) {
  return std::make_unique<ChildProcess>(
      "/bin/sh", std::vector<std::string>{"-c", "exec /usr/bin/python3 " STREAMRELAY_SOURCE_DIR
                                                "/sdk/examples/python_client/streamrelay_client.py " +
                                                    address + " " + args + " 1>&2"});
}

}  // namespace

TEST_CASE("streamrelay protocol: the answer then every frame with its stream seq and receive time", "[integration][protocol]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, queue: {max_frames: 100000, max_bytes: 0}"));
  Subscriber sub(relay.address(), protocolClient());
  REQUIRE(sub.awaitAnswer(10s));  // subscribed: every frame from now on reaches it
  const auto before = std::chrono::system_clock::now();
  auto feed = publish(relay, 5000);
  std::string frame;
  FrameInfo info;
  REQUIRE(sub.next(frame, info, 20s));
  CHECK(sub.answers() == 1);
  CHECK(sub.answer().epoch != 0);
  REQUIRE(sub.answer().streams.count("upstream") == 1);
  CHECK(sub.answer().streams.at("upstream").firstSeq == 1);
  CHECK(info.stream == "upstream");
  CHECK(info.seq == 1);
  CHECK(frame.rfind("feed 1", 0) == 0);
  const auto received = std::chrono::system_clock::time_point(std::chrono::nanoseconds(info.receivedUnixNs));
  CHECK(received > before - 60s);
  CHECK(received < std::chrono::system_clock::now() + 1s);
  CHECK(readSeqs(sub, 2, 4999) == 5000);
  CHECK(relay.process->waitForLine("connected \\(1 of 64; streamrelay: upstream from seq 1\\)").size() > 0);
}

TEST_CASE("streamrelay protocol: a malformed or oversize or missing hello is closed with one line and counted", "[integration][protocol]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, hello_timeout_ms: 300"));
  const int port = relay.ports.at("main");
  auto answerTo = [&](const std::string& sent) {
    const int fd = connectLoopback(port);
    REQUIRE(fd >= 0);
    ::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL);
    std::string got;
    char chunk[4096];
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 10000) > 0) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      got.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got.size() > 24 ? got.substr(24) : got;  // the answer's JSON, after its header
  };
  CHECK(answerTo("") == "");  // no hello: closed at hello_timeout_ms, nothing said
  CHECK(relay.process->waitForLine("refused 127\\.0\\.0\\.1:\\d+: hello_timeout").size() > 0);
  CHECK_THAT(answerTo("{not json\n"), Catch::StartsWith(R"j({"ok":false,"error":"the hello is not JSON: )j"));
  CHECK(answerTo("{\"tokn\": 1}\n") == R"j({"ok":false,"error":"unknown hello field 'tokn' (token, inputs, select, snapshot, max_rate_per_key, resume)"})j");
  CHECK(answerTo("{\"max_rate_per_key\": 0}\n") ==
        R"j({"ok":false,"error":"max_rate_per_key: expected milliseconds, an integer from 1 to 60000"})j");
  CHECK(answerTo("{\"inputs\": [\"nope\"]}\n") ==
        R"j({"ok":false,"error":"unknown input 'nope' (this listener serves: upstream)"})j");
  CHECK(answerTo(std::string(20000, 'x')) == R"j({"ok":false,"error":"hello line longer than 16384 bytes"})j");
}

TEST_CASE("resume: a subscriber killed and restarted under 20k f/s continues with no gap and no duplicate", "[integration][protocol][resume]") {
  RunningRelay relay = startRelay(
      kListenUpstream + "streams: {upstream: {replay: {frames: 100000}}}\nlisteners:\n" +
      listener("main", "protocol: streamrelay, queue: {max_frames: 100000, max_bytes: 0}"));
  std::optional<streamrelay::client::ResumePoint> position;
  std::uint64_t last = 0;
  std::unique_ptr<ChildProcess> feed;
  {
    Subscriber first(relay.address(), protocolClient());
    REQUIRE(first.awaitAnswer(10s));  // subscribed before the first frame: it starts at seq 1
    feed = publish(relay, 60000, 20000);
    last = readSeqs(first, 1, 10000);
    REQUIRE(last == 10000);
    position = first.position();
  }  // killed: the connection drops with frames still on their way
  REQUIRE(position);
  CHECK(position->afterSeq.at("upstream") == 10000);
  // Restarted while the publisher goes on: it asks to continue after 10000.
  Subscriber::Options o = protocolClient();
  o.resume = position;
  Subscriber second(relay.address(), o);
  CHECK(readSeqs(second, 10001, 50000) == 60000);
  CHECK(second.answer().recovery == Recovery::Recovered);
  CHECK(second.answer().streams.at("upstream").firstSeq == 10001);
  CHECK(feed->waitForExit() == 0);
  CHECK(relay.process->waitForLine("streamrelay: upstream from seq 10001 \\(resumed\\)").size() > 0);
}

TEST_CASE("resume: past the ring the answer says recovered false and where the stream restarts", "[integration][protocol][resume]") {
  RunningRelay relay = startRelay(
      kListenUpstream + "streams: {upstream: {replay: {frames: 1000}}}\nlisteners:\n" +
      listener("main", "protocol: streamrelay, replay: {frames: 1000}") + listener("witness"),
      {"main", "witness"});
  Subscriber witness(relay.address("witness"));
  relay.waitForSubscribers(1, "witness");
  auto feed = publish(relay, 5000);
  CHECK(readSequence(witness, 5000) == 5000);  // the relay has published them all
  Subscriber::Options o = protocolClient();
  o.resume = streamrelay::client::ResumePoint{0, {{"upstream", 10}}, {}};
  SECTION("the same run, seq 11 long gone") {
    std::string frame;
    FrameInfo info;
    Subscriber sub(relay.address(), o);  // epoch 0 never matches: learn the real one first
    REQUIRE(sub.next(frame, info, 10s));
    o.resume->epoch = sub.answer().epoch;
    Subscriber late(relay.address(), o);
    REQUIRE(late.next(frame, info, 10s));
    CHECK(late.answer().recovery == Recovery::NotRecovered);
    CHECK(late.answer().streams.at("upstream").firstSeq == 4001);
    CHECK(info.seq == 4001);
    CHECK(late.answer().json.find("\"recovered\":false,\"first_seq\":4001") != std::string::npos);
  }
  SECTION("another run's epoch") {
    std::string frame;
    FrameInfo info;
    Subscriber sub(relay.address(), o);
    REQUIRE(sub.next(frame, info, 10s));
    CHECK(sub.answer().recovery == Recovery::NotRecovered);
    CHECK(info.seq == 4001);
  }
}

TEST_CASE("the Python client example speaks the protocol over TLS with a token", "[integration][protocol]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, auth: {tokens: [py-token]}, " + tlsKeys()));
  // Its frames go to stdout: joined with stderr, which the test reads.
  ChildProcess client("/bin/sh", {"-c", "exec /usr/bin/python3 " STREAMRELAY_SOURCE_DIR
                                        "/sdk/examples/python_client/streamrelay_client.py " +
                                            relay.address("main", "localhost") + " --token py-token --ca " +
                                            pki().path("ca.pem") + " --count 100 1>&2"});
  REQUIRE(client.waitForLine("connected: \\{\"ok\":true,\"epoch\":\"\\d+\"").size() > 0);
  auto feed = publish(relay, 100);
  checkPrintedFrames(client, 100);
}

TEST_CASE("streamrelay-sub speaks the protocol over TLS: the answer first then stream seq and lag per frame", "[integration][protocol]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, auth: {tokens: [sub-token]}, " + tlsKeys()));
  // Its frames go to stdout: joined with stderr, which the test reads.
  ChildProcess sub("/bin/sh", {"-c", "STREAMRELAY_TOKEN=sub-token exec " STREAMRELAY_SUB_BIN " " + relay.address() +
                                         " --protocol streamrelay --tls-ca " + pki().path("ca.pem") +
                                         " --count 50 1>&2"});
  // The answer is printed before any frame exists.
  REQUIRE(sub.waitForLine("streamrelay-sub: connected: \\{\"ok\":true,\"epoch\":\"\\d+\",\"first_seq\":1,\"heartbeat_ms\":5000,").size() > 0);
  auto feed = publish(relay, 50);
  checkPrintedFrames(sub, 50);
}

TEST_CASE("streamrelay protocol: the epoch is a decimal string, a resume with it recovers, a fresh hello hears nothing of recovery", "[integration][protocol][resume]") {
  RunningRelay relay = startRelay(kListenUpstream + "streams: {upstream: {replay: {frames: 1000}}}\nlisteners:\n" +
                                  listener("main", "protocol: streamrelay"));
  Subscriber first(relay.address(), protocolClient());
  REQUIRE(first.awaitAnswer(10s));  // subscribed: every frame published from now on reaches it
  auto feed = publish(relay, 100);
  REQUIRE(readSeqs(first, 1, 100) == 100);
  const std::string fresh = first.answer().json;
  std::smatch epoch;
  REQUIRE(std::regex_search(fresh, epoch, std::regex("^\\{\"ok\":true,\"epoch\":\"(\\d+)\",")));
  CHECK(fresh.find("recovered") == std::string::npos);
  CHECK(first.answer().recovery == Recovery::NotAsked);
  CHECK(std::to_string(first.answer().epoch) == epoch[1].str());
  // As a JavaScript client would: the epoch string as it came, seq 60 done.
  CHECK(answerJson(relay.ports.at("main"), "{\"resume\": {\"epoch\": \"" + epoch[1].str() + "\", \"after_seq\": 60}}\n") ==
        "{\"ok\":true,\"epoch\":\"" + epoch[1].str() +
            "\",\"recovered\":true,\"first_seq\":61,\"heartbeat_ms\":5000,\"streams\":{\"upstream\":{\"id\":0,"
            "\"epoch\":\"" + epoch[1].str() + "\",\"first_seq\":61,\"recovered\":true}}}");
  // The same position with the stream's own epoch (a fleet's form), and in another epoch.
  CHECK(answerJson(relay.ports.at("main"), "{\"resume\": {\"after_seq\": {\"upstream\": {\"epoch\": \"" +
                                               epoch[1].str() + "\", \"seq\": 70}}}}\n")
            .find("\"recovered\":true,\"first_seq\":71,") != std::string::npos);
  CHECK(answerJson(relay.ports.at("main"), "{\"resume\": {\"after_seq\": {\"upstream\": {\"epoch\": 1, \"seq\": 70}}}}\n")
            .find("\"recovered\":false,") != std::string::npos);
}

TEST_CASE("heartbeats: a quiet subscriber gets one every heartbeat_ms, between frames, and a silent relay is taken for gone", "[integration][protocol][heartbeat]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, heartbeat_ms: 500"));
  Subscriber sub(relay.address(), protocolClient());
  REQUIRE(sub.awaitAnswer(10s));
  CHECK(sub.answer().heartbeatMs == 500);
  std::string frame;
  FrameInfo info;
  // No frame at all: heartbeats only, on the one connection.
  const auto deadline = Clock::now() + 20s;
  while (sub.heartbeats() < 3 && Clock::now() < deadline) CHECK_FALSE(sub.next(frame, info, 100ms));
  CHECK(sub.heartbeats() >= 3);
  CHECK(sub.answers() == 1);
  // Frames slower than the heartbeats: heartbeats go between them, never inside one.
  const std::uint64_t before = sub.heartbeats();
  auto feed = publish(relay, 5, 1);
  CHECK(readSeqs(sub, 1, 5) == 5);
  CHECK(sub.heartbeats() > before);
  CHECK(sub.answers() == 1);
  // A relay that sends nothing any more (stopped here; a host gone, a cable
  // cut): the client gives up after three heartbeats' worth of silence,
  // however long its caller was ready to wait.
  relay.process->signal(SIGSTOP);
  const auto stopped = Clock::now();
  CHECK_FALSE(sub.next(frame, info, 60s));
  CHECK_FALSE(sub.timedOut());
  CHECK_FALSE(sub.connected());
  CHECK(sub.endReason() == "connection lost: nothing from the relay for 1500 ms");
  CHECK(Clock::now() - stopped < 30s);
  relay.process->signal(SIGCONT);
}

TEST_CASE("the Python client example: a refusal ends it, heartbeats are skipped, --resume continues", "[integration][protocol]") {
  RunningRelay relay = startRelay(kListenUpstream + "streams: {upstream: {replay: {frames: 1000}}}\nlisteners:\n" +
                                  listener("main", "protocol: streamrelay, heartbeat_ms: 500, auth: {tokens: [py-token]}"));
  {
    auto refused = pythonClient(relay.address(), "--token wrong-token");
    CHECK(refused->waitForExit(20s) == 1);
    CHECK(refused->countLines("^streamrelay_client\\.py: the relay refused the hello: not authorized: unknown token$") == 1);
  }
  Subscriber witness(relay.address(), protocolClient("py-token"));
  REQUIRE(witness.awaitAnswer(10s));
  auto client = pythonClient(relay.address(), "--token py-token --count 6");
  REQUIRE(client->waitForLine("^connected: ").size() > 0);
  auto feed = publish(relay, 6, 1);  // slower than the heartbeats
  checkPrintedFrames(*client, 6);
  CHECK(client->countLines("connection lost") == 0);
  CHECK(readSeqs(witness, 1, 6) == 6);

  auto resumed = pythonClient(relay.address(), "--token py-token --count 3 --resume " +
                                                   std::to_string(witness.answer().epoch) + ":3");
  CHECK(resumed->waitForExit(30s) == 0);
  INFO(resumed->output());
  CHECK(resumed->countLines("\"recovered\":true,\"first_seq\":4,") == 1);
  CHECK(resumed->countLines("^upstream seq=[456] lag_ms=[0-9.]+ feed [456]") == 3);
}

TEST_CASE("tls: the relay ends a TLS subscriber's connection with close_notify at shutdown and when its listener goes", "[integration][subscriber-tls]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", tlsKeys()) + listener("other"),
                                  {"main", "other"});
  TlsReader reader(relay.ports.at("main"));
  REQUIRE(relay.process->waitForLine("subscriber .* connected \\(1 of 64; TLSv1").size() > 0);
  SECTION("shutdown") {
    relay.process->terminate();
    CHECK(reader.readToEnd() == SSL_ERROR_ZERO_RETURN);
    CHECK(relay.process->waitForExit() == 0);
  }
  SECTION("its listener removed by a reload") {
    relay.reload(kListenUpstream + "listeners:\n" + listener("other"));
    CHECK(reader.readToEnd() == SSL_ERROR_ZERO_RETURN);
  }
}

TEST_CASE("streamrelay-sub --reconnect over TLS goes on across a relay restarted on the same port", "[integration][protocol][subscriber-tls]") {
  auto yaml = [](const std::string& bind) {
    return kListenUpstream + "listeners:\n  - {name: main, bind: '" + bind + "', protocol: streamrelay, " + tlsKeys() +
           "}\n";
  };
  RunningRelay first = startRelay(yaml("127.0.0.1:0"));
  const std::string address = first.address();
  ChildProcess sub("/bin/sh", {"-c", "exec " STREAMRELAY_SUB_BIN " " + address +
                                         " --protocol streamrelay --reconnect --tls-ca " + pki().path("ca.pem") +
                                         " 1>&2"});
  REQUIRE(sub.waitForLine("^streamrelay-sub: connected: ").size() > 0);
  auto feed = publish(first, 5);
  REQUIRE(sub.waitForLine("^upstream seq=5 lag_ms=").size() > 0);
  SECTION("killed: the connection is cut without close_notify") { first.process->kill(); }
  SECTION("stopped") { first.process->terminate(); }
  REQUIRE(first.process->waitForExit() != -1000);

  RunningRelay second = startRelay(yaml(address));
  CHECK(sub.waitForLines("^streamrelay-sub: connected: ", 2, 30s));
  auto more = publish(second, 5);
  CHECK(sub.waitForLines("^upstream seq=\\d+ lag_ms=[0-9.]+ feed \\d+", 10, 30s));
  INFO(sub.output());
  CHECK(sub.countLines("^streamrelay-sub: (the relay closed the connection|connection lost: .*); connected again$") == 1);
  CHECK(sub.waitForExit(0ms) == -1000);  // still running
}
