// SPDX-License-Identifier: Apache-2.0
// selection_bench: subscribers that each take a few keys of a stream, from
// streamrelay (`select` in the streamrelay protocol's hello) and from
// nats-server (one subject per key), side by side; run by
// tests/bench/selection-bench.sh.
//
// Keys: md.rRR.KNNNN, key index i in [0, --keys), region i % --regions
// (2,000 keys and 20 regions: md.r07.> covers 100 keys, 5%). Frame seq s
// (from 1) carries key index (s - 1) % keys: keys evenly spread, regions
// interleaved. Payload (JSON, padded to --size with 'x'):
//   {"k":"md.r07.K0042","s":"<16 hex: seq>","t":"<16 hex: send time, steady ns>","p":"xxx"}
//
//   relay: the bench listens as the relay's tcp source (--upstream-listen)
//          and writes [u32 length][payload]; each subscriber connects to a
//          streamrelay listener (--subscribe), sends {"select": [...]} (or
//          {} with --select all) and waits for the answer; then frames with
//          the 24-byte header. A refused select exits 3 ("relay does not
//          support select yet").
//   nats:  the publisher sends PUB <key> over plain TCP to --subscribe;
//          each subscriber sends CONNECT, one SUB per pattern and PING, and
//          waits for PONG. No client library on either side.
//
// --select: one (subscriber j: key j % keys), ten (keys (j + t * keys/10) %
// keys, t < 10), wildcard (md.r<j % regions>.>), all (every frame).
// Every subscriber is registered before the first frame, so each knows
// exactly which seqs it must get: a missing one counts as a gap.
//
// Pacing: --rate frames/s (0: as fast as they are taken), never more than
// --in-flight deliveries (published, not yet received; default 65536; at
// least 512 frames of each subscriber) outstanding: the publisher waits for
// the slowest subscriber. Latency:
// receive time - send time of every delivery in the measured seconds.
// CPU: the server's (--pid / --pid-file) and the bench's own, over the
// measured seconds. Prints one JSON line. --subs 0: the input alone (the
// server's CPU for reading and keying frames nobody gets).
//
// Give every run a fresh server: what a finished run left in flight (NATS
// reads a publisher's backlog after it closed) would reach the next run's
// subscribers of the same keys.
//
//   selection_bench --free-ports 3                    # prints 3 free loopback ports
//   selection_bench --target nats --subscribe 127.0.0.1:4222 --pid 123 --select ten --subs 1000

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "fanout_harness.hpp"

namespace {

using bench::nowNs;

struct Options {
  std::string target = "relay", subscribe, upstreamListen, label, select = "one", pidFile;
  int subs = 1000, keys = 2000, regions = 20;
  std::size_t size = 128;
  double rate = 0, seconds = 10, warmup = 2;
  std::uint64_t inFlight = 65536;
  long pid = 0;
};
Options O;

// A select the relay refused: it does not support it yet (or not this pattern).
struct SelectRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- keys and payloads -----------------------------------------------------

std::string keyName(int index) {
  char name[32];
  std::snprintf(name, sizeof name, "md.r%02d.K%04d", index % O.regions, index);
  return name;
}

// Fixed offsets in the payload (keys are 12 characters: md.rRR.KNNNN).
constexpr std::size_t kKeyAt = 6, kKeyBytes = 12, kSeqAt = 25, kTimeAt = 48, kPadAt = 71, kMinSize = 73;

std::uint64_t hexOf(const char* text) {
  std::uint64_t value = 0;
  for (int i = 0; i < 16; ++i) {
    const char c = text[i];
    value = (value << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return value;
}

// Writes the payload of frame `seq` into `out` (O.size bytes).
void fillPayload(std::string& out, std::uint64_t seq, const std::string& key) {
  out.assign(O.size, 'x');
  char head[kPadAt + 1];
  std::snprintf(head, sizeof head, "{\"k\":\"%s\",\"s\":\"%016llx\",\"t\":\"%016llx\",\"p\":\"", key.c_str(),
                static_cast<unsigned long long>(seq), static_cast<unsigned long long>(nowNs()));
  std::memcpy(&out[0], head, kPadAt);
  out[O.size - 2] = '"';
  out[O.size - 1] = '}';
}

// ---- what each subscriber selects ----------------------------------------

struct Selection {
  std::vector<std::string> patterns;  // empty: everything (--select all)
  std::vector<int> keys;              // the key indexes it matches, sorted
};

Selection selectionOf(int j) {
  Selection s;
  if (O.select == "one") {
    s.keys = {j % O.keys};
  } else if (O.select == "ten") {
    for (int t = 0; t < 10; ++t) s.keys.push_back((j + t * (O.keys / 10)) % O.keys);
  } else if (O.select == "wildcard") {
    const int region = j % O.regions;
    char pattern[32];
    std::snprintf(pattern, sizeof pattern, "md.r%02d.>", region);
    s.patterns = {pattern};
    for (int i = region; i < O.keys; i += O.regions) s.keys.push_back(i);
    return s;
  } else if (O.select == "all") {
    for (int i = 0; i < O.keys; ++i) s.keys.push_back(i);
    return s;
  } else {
    throw std::runtime_error("--select: one, ten, wildcard or all, not " + O.select);
  }
  std::sort(s.keys.begin(), s.keys.end());
  s.keys.erase(std::unique(s.keys.begin(), s.keys.end()), s.keys.end());
  for (int k : s.keys) s.patterns.push_back(keyName(k));
  return s;
}

// The first seq after `seq` whose key the subscriber matches.
std::uint64_t nextSeqAfter(const std::vector<int>& keys, std::uint64_t seq) {
  const int at = static_cast<int>(seq % static_cast<std::uint64_t>(O.keys));  // key index of seq + 1
  const auto it = std::lower_bound(keys.begin(), keys.end(), at);
  if (it != keys.end()) return seq + 1 + static_cast<std::uint64_t>(*it - at);
  return seq + 1 + static_cast<std::uint64_t>(O.keys - at + keys.front());
}

// ---- subscribers -----------------------------------------------------------

struct Subscriber {
  int fd = -1;
  Selection selection;
  bench::ReadBuffer buffer;
  std::uint64_t expected = 0;              // the next seq it must get
  std::atomic<std::uint64_t> doneThrough{0};  // it has every frame of its keys up to this seq
  std::uint64_t gaps = 0;                  // frames it should have had and did not
  std::uint64_t counted = 0;               // frames received in the measured seconds
};

std::atomic<bool> measuring{false}, stopping{false};
std::atomic<bool> readerFailed{false};
std::string readerError;  // written by the reader before readerFailed is set
std::mutex progressMutex;
std::condition_variable progress;
bench::LatencyHistogram latency;  // the reader thread's; read after it stopped
std::int64_t readAt = 0;          // when the bytes being parsed were read

void onPayload(Subscriber& s, const char* payload, std::size_t size) {
  if (size < kMinSize) return;
  const std::uint64_t seq = hexOf(payload + kSeqAt);
  if (seq != s.expected) ++s.gaps;
  s.expected = nextSeqAfter(s.selection.keys, seq);
  s.doneThrough.store(s.expected - 1, std::memory_order_relaxed);
  if (measuring.load(std::memory_order_relaxed)) {
    ++s.counted;
    latency.record(readAt - static_cast<std::int64_t>(hexOf(payload + kTimeAt)));
  }
}

void parse(Subscriber& s) {
  std::size_t taken;
  if (O.target == "relay") {
    taken = bench::takeFrames(s.buffer.data(), s.buffer.size(), 24, [&](const char* header, const char* p, std::size_t n) {
      if (!bench::isControlFrame(header)) onPayload(s, p, n);
    });
  } else {
    taken = bench::takeNatsMessages(
        s.buffer.data(), s.buffer.size(), [&](const char* p, std::size_t n) { onPayload(s, p, n); },
        [&](const char* line, std::size_t n) {
          if (n >= 4 && std::strncmp(line, "PING", 4) == 0) bench::sendAll(s.fd, "PONG\r\n");
          if (n >= 4 && std::strncmp(line, "-ERR", 4) == 0)
            throw std::runtime_error("nats-server: " + std::string(line, n));
        });
  }
  s.buffer.consume(taken);
}

std::string jsonList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) out += (out.size() > 1 ? ",\"" : "\"") + item + "\"";
  return out + "]";
}

// Reads until `done` says the buffer holds what it waits for.
template <class Done>
void readUntil(Subscriber& s, Done&& done, const char* what) {
  char chunk[4096];
  while (!done()) {
    const long n = ::recv(s.fd, chunk, sizeof chunk, 0);
    if (n <= 0) throw std::runtime_error(std::string("no ") + what + " (connection closed)");
    s.buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

// Connects one subscriber and waits until the server has its selection
// (relay: the answer; NATS: the PONG after the SUBs).
void open(Subscriber& s) {
  s.fd = bench::connectTo(O.subscribe);
  if (O.target == "relay") {
    bench::sendAll(s.fd, s.selection.patterns.empty() ? std::string("{}\n")
                                                      : "{\"select\":" + jsonList(s.selection.patterns) + "}\n");
    readUntil(s, [&] { return s.buffer.size() >= 24 && s.buffer.size() >= 24 + bench::bigEndian32(s.buffer.data()); },
              "answer to the hello");
    const std::size_t size = bench::bigEndian32(s.buffer.data());
    const std::string answer(s.buffer.data() + 24, size);
    s.buffer.consume(24 + size);
    std::string compact;
    for (char c : answer)
      if (c != ' ') compact += c;
    if (compact.find("\"ok\":true") == std::string::npos) {
      if (!s.selection.patterns.empty() && answer.find("select") != std::string::npos) throw SelectRefused(answer);
      throw std::runtime_error("the relay refused the hello: " + answer);
    }
    return;
  }
  std::string hello = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
  if (s.selection.patterns.empty()) {
    hello += "SUB md.> 1\r\n";
  } else {
    for (std::size_t i = 0; i < s.selection.patterns.size(); ++i)
      hello += "SUB " + s.selection.patterns[i] + " " + std::to_string(i + 1) + "\r\n";
  }
  bench::sendAll(s.fd, hello + "PING\r\n");
  bool ponged = false;
  readUntil(s, [&] {
    const std::size_t taken = bench::takeNatsMessages(
        s.buffer.data(), s.buffer.size(), [](const char*, std::size_t) {},
        [&](const char* line, std::size_t n) {
          if (n >= 4 && std::strncmp(line, "PONG", 4) == 0) ponged = true;
          if (n >= 4 && std::strncmp(line, "-ERR", 4) == 0)
            throw std::runtime_error("nats-server: " + std::string(line, n));
        });
    s.buffer.consume(taken);
    return ponged;
  }, "PONG from nats-server");
}

// ---- the publisher ---------------------------------------------------------

struct Publisher {
  int fd = -1, listenFd = -1;
  std::vector<std::string> keys, natsHeads;  // per key index: its name; "PUB name size\r\n"
  std::string payload, batch;
  std::vector<char> discard = std::vector<char>(65536);

  void connect() {
    for (int i = 0; i < O.keys; ++i) {
      keys.push_back(keyName(i));
      natsHeads.push_back("PUB " + keys.back() + " " + std::to_string(O.size) + "\r\n");
    }
    if (O.target == "relay") {
      std::tie(listenFd, fd) = bench::acceptOne(O.upstreamListen, 30000);
    } else {
      fd = bench::connectTo(O.subscribe);
      bench::sendAll(fd, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    }
  }

  void send(std::uint64_t fromSeq, std::uint64_t count) {
    batch.clear();
    for (std::uint64_t seq = fromSeq; seq < fromSeq + count; ++seq) {
      const std::size_t key = static_cast<std::size_t>((seq - 1) % static_cast<std::uint64_t>(O.keys));
      fillPayload(payload, seq, keys[key]);
      if (O.target == "relay") {
        const std::uint32_t len = htonl(static_cast<std::uint32_t>(payload.size()));
        batch.append(reinterpret_cast<const char*>(&len), 4);
        batch += payload;
      } else {
        batch += natsHeads[key];
        batch += payload;
        batch += "\r\n";
      }
    }
    bench::sendAll(fd, batch);
    if (O.target == "nats") {  // what the server says to a publisher (PING, -ERR): read, never waited for
      for (long n; (n = ::recv(fd, discard.data(), discard.size(), MSG_DONTWAIT)) > 0;) {
        const std::string said(discard.data(), static_cast<std::size_t>(n));
        if (said.find("PING") != std::string::npos) bench::sendAll(fd, "PONG\r\n");
        if (said.find("-ERR") != std::string::npos) throw std::runtime_error("nats-server to the publisher: " + said);
      }
    }
  }

  ~Publisher() {
    if (fd >= 0) ::close(fd);
    if (listenFd >= 0) ::close(listenFd);
  }
};

int run() {
  std::vector<Subscriber> subs(static_cast<std::size_t>(O.subs));
  double fanout = 0;     // deliveries per published frame
  int widestSpacing = 1;  // the most seqs between two frames of one subscriber
  for (Subscriber& s : subs) {
    s.selection = selectionOf(static_cast<int>(&s - subs.data()));
    const std::vector<int>& keys = s.selection.keys;
    fanout += static_cast<double>(keys.size()) / O.keys;
    widestSpacing = std::max(widestSpacing, keys.front() + O.keys - keys.back());
    for (std::size_t k = 1; k < keys.size(); ++k) widestSpacing = std::max(widestSpacing, keys[k] - keys[k - 1]);
  }
  // The window, in seqs the slowest subscriber may lag behind the publisher:
  // --in-flight deliveries, at least twice the widest spacing of a
  // subscriber's keys (else a one-key subscriber would stall it) and 512
  // (every subscriber taking every frame: the other fan-out benches' order).
  const std::uint64_t window =
      fanout == 0 ? UINT64_MAX / 2
                  : std::max<std::uint64_t>({static_cast<std::uint64_t>(static_cast<double>(O.inFlight) / fanout),
                                             2 * static_cast<std::uint64_t>(widestSpacing), 512});

  Publisher pub;
  pub.connect();  // the relay connects to us first (its source), then takes subscribers
  for (Subscriber& s : subs) {
    open(s);
    s.expected = nextSeqAfter(s.selection.keys, 0);
    s.doneThrough.store(s.expected - 1);
  }

  std::vector<int> fds;
  for (const Subscriber& s : subs) fds.push_back(s.fd);
  std::thread reader([&] {
    try {
      bench::epollReadLoop(
          fds, stopping,
          [&](std::size_t i, char* into, std::size_t capacity) {
            const long n = ::recv(subs[i].fd, into, capacity, 0);
            if (n == 0) throw std::runtime_error("a subscriber was closed by the server");
            readAt = nowNs();
            return n;
          },
          [&](std::size_t i, const char* data, std::size_t size) {
            subs[i].buffer.append(data, size);
            parse(subs[i]);
          },
          [&] { progress.notify_one(); });
    } catch (const std::exception& e) {  // a broken measurement: the publisher stops and reports it
      readerError = e.what();
      readerFailed.store(true);
    }
  });
  bench::JoinOnExit joinReader{reader, stopping};

  const std::size_t batchMax = std::max<std::size_t>(1, std::min<std::size_t>(65536 / (O.size + 32), window / 4));
  std::uint64_t seq = 0;  // the last published
  std::uint64_t slowest = 0;  // the lowest doneThrough seen at the last look
  const std::int64_t start = nowNs();
  const std::int64_t measureFrom = start + static_cast<std::int64_t>(O.warmup * 1e9);
  const std::int64_t measureTo = measureFrom + static_cast<std::int64_t>(O.seconds * 1e9);
  std::uint64_t seqAtMeasure = 0;
  double serverCpuAt = 0, ownCpuAt = 0;
  std::int64_t lastProgressAt = start;
  for (;;) {
    if (readerFailed.load()) throw std::runtime_error(readerError);
    const std::int64_t now = nowNs();
    if (!measuring.load() && now >= measureFrom) {
      if (O.pid == 0 && !O.pidFile.empty()) std::ifstream(O.pidFile) >> O.pid;
      seqAtMeasure = seq;
      serverCpuAt = bench::treeCpuSecondsOf(O.pid);
      ownCpuAt = bench::ownCpuSeconds();
      measuring.store(true);
    }
    if (now >= measureTo) break;
    std::uint64_t count = batchMax;
    if (O.rate > 0) {  // the frames due by now
      const auto due = static_cast<std::uint64_t>(O.rate * static_cast<double>(now - start) / 1e9);
      count = std::min<std::uint64_t>(count, due > seq ? due - seq : 0);
    }
    if (seq + count > slowest + window) {  // look again at the slowest subscriber
      std::uint64_t low = UINT64_MAX;
      for (const Subscriber& s : subs) low = std::min(low, s.doneThrough.load(std::memory_order_relaxed));
      if (low > slowest) lastProgressAt = now;
      slowest = low;
      count = std::min<std::uint64_t>(count, slowest + window > seq ? slowest + window - seq : 0);
    } else {
      lastProgressAt = now;
    }
    if (count == 0) {  // nothing due, or the window is full: wait for the reader (or the clock)
      if (now - lastProgressAt > 30'000'000'000LL) throw std::runtime_error("no subscriber progress for 30 s");
      std::unique_lock<std::mutex> lock(progressMutex);
      progress.wait_for(lock, std::chrono::milliseconds(1));
      continue;
    }
    pub.send(seq + 1, count);
    seq += count;
  }
  const std::uint64_t published = seq - seqAtMeasure;
  const double serverCpu = bench::treeCpuSecondsOf(O.pid) - serverCpuAt;
  const double ownCpu = bench::ownCpuSeconds() - ownCpuAt;
  measuring.store(false);
  stopping.store(true);
  reader.join();

  std::uint64_t delivered = 0, gaps = 0;
  for (const Subscriber& s : subs) {
    delivered += s.counted;
    gaps += s.gaps;
  }
  const double perM = delivered > 0 ? serverCpu / (static_cast<double>(delivered) / 1e6) : 0;
  const double perMInput = published > 0 ? serverCpu / (static_cast<double>(published) / 1e6) : 0;
  std::printf("{\"target\":\"%s\",\"label\":\"%s\",\"select\":\"%s\",\"subscribers\":%d,\"keys\":%d,\"size\":%zu,"
              "\"rate\":%.0f,\"seconds\":%.1f,\"fanout\":%.3f,\"window\":%llu,\"input_per_s\":%.0f,"
              "\"delivered_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"gaps\":%llu,"
              "\"server_cpu_pct\":%.1f,\"server_cpu_s_per_m_deliveries\":%.3f,\"server_cpu_s_per_m_input\":%.3f,"
              "\"bench_cpu_pct\":%.1f}\n",
              O.target.c_str(), O.label.c_str(), O.select.c_str(), O.subs, O.keys, O.size, O.rate, O.seconds, fanout,
              static_cast<unsigned long long>(window), static_cast<double>(published) / O.seconds,
              static_cast<double>(delivered) / O.seconds, latency.quantileNs(0.5) / 1e3, latency.quantileNs(0.99) / 1e3,
              latency.quantileNs(0.999) / 1e3, static_cast<unsigned long long>(gaps), 100.0 * serverCpu / O.seconds,
              perM, perMInput, 100.0 * ownCpu / O.seconds);
  for (Subscriber& s : subs) ::close(s.fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto v = [&] {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::string(argv[++i]);
    };
    try {
      if (a == "--free-ports") {
        for (int port : bench::freePorts(std::stoi(v()))) std::printf("%d\n", port);
        return 0;
      }
      if (a == "--target") O.target = v();
      else if (a == "--subscribe") O.subscribe = v();
      else if (a == "--upstream-listen") O.upstreamListen = v();
      else if (a == "--label") O.label = v();
      else if (a == "--select") O.select = v();
      else if (a == "--subs") O.subs = std::stoi(v());
      else if (a == "--keys") O.keys = std::stoi(v());
      else if (a == "--regions") O.regions = std::stoi(v());
      else if (a == "--size") O.size = std::stoul(v());
      else if (a == "--rate") O.rate = std::stod(v());
      else if (a == "--seconds") O.seconds = std::stod(v());
      else if (a == "--warmup") O.warmup = std::stod(v());
      else if (a == "--in-flight") O.inFlight = std::stoull(v());
      else if (a == "--pid") O.pid = std::stol(v());
      else if (a == "--pid-file") O.pidFile = v();
      else throw std::invalid_argument("unknown argument " + a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "selection_bench: %s\n", e.what());
      return 2;
    }
  }
  if (O.label.empty()) O.label = O.target;
  if (O.target != "relay" && O.target != "nats") {
    std::fprintf(stderr, "selection_bench: --target relay or nats\n");
    return 2;
  }
  if (O.keys < 10 || O.keys > 10000 || O.regions < 1 || O.regions > 100 || O.keys % O.regions != 0 || O.subs < 0) {
    std::fprintf(stderr, "selection_bench: --keys 10..10000, a multiple of --regions (1..100); --subs >= 0\n");
    return 2;
  }
  O.size = std::max(O.size, kMinSize);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run();
  } catch (const SelectRefused& e) {
    std::fprintf(stderr, "selection_bench: relay does not support select yet (it answered: %s)\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "selection_bench: %s\n", e.what());
    return 1;
  }
}
