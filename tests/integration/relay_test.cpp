// SPDX-License-Identifier: Apache-2.0
// Integration tests: the real streamrelay and streamrelay-feed binaries, real
// sockets on ephemeral loopback ports, subscribers built on the SDK's client.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <exception>
#include <thread>
#include <map>
#include <memory>
#include <string>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

// The test plays the provider: a listening socket on an ephemeral port.
struct FakeProvider {
  int server = -1;
  int port = 0;
  FakeProvider() {
    server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(::bind(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(server, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(server, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~FakeProvider() { ::close(server); }
  // Accepts the relay's next connection (bounded wait).
  int accept(std::chrono::seconds timeout = 10s) {
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return ::accept(server, nullptr, nullptr);
  }
};

std::string receiveExactly(int fd, std::size_t size) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out(size, '\0');
  std::size_t have = 0;
  while (have < size) {
    ssize_t n = ::recv(fd, &out[have], size - have, 0);
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
  }
  out.resize(have);
  return out;
}

// A raw client socket with a small receive buffer that never reads.
int stalledClient(int port) {
  int fd = connectLoopback(port, 4096);
  REQUIRE(fd >= 0);
  return fd;
}

// True if the peer closed `fd` within the timeout (recv returns 0 or an error).
bool closedByPeer(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

}  // namespace

TEST_CASE("every frame reaches several subscribers whole and in order", "[integration]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "queue: {max_frames: 100000, max_bytes: 0}"));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(std::make_unique<Subscriber>(relay.address()));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 3));
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "200", "--count", "20000"});
  for (auto& sub : subs) CHECK(readSequence(*sub, 20000) == 20000);
  CHECK(feed->waitForExit() == 0);
}

// Defect: one upstream read of more than max_frames (600) frames cut every
// subscriber off with the default queue, however fast it read.
TEST_CASE("subscribers that keep up get every frame of reads larger than max_frames (default queue)", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" + listener("main"));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 4; ++i) subs.push_back(std::make_unique<Subscriber>(relay.address()));
  REQUIRE(relay.process->waitForLines("subscriber .* connected", 4));
  const long burst = 3000;  // one write, read by the relay in a few reads of far more than 600 frames
  long next = 1;
  for (int round = 0; round < 5; ++round) {
    std::string lines;
    for (long n = next; n < next + burst; ++n) lines += "feed " + std::to_string(n) + "\n";
    relay.process->writeStdin(lines);
    for (auto& sub : subs) {  // every subscriber reads the whole burst before the next one
      std::string frame;
      long n = next;
      while (n < next + burst && sub->next(frame, 10s) && frame == "feed " + std::to_string(n)) ++n;
      REQUIRE(n == next + burst);
    }
    next += burst;
  }
  CHECK(relay.process->countLines("slow_consumer") == 0);
}

TEST_CASE("the seed client protocol works: a subscriber may shut its write side at once", "[integration]") {
  // Subscriber (like the seed's StreamClient) calls shutdown(SHUT_WR) right after connecting.
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 200, size: 40}\nlisteners:\n" + listener("main"));
  Subscriber sub(relay.address());
  std::string frame;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(sub.next(frame, 5s));
    CHECK(frame.rfind("frame ", 0) == 0);
    CHECK(frame.size() == 40);
  }
}

// The reader has a listener of its own whose queue blocks the upstream when
// full: however long a loaded machine keeps it from reading, it is never cut
// off (a `disconnect` queue of 4 MB is 200 ms of this feed: a reader stalled
// that long is rightly cut). So "the others get every frame" holds by
// construction, and what is checked is that the subscriber that never reads
// is cut off at its own queue's limit, disturbs no one else's stream, and
// that memory stays bounded.
TEST_CASE("a subscriber that never reads is cut off while the others get every frame", "[integration]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                      listener("main", "queue: {max_frames: 5000, max_bytes: 4000000, on_full: disconnect}") +
                                      listener("reading", "queue: {max_frames: 5000, max_bytes: 4000000, on_full: block}"),
                                  {"main", "reading"});
  int stalled = stalledClient(relay.ports["main"]);
  Subscriber fast(relay.address("reading"));
  relay.waitForSubscribers(2);
  const long frames = 50000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate",
                         "20000", "--size", "1000", "--count", std::to_string(frames)});
  CHECK(relay.process->waitForLine("listener main: subscriber .* disconnected: slow_consumer \\(queue full").size() > 0);
  CHECK(readSequence(fast, frames, 60s) == frames);
  CHECK(closedByPeer(stalled, 5s));
  ::close(stalled);
  long peakKiB = residentKiB(relay.process->pid());
  INFO("relay peak RSS " << peakKiB << " KiB after " << frames << " frames of 1000 B");
#ifndef STREAMRELAY_SANITIZE
  CHECK(peakKiB < 40 * 1024);  // 50 MB went through; the slow queue was capped at 4 MB
#endif
}

// Defect: a subscriber that never reads held its max_clients slot until its
// (large) queue filled, minutes on a slow stream.
TEST_CASE("write_deadline_ms: a socket that accepts no byte for that long is closed as slow_consumer", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 500, size: 1000}\nlisteners:\n" +
                                  listener("main", "write_deadline_ms: 300, send_buffer_bytes: 4096, "
                                                   "queue: {max_frames: 0, max_bytes: 67108864}"));
  int stalled = stalledClient(relay.ports["main"]);
  Subscriber reading(relay.address());
  relay.waitForSubscribers(2);
  // It reads all along, so its socket keeps accepting bytes: however late
  // the stalled one is cut, this one never is.
  std::atomic<bool> done{false};
  std::atomic<long> read{0};
  std::thread reader([&] {
    std::string frame;
    while (!done && reading.next(frame, 10s)) ++read;
  });
  CHECK(relay.process->waitForLine("disconnected: slow_consumer \\(no byte accepted for write_deadline_ms 300\\)").size() > 0);
  CHECK(closedByPeer(stalled, 5s));
  ::close(stalled);
  const long before = read;
  CHECK(pollUntil([&] { return read >= before + 20; }));  // a reading subscriber is never cut
  done = true;
  reader.join();
  CHECK(relay.process->countLines("slow_consumer") == 1);
}

TEST_CASE("max_clients: the one over the limit is accepted and closed at once", "[integration]") {
  RelayStats stats;
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100}\n" + stats.section() + "listeners:\n" +
                                  listener("main", "max_clients: 2"));
  stats.attach(relay);
  Subscriber a(relay.address()), b(relay.address());
  relay.waitForSubscribers(2);
  int third = stalledClient(relay.ports["main"]);
  CHECK(closedByPeer(third, 5s));
  ::close(third);
  CHECK(relay.process->waitForLine("refused .*: max_clients 2 reached").size() > 0);
  std::string frame;
  CHECK(a.next(frame, 5s));
  CHECK(b.next(frame, 5s));
  SECTION("a slot frees when a subscriber leaves") {
    a.close();
    // The slot, not the line saying it left (logged before the slot is given back).
    REQUIRE(pollUntil([&] { return stats.listener("main", "clients") == 1; }));
    Subscriber c(relay.address());
    CHECK(c.next(frame, 5s));
  }
}

// Defect: TCP connects that never start TLS or send a hello held every
// max_clients slot until their timeout, locking real subscribers out.
// Clients in their set-up have a limit of their own (max_pending_clients);
// max_clients counts admitted subscribers only.
TEST_CASE("silent connections beyond max_clients do not lock out a streamrelay subscriber, and those beyond "
          "max_pending_clients are refused at once and counted",
          "[integration][admission]") {
  RelayStats stats;
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 200, size: 32}\n" + stats.section() +
                                  "listeners:\n" +
                                  listener("main", "protocol: streamrelay, max_clients: 4, hello_timeout_ms: 60000"));
  stats.attach(relay);
  const int port = relay.ports.at("main");
  auto seen = [&] {  // connections the listener has taken or refused
    return stats.listener("main", "accepted") + stats.listener("main", "refused_max_clients") +
           std::max(0L, stats.listener("main", "refused_max_pending_clients"));
  };
  std::vector<int> silent;
  auto connectSilent = [&](int count) {
    for (int i = 0; i < count; ++i) {
      silent.push_back(connectLoopback(port));
      REQUIRE(silent.back() >= 0);
    }
  };
  connectSilent(6);
  REQUIRE(pollUntil([&] { return seen() == 6; }));

  Subscriber::Options hello;
  hello.protocol = Subscriber::Protocol::Streamrelay;
  Subscriber sub(relay.address(), hello);
  std::string frame;
  for (int i = 0; i < 5; ++i) REQUIRE(sub.next(frame, 10s));
  CHECK(stats.listener("main", "clients") == 1);
  CHECK(stats.listener("main", "pending") == 6);

  // 30 more: 26 fill the 32 pending slots (the default), 4 are refused at once.
  connectSilent(30);
  CHECK(pollUntil([&] { return seen() == 37; }));
  CHECK(stats.listener("main", "refused_max_pending_clients") == 4);
  CHECK(stats.listener("main", "pending") == 32);
  CHECK(stats.listener("main", "refused_max_clients") == 0);
  const std::string metrics = stats.text("/metrics");
  CHECK_THAT(metrics, Catch::Contains("streamrelay_listener_refused_total{listener=\"main\",reason=\"max_pending_clients\"} 4\n"));
  CHECK_THAT(metrics, Catch::Contains("streamrelay_listener_pending_clients{listener=\"main\"} 32\n"));
  for (int i = 0; i < 5; ++i) CHECK(sub.next(frame, 10s));  // the admitted subscriber streams on
  for (int fd : silent) ::close(fd);
}

TEST_CASE("the allow list closes other addresses at accept", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100}\nlisteners:\n" +
                                      listener("closed", "allow: ['10.0.0.0/8']") +
                                      listener("open", "allow: ['127.0.0.1/32']"),
                                  {"closed", "open"});
  int refused = stalledClient(relay.ports["closed"]);
  CHECK(closedByPeer(refused, 5s));
  ::close(refused);
  CHECK(relay.process->waitForLine("listener closed: refused 127.0.0.1:\\d+: not in the allow list").size() > 0);
  Subscriber ok(relay.address("open"));
  std::string frame;
  CHECK(ok.next(frame, 5s));
}

TEST_CASE("IPv6 on ::1 and a dual-stack listener", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100}\nlisteners:\n"
                                  "  - {name: v6, bind: '[::1]:0'}\n  - {name: dual, bind: '[::]:0', allow: ['127.0.0.0/8', '::1/128']}\n",
                                  {"v6", "dual"});
  std::string frame;
  Subscriber v6(relay.address("v6", "[::1]"));
  CHECK(v6.next(frame, 5s));
  Subscriber dualV4(relay.address("dual", "127.0.0.1"));
  CHECK(dualV4.next(frame, 5s));
  Subscriber dualV6(relay.address("dual", "[::1]"));
  CHECK(dualV6.next(frame, 5s));
}

// The test is the provider, on one listening socket for the whole test: its
// port is never free for another process to take between the two
// connections.
TEST_CASE("upstream killed and restarted: subscribers stay connected and resume", "[integration]") {
  FakeProvider provider;
  RunningRelay relay = startRelay("upstream: {type: tcp, host: 127.0.0.1, port: " + std::to_string(provider.port) +
                                  ", reconnect: {initial_delay_ms: 20, max_delay_ms: 200}}\nlisteners:\n" + listener("main"));
  Subscriber sub(relay.address());
  relay.waitForSubscribers(1);
  auto frames = [](const std::string& prefix) {
    std::string bytes;
    for (int n = 1; n <= 5; ++n) {
      const std::string payload = prefix + " " + std::to_string(n);
      bytes += std::string{'\0', '\0', '\0', static_cast<char>(payload.size())} + payload;
    }
    return bytes;
  };
  int first = provider.accept();
  REQUIRE(first >= 0);
  const std::string before = frames("first");
  REQUIRE(::send(first, before.data(), before.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(before.size()));
  std::string frame;
  for (int n = 1; n <= 5; ++n) {
    REQUIRE(sub.next(frame, 10s));
    CHECK(frame == "first " + std::to_string(n));
  }
  linger reset{1, 0};  // killed: the connection is reset, not closed in order
  ::setsockopt(first, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(first);
  REQUIRE(relay.process->waitForLine("reconnecting in").size() > 0);
  int second = provider.accept();  // the relay connects again
  REQUIRE(second >= 0);
  const std::string after = frames("second");
  REQUIRE(::send(second, after.data(), after.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(after.size()));
  // The same subscriber connection now sees the new connection's frames from its start.
  for (int n = 1; n <= 5; ++n) {
    REQUIRE(sub.next(frame, 10s));
    CHECK(frame == "second " + std::to_string(n));
  }
  ::close(second);
  CHECK(relay.process->countLines("subscriber .* disconnected") == 0);
}

TEST_CASE("an oversize length prefix means no big allocation and one log line and a reconnect", "[integration]") {
  FakeProvider provider;  // the test is the provider: it accepts the relay twice
  RunningRelay relay = startRelay("upstream: {type: tcp, host: 127.0.0.1, port: " + std::to_string(provider.port) +
                                  ", reconnect: {initial_delay_ms: 20, max_delay_ms: 100}}\nlisteners:\n" + listener("main"));
  Subscriber sub(relay.address());
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);

  int first = provider.accept();
  REQUIRE(first >= 0);
  std::string good = std::string("\0\0\0\2ok", 6);
  std::string bad = "\xff\xff\xff\xf0" + std::string(100, 'x');
  REQUIRE(::send(first, (good + bad).data(), good.size() + bad.size(), MSG_NOSIGNAL) > 0);
  std::string frame;
  REQUIRE(sub.next(frame, 5s));
  CHECK(frame == "ok");
  auto m = relay.process->waitForLine("protocol error at offset (\\d+) \\(announced size (\\d+)\\)");
  REQUIRE(m.size() == 3);
  CHECK(m[1] == "6");
  CHECK(m[2] == "4294967280");
  CHECK(residentKiB(relay.process->pid()) < 1024 * 1024);

  int second = provider.accept();  // the relay reconnected
  REQUIRE(second >= 0);
  std::string again = std::string("\0\0\0\5again", 9);
  REQUIRE(::send(second, again.data(), again.size(), MSG_NOSIGNAL) > 0);
  REQUIRE(sub.next(frame, 5s));
  CHECK(frame == "again");
  ::close(first);
  ::close(second);
}

TEST_CASE("SIGTERM flushes queued frames and exits 0", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 50}\nlisteners:\n" + listener("main"));
  Subscriber sub(relay.address());
  std::string frame;
  REQUIRE(sub.next(frame, 5s));
  relay.process->terminate();
  CHECK(relay.process->waitForExit() == 0);
  CHECK(relay.process->countLines("relay stopped after") == 1);
  while (sub.next(frame, 5s)) {
  }
  CHECK_FALSE(sub.timedOut());  // the relay closed the connection itself
}

TEST_CASE("start-up errors exit non-zero with one line", "[integration]") {
  SECTION("config error names key and line") {
    std::string path = writeTempFile("bad.yaml", "upstream: {type: generator}\nlisteners:\n  - {name: a, bind: '127.0.0.1:0', max_clients: -1}\n");
    ChildProcess relay(STREAMRELAY_BIN, {"--config", path});
    CHECK(relay.waitForExit() == 1);
    CHECK(relay.output() == "streamrelay: config error: " + path + ":3: listeners[0].max_clients: -1 is out of range 1..100000\n");
  }
  SECTION("port in use") {
    RunningRelay first = startRelay("upstream: {type: generator}\nlisteners:\n" + listener("main"));
    std::string path = writeTempFile("clash.yaml", "upstream: {type: generator}\nlisteners:\n  - {name: main, bind: '" +
                                                       first.address() + "'}\n");
    ChildProcess relay(STREAMRELAY_BIN, {"--config", path});
    CHECK(relay.waitForExit() == 1);
    std::string out = relay.output();
    CHECK(out.find("cannot listen on " + first.address()) != std::string::npos);
    CHECK(out.find(path + ":3") != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  }
  SECTION("a key that is a list: exit 1 and one line, for --check-config and --config alike") {
    std::string path = writeTempFile("listkey.yaml", "[x]: 1\n");
    for (const char* option : {"--check-config", "--config"}) {
      ChildProcess relay(STREAMRELAY_BIN, {option, path});
      CHECK(relay.waitForExit() == 1);
      CHECK(relay.output() == "streamrelay: config error: " + path +
                                  ":1: (top level): a key must be a plain name, not a list or mapping\n");
    }
  }
  SECTION("no config file: one line with where it looked (a relative path from the working directory)") {
    char cwd[4096];
    REQUIRE(::getcwd(cwd, sizeof cwd) != nullptr);
    const std::string defaultPath = STREAMRELAY_DEFAULT_CONFIG;
    const std::string looked = defaultPath[0] == '/' ? defaultPath : std::string(cwd) + "/" + defaultPath;
    if (::access(defaultPath.c_str(), F_OK) == 0) {
      WARN(looked << " exists here: the default's case is not checked");
    } else {
      ChildProcess byDefault(STREAMRELAY_BIN, {});
      CHECK(byDefault.waitForExit() == 1);
      CHECK(byDefault.output() ==
            "streamrelay: config error: no config file at " + looked + " (the default; --config FILE reads another)\n");
    }
    ChildProcess named(STREAMRELAY_BIN, {"--check-config", "no/such.yaml"});
    CHECK(named.waitForExit() == 1);
    CHECK(named.output() == "streamrelay: config error: no config file at " + std::string(cwd) + "/no/such.yaml\n");
  }
  // Defect: the line of the misspelt key's value (3), not of the key (2).
  SECTION("a misspelt key whose value starts on the next line: --check-config names the key's line") {
    std::string path = writeTempFile("misspelt.yaml", "upstream: {type: generator}\nlisteneers:\n  - {name: a, bind: '127.0.0.1:0'}\n");
    ChildProcess check(STREAMRELAY_BIN, {"--check-config", path});
    CHECK(check.waitForExit() == 1);
    CHECK(check.output().rfind("streamrelay: config error: " + path + ":2: listeneers: unknown key (expected one of: ", 0) == 0);
  }
  SECTION("--check-config prints the effective config") {
    ChildProcess check(STREAMRELAY_BIN, {"--check-config", STREAMRELAY_SOURCE_DIR "/config/streamrelay.yaml"});
    CHECK(check.waitForExit() == 0);
  }
}

TEST_CASE("streamrelay-sub prints frames from the relay", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 100, size: 30}\nlisteners:\n" + listener("main") +
                                      listener("lines", "framing: {type: delimiter}"),
                                  {"main", "lines"});
  for (auto args : {std::vector<std::string>{relay.address(), "--count", "3"},
                    std::vector<std::string>{relay.address("lines"), "--framing", "delimiter", "--count", "3"}}) {
    ChildProcess sub(STREAMRELAY_SUB_BIN, args);
    CHECK(sub.waitForExit() == 0);
  }
}

TEST_CASE("subscribers that join while frames flow get a gapless ordered stream", "[integration]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "max_clients: 200, queue: {max_frames: 0, max_bytes: 67108864}"));
  // Endless: frames flow for as long as the joiners need, however slow the machine.
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate",
                         "100000", "--size", "64"});
  REQUIRE(relay.process->waitForLine("publisher .* connected").size() > 0);
  // Joining subscribers change the bus's subscriber list under the publisher.
  std::vector<std::thread> joiners;
  std::atomic<int> contiguous{0};
  for (int t = 0; t < 8; ++t) {
    joiners.emplace_back([&] {
      for (int round = 0; round < 5; ++round) {
        Subscriber sub(relay.address());
        std::string frame;
        long previous = -1;
        int read = 0;
        for (; read < 2000; ++read) {
          if (!sub.next(frame, 10s)) break;
          long n = std::stol(frame.substr(5));
          if (previous >= 0 && n != previous + 1) break;
          previous = n;
        }
        if (read == 2000) ++contiguous;
      }
    });
  }
  for (auto& t : joiners) t.join();
  CHECK(contiguous == 40);
  CHECK(relay.process->countLines("slow_consumer") == 0);
}


TEST_CASE("tcp upstream: send_on_connect with environment expansion and idle_timeout_ms", "[integration]") {
  FakeProvider provider;
  setenv("STREAMRELAY_TEST_FEED_TOKEN", "s3cret", 1);  // inherited by the relay
  RunningRelay relay = startRelay("upstream: {type: tcp, host: localhost, port: " + std::to_string(provider.port) +
                                  ", send_on_connect: \"SUBSCRIBE ${STREAMRELAY_TEST_FEED_TOKEN}\\n\", idle_timeout_ms: 300," +
                                  " reconnect: {initial_delay_ms: 20, max_delay_ms: 100}}\nlisteners:\n" + listener("main"));
  int first = provider.accept();
  REQUIRE(first >= 0);
  CHECK(receiveExactly(first, 17) == "SUBSCRIBE s3cret\n");
  // Silence for longer than idle_timeout_ms: the relay gives up on this connection and comes back.
  CHECK(relay.process->waitForLine("no data for idle_timeout_ms 300 ms; reconnecting").size() > 0);
  int second = provider.accept();
  REQUIRE(second >= 0);
  CHECK(receiveExactly(second, 17) == "SUBSCRIBE s3cret\n");
  ::close(first);
  ::close(second);
}

// Defect: one publisher sending now and then kept every silent one connected
// (idle_timeout_ms was for all publishers together), locking the slots.
// The live publisher sends every 50 ms: 20 times within idle_timeout_ms, so
// a loaded machine that holds it back a while does not make it silent.
TEST_CASE("listen upstream: idle_timeout_ms closes each silent publisher while a live one stays", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: listen, bind: '127.0.0.1:0', max_publishers: 2, idle_timeout_ms: 1000}\n"
                                  "listeners:\n" + listener("main"));
  Subscriber sub(relay.address());
  relay.waitForSubscribers(1);
  auto live = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "20",
                         "--size", "10", "--count", "200"});
  REQUIRE(relay.process->waitForLines("publisher .* connected", 1));
  int silent = connectLoopback(relay.publisherPort);
  REQUIRE(silent >= 0);
  REQUIRE(relay.process->waitForLines("publisher .* connected", 2));
  CHECK(closedByPeer(silent, 5s));
  ::close(silent);
  CHECK(relay.process->waitForLine("publisher .* sent nothing for idle_timeout_ms 1000; disconnected").size() > 0);
  std::string frame;
  for (int i = 0; i < 10; ++i) REQUIRE(sub.next(frame, 5s));  // the live one goes on
  int third = connectLoopback(relay.publisherPort);  // its slot is free again
  REQUIRE(third >= 0);
  CHECK(relay.process->waitForLines("publisher .* connected", 3));
  ::close(third);
  CHECK(relay.process->countLines("max_publishers 2 reached") == 0);
  live->kill();
}

// Defect: the refusal logged "max_publishers [ERRFMT] reached" (a size_t given to %d).
TEST_CASE("listen upstream: a publisher over max_publishers is refused with a line that says the limit", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: listen, bind: '127.0.0.1:0', max_publishers: 1}\n"
                                  "listeners:\n" + listener("main"));
  int first = connectLoopback(relay.publisherPort);
  REQUIRE(first >= 0);
  REQUIRE(relay.process->waitForLines("publisher .* connected", 1));
  int refused = connectLoopback(relay.publisherPort);
  REQUIRE(refused >= 0);
  CHECK(closedByPeer(refused, 5s));
  ::close(refused);
  ::close(first);
  CHECK(relay.process->waitForLine("refused publisher 127\\.0\\.0\\.1:\\d+: max_publishers 1 reached$").size() > 0);
}

TEST_CASE("listen upstream: publishers outside the allow list are refused", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: listen, bind: '127.0.0.1:0', allow: ['10.0.0.0/8']}\n"
                                  "listeners:\n" + listener("main"));
  int refused = connectLoopback(relay.publisherPort);
  REQUIRE(refused >= 0);
  CHECK(closedByPeer(refused, 5s));
  ::close(refused);
  CHECK(relay.process->waitForLine("refused publisher 127.0.0.1:\\d+: not in the allow list").size() > 0);
}

TEST_CASE("stdin upstream: frames piped into the relay reach subscribers", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" + listener("main"));
  Subscriber sub(relay.address());
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  relay.process->writeStdin("first line\nsecond line\nthird");
  std::string frame;
  REQUIRE(sub.next(frame, 5s));
  CHECK(frame == "first line");
  REQUIRE(sub.next(frame, 5s));
  CHECK(frame == "second line");
  relay.process->writeStdin(" and last\n");
  REQUIRE(sub.next(frame, 5s));
  CHECK(frame == "third and last");
  relay.process->closeStdin();
  CHECK(relay.process->waitForLine("end of input; still serving").size() > 0);
}

TEST_CASE("SIGTERM sends a subscriber what was queued for it before closing", "[integration]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", "queue: {max_frames: 0, max_bytes: 67108864}"));
  // A subscriber that is not reading yet: frames pile up in its queue.
  int fd = stalledClient(relay.ports["main"]);
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  const long frames = 5000;
  auto feed = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "0",
                         "--size", "1000", "--count", std::to_string(frames)});
  REQUIRE(feed->waitForExit() == 0);
  REQUIRE(relay.process->waitForLine("publisher .* disconnected").size() > 0);
  relay.process->terminate();
  // Now read: every frame arrives, then the relay closes the connection.
  std::string all;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  CHECK(all.size() == static_cast<std::size_t>(frames) * (4 + 1000));
  CHECK(relay.process->waitForExit() == 0);
}

TEST_CASE("a frame a listener's framing cannot carry is skipped and counted and never cut", "[integration]") {
  RunningRelay relay = startRelay("upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" +
                                  listener("main", "framing: {type: length-prefix, width: 1}"));
  Subscriber::Options options;
  options.framing = streamrelay::client::Framing::parse("length-prefix:1");
  auto sub = std::make_unique<Subscriber>(relay.address(), options);
  REQUIRE(relay.process->waitForLine("subscriber .* connected").size() > 0);
  relay.process->writeStdin("short\n" + std::string(300, 'x') + "\nafter\n");
  std::string frame;
  REQUIRE(sub->next(frame, 5s));
  CHECK(frame == "short");
  REQUIRE(sub->next(frame, 5s));
  CHECK(frame == "after");  // the 300-byte frame does not fit a 1-byte length
  sub.reset();
  relay.process->writeStdin("one more\n");  // the next write notices the closed subscriber
  CHECK(relay.process->waitForLine("disconnected: peer_closed; .*1 frames skipped: length-prefix width 1").size() > 0);
}

namespace {
// The N of a generator frame "frame N at <time>" (its seq), or 0.
std::uint64_t generatorNumber(const std::string& frame) {
  if (frame.compare(0, 6, "frame ") != 0) return 0;
  return std::strtoull(frame.c_str() + 6, nullptr, 10);
}
}  // namespace

// listeners[].replay at 20000 frames/s: a late subscriber first gets the
// newest frames from before it connected, then the live stream, and the two
// meet with no frame missing and none twice.
TEST_CASE("a late subscriber with replay gets the recent past, then live frames, seamlessly at 20k frames/s",
          "[integration]") {
  RunningRelay relay = startRelay(
      "upstream: {type: generator, rate: 20000, size: 48}\n"
      "streams:\n  upstream: {replay: {frames: 50000}}\n"
      "listeners:\n" + listener("live") + listener("main", "replay: {frames: 20000}"),
      {"live", "main"});
  std::uint64_t seenLive = 0;
  {
    Subscriber live(relay.address("live"));
    std::string frame;
    while (seenLive < 30000 && live.next(frame, 10s)) seenLive = generatorNumber(frame);
  }
  REQUIRE(seenLive >= 30000);

  Subscriber late(relay.address("main"));
  std::string frame;
  REQUIRE(late.next(frame, 10s));
  const std::uint64_t first = generatorNumber(frame);
  // The replay reaches back before the moment of connecting (20000 frames
  // are a second at this rate: far more than a connect takes).
  CHECK(first >= 1);
  CHECK(first <= seenLive);
  std::uint64_t last = first;
  long inOrder = 1;
  while (inOrder < 40000 && late.next(frame, 10s)) {
    const std::uint64_t n = generatorNumber(frame);
    if (n != last + 1) FAIL("frame " << last << " was followed by " << n);
    last = n;
    ++inOrder;
  }
  CHECK(inOrder == 40000);
}
