// SPDX-License-Identifier: Apache-2.0
// engine_latency_bench: the provider and the subscribers of one end-to-end
// run through a relay topology (tests/bench/engine-bench.sh): it connects to
// the root relay's `listen` source as the provider and to the edge relay's
// raw listener(s) as subscribers, and measures what reaches them.
//
// Every frame it sends is SIZE bytes (at least 16), length-prefixed (the
// default framing: a u32 big-endian length): a u64 sequence number 1..N,
// the CLOCK_REALTIME nanoseconds when it was written to the socket, then
// padding. Before frame 1 it sends warm-up frames (sequence 0), one every
// 20 ms, until every subscriber has one: the whole path (the edge's
// subscription to the engine, each subscriber's registration) is up before
// the clock starts, without waiting blindly.
//
//   engine_latency_bench --provider 127.0.0.1:P --subscriber 127.0.0.1:Q [--subscriber ...]
//                        [--subs-each K] [--frames N | --seconds S] [--rate R] [--size B]
//                        [--quiet-ms Q] [--cpu NAME=PID[,PID...]]...
//   engine_latency_bench --free-ports N          prints N free loopback ports
//
// --rate 0 (the default): as fast as the relay takes them (throughput);
// --rate R: R frames/s on an absolute schedule for --seconds S (latency:
// each frame's receive time minus its send time, p50/p99/max over every
// subscriber). Bounded: it ends once every subscriber has frame N or was
// closed by the relay, or none got a frame for --quiet-ms (default 10000),
// or the warm-up did not get through within 30 s (exit 2). Each subscriber
// checks the sequence: `lost` counts the numbers it never got in order (a
// gap, the tail that never came), `out_of_order` a frame behind one already
// seen (late or repeated). --cpu samples the CPU time of those processes from the
// first measured frame to the end.
//
// Prints key=value lines: frames, sent, subscribers, seconds (first frame sent to
// the last subscriber's frame N), frames_per_s, send_seconds, received,
// lost, out_of_order, closed_by_relay, p50_us, p99_us, max_us (latency runs), cpu_NAME.
// Exit status 0 only if every subscriber got every frame, in order.

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "fanout_harness.hpp"

namespace {

std::int64_t realtimeNs() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

std::int64_t monotonicNs() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

void sleepUntilMonotonic(std::int64_t ns) {  // pacing the send schedule
  timespec t{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr) == EINTR) {
  }
}

void putU64(char* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
std::uint64_t getU64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Appends frame `seq` (stamped now) to `out`.
void appendFrame(std::string& out, std::uint64_t seq, std::size_t size) {
  const std::size_t at = out.size();
  out.resize(at + 4 + size, 'x');
  char* p = &out[at];
  p[0] = static_cast<char>(size >> 24);
  p[1] = static_cast<char>(size >> 16);
  p[2] = static_cast<char>(size >> 8);
  p[3] = static_cast<char>(size);
  putU64(p + 4, seq);
  putU64(p + 12, static_cast<std::uint64_t>(realtimeNs()));
}

// What one subscriber saw; written by the reader thread only, the atomics
// read by the main thread while it runs.
struct Sub {
  int fd = -1;
  bench::ReadBuffer buffer;
  std::atomic<bool> warm{false};
  std::atomic<std::uint64_t> expect{1};  // the next sequence number in order
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::int64_t> lastFrameNs{0};  // realtime of frame N's arrival (0: not yet)
  std::uint64_t missing = 0, outOfOrder = 0;
  std::vector<std::int64_t> latencies;
  std::atomic<bool> ended{false};  // the relay closed the connection
};

struct Cpu {
  std::string name;
  std::vector<long> pids;
  double start = 0;
};

double cpuOf(const Cpu& c) {
  double total = 0;
  for (long pid : c.pids) total += bench::cpuSecondsOf(pid);
  return total;
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "engine_latency_bench: " << why
            << "\nusage: engine_latency_bench --provider HOST:PORT --subscriber HOST:PORT [--subscriber ...] [--subs-each K]"
               " [--frames N | --seconds S] [--rate R] [--size B] [--quiet-ms Q] [--cpu NAME=PID[,PID...]]\n"
               "       engine_latency_bench --free-ports N\n";
  std::exit(64);
}

}  // namespace

int main(int argc, char** argv) try {
  std::string provider;
  std::vector<std::string> subscribers;
  std::vector<Cpu> cpus;
  long subsEach = 1, frames = 0, rate = 0, quietMs = 10000;
  double seconds = 0;
  std::size_t size = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--free-ports") {
      for (int port : bench::freePorts(std::atoi(value.c_str()))) std::cout << port << "\n";
      return 0;
    } else if (arg == "--provider") {
      provider = value;
    } else if (arg == "--subscriber") {
      subscribers.push_back(value);
    } else if (arg == "--subs-each") {
      subsEach = std::atol(value.c_str());
    } else if (arg == "--frames") {
      frames = std::atol(value.c_str());
    } else if (arg == "--seconds") {
      seconds = std::atof(value.c_str());
    } else if (arg == "--rate") {
      rate = std::atol(value.c_str());
    } else if (arg == "--size") {
      size = static_cast<std::size_t>(std::atol(value.c_str()));
    } else if (arg == "--quiet-ms") {
      quietMs = std::atol(value.c_str());
    } else if (arg == "--cpu") {
      const std::size_t eq = value.find('=');
      if (eq == std::string::npos) usage("--cpu takes NAME=PID[,PID...]");
      Cpu c{value.substr(0, eq), {}, 0};
      std::stringstream list(value.substr(eq + 1));
      for (std::string pid; std::getline(list, pid, ',');) c.pids.push_back(std::atol(pid.c_str()));
      cpus.push_back(c);
    } else {
      usage("unknown option " + arg);
    }
  }
  if (provider.empty() || subscribers.empty()) usage("--provider and --subscriber are required");
  if (size < 16) usage("--size is at least 16 (the sequence number and the send time)");
  if (rate < 0 || subsEach < 1 || quietMs < 1) usage("--rate >= 0, --subs-each >= 1, --quiet-ms >= 1");
  if (frames <= 0 && rate > 0 && seconds > 0) frames = static_cast<long>(static_cast<double>(rate) * seconds);
  if (frames <= 0) usage("--frames N, or --rate R with --seconds S");
  const bool latency = rate > 0;

  // The subscribers first, so that they are there before frame 1.
  std::vector<std::unique_ptr<Sub>> subs;
  std::vector<int> fds;
  for (const std::string& address : subscribers)
    for (long k = 0; k < subsEach; ++k) {
      subs.push_back(std::make_unique<Sub>());
      subs.back()->fd = bench::connectTo(address);
      fds.push_back(subs.back()->fd);
      if (latency) subs.back()->latencies.reserve(static_cast<std::size_t>(frames));
    }
  const auto total = static_cast<std::uint64_t>(frames);

  std::atomic<bool> stopping{false};
  std::thread reader([&] {
    bench::epollReadLoop(
        fds, stopping,
        [&](std::size_t i, char* buffer, std::size_t capacity) -> long {
          const long got = ::recv(fds[i], buffer, capacity, 0);
          if (got == 0 && !subs[i]->ended) {  // closed by the relay: closing it takes it out of epoll
            subs[i]->ended = true;
            ::close(fds[i]);
          }
          return got;
        },
        [&](std::size_t i, const char* data, std::size_t n) {
          Sub& s = *subs[i];
          s.buffer.append(data, n);
          const std::int64_t now = realtimeNs();  // one clock read per read(), not per frame
          s.buffer.consume(bench::takeFrames(s.buffer.data(), s.buffer.size(), 4,
                                             [&](const char*, const char* payload, std::size_t bytes) {
            if (bytes < 16) {
              ++s.outOfOrder;  // not one of ours
              return;
            }
            const std::uint64_t seq = getU64(payload);
            if (seq == 0) {
              s.warm.store(true);
              return;
            }
            const std::uint64_t expect = s.expect.load(std::memory_order_relaxed);
            if (seq < expect) {
              ++s.outOfOrder;  // behind: reordered or repeated
              return;
            }
            if (seq > expect) s.missing += seq - expect;
            s.expect.store(seq + 1, std::memory_order_relaxed);
            s.received.fetch_add(1, std::memory_order_relaxed);
            if (latency) s.latencies.push_back(now - static_cast<std::int64_t>(getU64(payload + 8)));
            if (seq == total) s.lastFrameNs.store(now);
          }));
        },
        [] {});
  });
  bench::JoinOnExit joinReader{reader, stopping};

  const int feed = bench::connectTo(provider);
  auto allWarm = [&] {
    for (auto& s : subs)
      if (!s->warm.load()) return false;
    return true;
  };
  const std::int64_t warmDeadline = monotonicNs() + 30'000'000'000LL;
  while (!allWarm()) {
    if (monotonicNs() > warmDeadline) {
      std::cerr << "engine_latency_bench: no warm-up frame reached every subscriber within 30 s\n";
      return 2;
    }
    std::string one;
    appendFrame(one, 0, size);
    bench::sendAll(feed, one);
    sleepUntilMonotonic(monotonicNs() + 20'000'000);  // the warm-up's pace, not a synchronisation
  }

  for (Cpu& c : cpus) c.start = cpuOf(c);
  const std::int64_t startReal = realtimeNs();
  const std::int64_t t0 = monotonicNs();
  std::string batch;
  std::uint64_t sent = 0;
  while (sent < total) {
    batch.clear();
    std::uint64_t upTo;
    if (latency) {
      const std::int64_t now = monotonicNs();
      upTo = std::min<std::uint64_t>(total, static_cast<std::uint64_t>((now - t0) * rate / 1000000000) + 1);
      if (upTo <= sent) {
        sleepUntilMonotonic(t0 + static_cast<std::int64_t>(sent) * 1000000000 / rate);
        continue;
      }
    } else {
      upTo = std::min<std::uint64_t>(total, sent + std::max<std::size_t>(1, (64 * 1024) / (size + 4)));
    }
    for (std::uint64_t seq = sent + 1; seq <= upTo; ++seq) appendFrame(batch, seq, size);
    try {
      bench::sendAll(feed, batch);
    } catch (const std::exception& e) {  // the root went away: what reached the subscribers is still reported
      std::cerr << "engine_latency_bench: provider: " << e.what() << " after " << sent << " of " << total
                << " frames\n";
      break;
    }
    sent = upTo;
  }
  const double sendSeconds = static_cast<double>(monotonicNs() - t0) / 1e9;

  // Until every subscriber has frame N, or none made progress for quietMs.
  std::uint64_t lastProgress = 0;
  std::int64_t quietSince = monotonicNs();
  for (;;) {
    bool done = true;  // every subscriber has frame N, or its connection was closed
    std::uint64_t progress = 0;
    for (auto& s : subs) {
      progress += s->expect.load(std::memory_order_relaxed) + s->received.load(std::memory_order_relaxed);
      if (s->lastFrameNs.load() == 0 && !s->ended.load()) done = false;
    }
    if (done) break;
    const std::int64_t now = monotonicNs();
    if (progress != lastProgress) {
      lastProgress = progress;
      quietSince = now;
    } else if (now - quietSince > quietMs * 1000000LL) {
      break;
    }
    sleepUntilMonotonic(now + 2'000'000);  // polling the condition, bounded by quietMs
  }
  std::vector<double> cpuSpent;
  for (const Cpu& c : cpus) cpuSpent.push_back(cpuOf(c) - c.start);
  stopping.store(true);
  reader.join();
  ::close(feed);

  std::uint64_t received = 0, lost = 0, outOfOrder = 0, closed = 0;
  std::int64_t end = 0;
  bool complete = true;
  std::vector<std::int64_t> all;
  for (auto& s : subs) {
    received += s->received;
    s->missing += total + 1 - s->expect;  // the tail that never came
    lost += s->missing;
    outOfOrder += s->outOfOrder;
    closed += s->ended ? 1 : 0;
    if (s->lastFrameNs == 0) complete = false;
    end = std::max<std::int64_t>(end, s->lastFrameNs);
    all.insert(all.end(), s->latencies.begin(), s->latencies.end());
    if (!s->ended) ::close(s->fd);
  }
  std::printf("frames=%llu\nsent=%llu\nsubscribers=%zu\nsend_seconds=%.3f\nreceived=%llu\nlost=%llu\nout_of_order=%llu\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(sent), subs.size(), sendSeconds,
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(outOfOrder));
  std::printf("closed_by_relay=%llu\n", static_cast<unsigned long long>(closed));
  if (complete) {
    const double elapsed = static_cast<double>(end - startReal) / 1e9;
    std::printf("seconds=%.3f\nframes_per_s=%.0f\n", elapsed, static_cast<double>(total) / elapsed);
  }
  if (latency && !all.empty()) {
    auto at = [&](double q) {
      const auto k = std::min(all.size() - 1, static_cast<std::size_t>(q * static_cast<double>(all.size())));
      std::nth_element(all.begin(), all.begin() + static_cast<long>(k), all.end());
      return static_cast<double>(all[k]) / 1e3;
    };
    const double p50 = at(0.50), p99 = at(0.99);
    std::printf("p50_us=%.0f\np99_us=%.0f\nmax_us=%.0f\n", p50, p99,
                static_cast<double>(*std::max_element(all.begin(), all.end())) / 1e3);
  }
  for (std::size_t i = 0; i < cpus.size(); ++i) std::printf("cpu_%s=%.2f\n", cpus[i].name.c_str(), cpuSpent[i]);
  return complete && lost == 0 && outOfOrder == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "engine_latency_bench: " << e.what() << "\n";
  return 2;
}
