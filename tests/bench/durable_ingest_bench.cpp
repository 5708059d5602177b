// SPDX-License-Identifier: Apache-2.0
// durable_ingest_bench: frames/s durably accepted by a stream with a log
// (streams.NAME.log) and by nats-server JetStream, on one clock each: from
// the first frame sent (after connecting) until the last one is accepted.
// Run by durable-bench.sh; not a test.
//
//   durable_ingest_bench relay FEED_PORT STATS_PORT N SIZE [fsynced|written]
//       sends N frames of SIZE bytes (4-byte big-endian length prefix) to the
//       relay's `listen` source on 127.0.0.1:FEED_PORT, as fast as the socket
//       takes them, and asks /stats (the metrics plugin on 127.0.0.1:STATS_PORT)
//       every 2 ms until the stream's log.fsynced_seq (or, with `written`, for
//       fsync: never, its log.last_seq) has grown by N. The relay has one
//       stream. Prints "FSYNCED_PER_S WRITTEN_PER_S SENT_PER_S": the rates to
//       fsynced_seq, to log.last_seq (in the page cache) and to the last byte
//       handed to the socket (0 for what was not waited for).
//   durable_ingest_bench jetstream URL SUBJECT N SIZE WINDOW
//       publishes N messages of SIZE bytes with js_PublishAsync, at most
//       WINDOW unacknowledged (a fast client's bounded window), and waits for
//       every ack. Prints "ACKED_PER_S".
//   durable_ingest_bench reset URL STREAM SUBJECT
//       (re)creates an empty JetStream stream: file storage, 1 replica.

#include <arpa/inet.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int connectLocal(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "cannot connect to 127.0.0.1:%d: %s\n", port, std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

bool sendAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// The number after "KEY": in TEXT (the first one), or -1.
long long numberAfter(const std::string& text, const char* key) {
  const std::size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  std::size_t i = at + std::strlen(key);
  while (i < text.size() && (text[i] == ' ' || text[i] == ':')) ++i;
  return std::strtoll(text.c_str() + i, nullptr, 10);
}

struct LogSeqs {
  long long written = -1;  // streams[0].log.last_seq
  long long fsynced = -1;  // streams[0].log.fsynced_seq
};

// One GET /stats (the metrics plugin answers one request per connection).
LogSeqs askStats(int port) {
  const int fd = connectLocal(port);
  const std::string request = "GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::string reply;
  if (sendAll(fd, request.data(), request.size())) {
    char buffer[65536];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  LogSeqs seqs;
  const std::size_t log = reply.find("\"log\":");  // not "kind":"log" of the log's consumer
  if (log == std::string::npos) return seqs;
  const std::string rest = reply.substr(log);
  seqs.written = numberAfter(rest, "\"last_seq\"");
  seqs.fsynced = numberAfter(rest, "\"fsynced_seq\"");
  return seqs;
}

int relay(int feedPort, int statsPort, long long n, std::size_t size, bool untilFsynced) {
  const LogSeqs base = askStats(statsPort);
  if (base.fsynced < 0) {
    std::fprintf(stderr, "no streams[].log in /stats on port %d\n", statsPort);
    return 1;
  }
  // About 256 KiB of whole frames, sent again and again.
  std::string frame(4 + size, 'x');
  const std::uint32_t length = htonl(static_cast<std::uint32_t>(size));
  std::memcpy(&frame[0], &length, 4);
  const long long perChunk = std::max<long long>(1, (256 << 10) / static_cast<long long>(frame.size()));
  std::string chunk;
  for (long long i = 0; i < perChunk; ++i) chunk += frame;

  const int fd = connectLocal(feedPort);
  const auto start = Clock::now();
  std::atomic<double> sentAt{0};
  std::thread feeder([&] {
    for (long long left = n; left > 0;) {
      const long long frames = std::min(left, perChunk);
      if (!sendAll(fd, chunk.data(), static_cast<std::size_t>(frames) * frame.size())) {
        std::fprintf(stderr, "the relay closed the feed connection\n");
        std::exit(1);
      }
      left -= frames;
    }
    sentAt = secondsSince(start);
  });
  double writtenAt = 0, fsyncedAt = 0;
  const auto deadline = start + std::chrono::minutes(2);
  for (;;) {
    const LogSeqs now = askStats(statsPort);
    if (writtenAt == 0 && now.written - base.written >= n) writtenAt = secondsSince(start);
    if (fsyncedAt == 0 && now.fsynced - base.fsynced >= n) fsyncedAt = secondsSince(start);
    if (untilFsynced ? fsyncedAt > 0 : writtenAt > 0) break;
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "the log's %s did not reach %lld frames within 2 minutes\n",
                   untilFsynced ? "fsynced_seq" : "last_seq", n);
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // pacing the questions
  }
  feeder.join();
  ::close(fd);
  if (writtenAt == 0) writtenAt = fsyncedAt;  // both in one answer: the same moment
  std::printf("%.0f %.0f %.0f\n", fsyncedAt > 0 ? n / fsyncedAt : 0, n / writtenAt, n / sentAt.load());
  return 0;
}

natsConnection* connectNats(const std::string& url) {
  natsConnection* conn = nullptr;
  if (natsConnection_ConnectTo(&conn, url.c_str()) != NATS_OK) {
    std::fprintf(stderr, "cannot connect to %s\n", url.c_str());
    std::exit(1);
  }
  return conn;
}

std::atomic<long> failedPublishes{0};

// Called on cnats' thread for a publish the server refused or did not ack in time.
void countFailure(jsCtx*, jsPubAckErr* error, void*) {
  if (failedPublishes++ == 0) std::fprintf(stderr, "a publish failed: %s\n", natsStatus_GetText(error->Err));
}

jsCtx* jetStream(natsConnection* conn, long window) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.PublishAsync.MaxPending = window;
  opts.PublishAsync.ErrHandler = countFailure;
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, conn, &opts) != NATS_OK) std::exit(1);
  return js;
}

int jetstreamPublish(const std::string& url, const std::string& subject, long long n, std::size_t size, long window) {
  const std::string payload(size, 'x');
  natsConnection* conn = connectNats(url);
  jsCtx* js = jetStream(conn, window);
  const auto start = Clock::now();
  for (long long i = 0; i < n; ++i) {
    natsStatus s;
    // NATS_TIMEOUT: WINDOW acks are outstanding and none came within the wait; ask again.
    while ((s = js_PublishAsync(js, subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr)) ==
           NATS_TIMEOUT) {
    }
    if (s != NATS_OK) {
      std::fprintf(stderr, "publish %lld failed: %s\n", i, natsStatus_GetText(s));
      return 1;
    }
  }
  jsPubOptions done;
  jsPubOptions_Init(&done);
  done.MaxWait = 120000;
  if (js_PublishAsyncComplete(js, &done) != NATS_OK) return 1;
  const double seconds = secondsSince(start);
  if (failedPublishes > 0) {
    std::fprintf(stderr, "%ld publishes were not acknowledged\n", failedPublishes.load());
    return 1;
  }
  std::printf("%.0f\n", n / seconds);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return 0;
}

int reset(const std::string& url, const std::string& stream, const std::string& subject) {
  natsConnection* conn = connectNats(url);
  jsCtx* js = jetStream(conn, 4096);
  js_DeleteStream(js, stream.c_str(), nullptr, nullptr);  // absent the first time
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = 1;
  jsStreamInfo* info = nullptr;
  if (js_AddStream(&info, js, &cfg, nullptr, nullptr) != NATS_OK) return 1;
  jsStreamInfo_Destroy(info);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "relay" && (argc == 6 || argc == 7))
    return relay(std::atoi(argv[2]), std::atoi(argv[3]), std::atoll(argv[4]), std::strtoul(argv[5], nullptr, 10),
                 argc == 6 || std::string(argv[6]) != "written");
  if (mode == "jetstream" && argc == 7)
    return jetstreamPublish(argv[2], argv[3], std::atoll(argv[4]), std::strtoul(argv[5], nullptr, 10),
                            std::atol(argv[6]));
  if (mode == "reset" && argc == 5) return reset(argv[2], argv[3], argv[4]);
  std::fprintf(stderr, "usage: see the comment at the top of durable_ingest_bench.cpp\n");
  return 2;
}
