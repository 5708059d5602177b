// SPDX-License-Identifier: Apache-2.0
#include "relay_fixture.hpp"

#include <Poco/Exception.h>
#include <Poco/File.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

namespace streamrelay::test {

RunningRelay startRelay(const std::string& yaml, const std::vector<std::string>& listeners) {
  static int counter = 0;
  std::string path = writeTempFile("relay" + std::to_string(++counter) + ".yaml", yaml);
  RunningRelay relay;
  relay.configPath = path;
  relay.process = std::make_unique<ChildProcess>(STREAMRELAY_BIN, std::vector<std::string>{"--config", path});
  for (const std::string& name : listeners) {
    auto m = relay.process->waitForLine("listener " + name + ": listening on .*:(\\d+) ");
    INFO(relay.process->output());
    REQUIRE(m.size() == 2);
    relay.ports[name] = std::stoi(m[1]);
  }
  INFO(relay.process->output());
  REQUIRE(relay.process->waitForLine("relay started").size() > 0);
  auto m = relay.process->waitForLine("listening for publishers on .*:(\\d+)", 0ms);  // logged before "started"
  if (m.size() == 2) relay.publisherPort = std::stoi(m[1]);
  return relay;
}

void RunningRelay::reload(const std::string& yaml) const {
  std::ofstream(configPath) << yaml;
  process->signal(SIGHUP);
}

void RunningRelay::waitForSubscribers(int count, const std::string& listener) const {
  INFO(process->output());
  REQUIRE(process->waitForLines("listener " + (listener.empty() ? std::string("[^ ]+") : listener) +
                                    ": subscriber .* connected",
                                count));
}

LoadUnderTest::LoadUnderTest(const RunningRelay& relay, int frames, std::size_t size, int subscribers)
    : relay_(relay), frames_(frames), got_(static_cast<std::size_t>(subscribers)) {
  for (int i = 0; i < subscribers; ++i) subs_.push_back(std::make_unique<Subscriber>(relay.address()));
  relay.waitForSubscribers(subscribers, "main");
  feed_ = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate", "20000",
                     "--size", std::to_string(size), "--count", std::to_string(frames)});
  for (std::size_t i = 0; i < subs_.size(); ++i)
    readers_.emplace_back([this, i] { got_[i] = readSequence(*subs_[i], frames_, 60s); });
}

LoadUnderTest::~LoadUnderTest() {
  for (auto& r : readers_)
    if (r.joinable()) r.join();
}

void LoadUnderTest::finish() {
  for (auto& r : readers_) r.join();
  for (long n : got_) CHECK(n == frames_);
  CHECK(feed_->waitForExit(30s) == 0);
  CHECK(relay_.process->countLines("publisher .* connected") == 1);
}

int readWholeFeedFrames(Subscriber& sub, int count) {
  std::string frame;
  int got = 0;
  while (got < count && sub.next(frame, 10s)) {
    INFO("frame '" << frame << "'");
    REQUIRE(frame.rfind("feed ", 0) == 0);
    REQUIRE(frame.find_first_not_of("0123456789", 5) == std::string::npos);
    ++got;
  }
  return got;
}

std::unique_ptr<ChildProcess> startFeed(std::vector<std::string> args) {
  return std::make_unique<ChildProcess>(STREAMRELAY_FEED_BIN, args);
}

int feedPort(ChildProcess& feed) {
  auto m = feed.waitForLine("listening on .*:(\\d+)");
  REQUIRE(m.size() == 2);
  return std::stoi(m[1]);
}

std::string listener(const std::string& name, const std::string& extra) {
  return "  - {name: " + name + ", bind: '127.0.0.1:0'" + (extra.empty() ? "" : ", " + extra) + "}\n";
}

int connectLoopback(int port, int receiveBuffer) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (receiveBuffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

long readSequence(Subscriber& sub, long expected, std::chrono::milliseconds timeout) {
  std::string frame;
  long next = 1;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (next <= expected && std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!sub.next(frame, left)) break;
    std::string want = "feed " + std::to_string(next);
    if (frame.compare(0, want.size(), want) != 0 || (frame.size() > want.size() && frame[want.size()] != '.')) {
      FAIL_CHECK("frame " << next << " was '" << frame.substr(0, 40) << "'");
      return next - 1;
    }
    ++next;
  }
  return next - 1;
}

LineFeed::LineFeed(const RunningRelay& relay, int rate)
    : feed_(startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort)})) {
  writer_ = std::thread([this, rate] {
    // A feed that exited (the relay went away) fails the write, not the test program.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    constexpr auto kTick = 5ms;
    const long perTick = std::max(1L, static_cast<long>(rate) * kTick.count() / 1000);
    auto next = std::chrono::steady_clock::now();
    try {
      while (!stopping_) {
        std::string lines;
        for (long i = 1; i <= perTick; ++i) lines += "feed " + std::to_string(written_ + i) + "\n";
        feed_->writeStdin(lines);
        written_ += perTick;
        next += kTick;
        std::this_thread::sleep_until(next);  // pacing the frames, not waiting for anything
      }
      feed_->writeStdin("end\n");
    } catch (const Poco::Exception&) {
      written_ = -1;  // the feed is gone: stop() reports its exit
    }
    feed_->closeStdin();
  });
}

LineFeed::~LineFeed() {
  stopping_ = true;
  if (writer_.joinable()) writer_.join();
}

long LineFeed::stop() {
  stopping_ = true;
  writer_.join();
  INFO(feed_->output());
  CHECK(feed_->waitForExit(30s) == 0);
  CHECK(written_ >= 0);
  return written_;
}

long readUntilEnd(Subscriber& sub, std::chrono::milliseconds quiet) {
  std::string frame;
  long last = 0;
  while (sub.next(frame, quiet)) {
    if (frame == "end") return last;
    if (frame != "feed " + std::to_string(last + 1)) {
      FAIL_CHECK("frame " << last + 1 << " was '" << frame.substr(0, 40) << "'");
      return -1;
    }
    ++last;
  }
  FAIL_CHECK("no frame \"end\" after " << last << " frames (" << (sub.timedOut() ? "none came for a while" : sub.endReason()) << ")");
  return -1;
}

PluginDir::PluginDir() {
  char pattern[] = "/tmp/streamrelay-test-plugins.XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  root_ = pattern;
  ::chmod(root_.c_str(), 0755);
}

PluginDir::~PluginDir() { Poco::File(root_).remove(true); }

void PluginDir::drop(const std::string& builtPlugin, const std::string& as) const {
  std::string temp = path("." + as + ".tmp");
  Poco::File(builtPlugin).copyTo(temp);
  ::chmod(temp.c_str(), 0644);
  REQUIRE(::rename(temp.c_str(), path(as).c_str()) == 0);
}

void PluginDir::write(const std::string& file, const std::string& text) const {
  std::string temp = path("." + file + ".tmp");
  std::ofstream(temp) << text;
  REQUIRE(::rename(temp.c_str(), path(file).c_str()) == 0);
}

std::string pluginsSection(const PluginDir& dir, const std::string& rest) {
  return "plugins:\n  directory: " + dir.root() + "\n  rescan_ms: 200\n" + rest;
}

RelayStats::RelayStats(const std::string& inputs) : inputs_(inputs) {
  dir_.drop(std::string(STREAMRELAY_PLUGINS_DIR) + "/metrics.so", "metrics.so");
}

std::string RelayStats::section() const {
  return pluginsSection(dir_, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}" +
                                  (inputs_.empty() ? "" : ", inputs: [" + inputs_ + "]") + "}\n");
}

void RelayStats::attach(const RunningRelay& relay) {
  auto m = relay.process->waitForLine("plugin metrics: serving http://127\\.0\\.0\\.1:(\\d+)/");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
  port_ = std::stoi(m[1]);
}

std::string RelayStats::text(const std::string& path) const {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path, Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::string body;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
  REQUIRE(response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK);
  return body;
}

Poco::JSON::Object::Ptr RelayStats::get() const {
  return Poco::JSON::Parser().parse(text("/stats")).extract<Poco::JSON::Object::Ptr>();
}

long RelayStats::listener(const std::string& name, const std::string& key) const {
  Poco::JSON::Array::Ptr listeners = get()->getArray("listeners");
  for (std::size_t i = 0; i < listeners->size(); ++i) {
    Poco::JSON::Object::Ptr l = listeners->getObject(static_cast<unsigned>(i));
    if (l->getValue<std::string>("name") != name) continue;
    const auto dot = key.find('.');
    if (dot != std::string::npos) l = l->getObject(key.substr(0, dot));
    const std::string leaf = dot == std::string::npos ? key : key.substr(dot + 1);
    return l && l->has(leaf) ? l->getValue<long>(leaf) : -1;
  }
  return -1;
}

bool pollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);  // a poll interval under a deadline, as NATS' checkFor
  }
}

namespace {
// The entry named `name` of the /stats array `list` (null if there is none).
Poco::JSON::Object::Ptr named(const Poco::JSON::Object::Ptr& stats, const std::string& list, const std::string& name) {
  Poco::JSON::Array::Ptr items = stats->getArray(list);
  for (std::size_t i = 0; items && i < items->size(); ++i) {
    Poco::JSON::Object::Ptr item = items->getObject(static_cast<unsigned>(i));
    if (item->getValue<std::string>("name") == name) return item;
  }
  return nullptr;
}
}  // namespace

Poco::JSON::Object::Ptr RelayStats::stream(const std::string& name) const { return named(get(), "streams", name); }

Poco::JSON::Object::Ptr RelayStats::source(const std::string& name) const { return named(get(), "sources", name); }

std::uint64_t RelayStats::counter(const std::string& name, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  REQUIRE(s);
  return s->getValue<std::uint64_t>(name);
}

std::uint64_t RelayStats::sourceNumber(const std::string& key, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  return s && s->has(key) ? s->getValue<std::uint64_t>(key) : 0;
}

std::string RelayStats::sourceText(const std::string& key, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  return s && s->has(key) && !s->isNull(key) ? s->getValue<std::string>(key) : "";
}

std::uint64_t RelayStats::endpointFailures(std::size_t index, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  REQUIRE(s);
  return s->getArray("endpoints")->getObject(static_cast<unsigned>(index))->getValue<std::uint64_t>("failures");
}

std::vector<std::string> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

double sampleValue(const std::string& page, const std::string& series) {
  std::regex re("(^|\n)" + std::regex_replace(series, std::regex(R"([{}\[\]().*+?^$|\\])"), R"(\$&)") + " ([^\n]+)");
  std::smatch m;
  if (!std::regex_search(page, m, re)) return -1;
  return std::stod(m[2]);
}

}  // namespace streamrelay::test
