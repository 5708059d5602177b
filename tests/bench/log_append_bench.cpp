// SPDX-License-Identifier: Apache-2.0
// Frames/s a stream's log (core/log) appends on this disk with each fsync
// policy, as the writer thread does it: a group of frames encoded, one
// write, then the policy's fdatasync. Run by log-bench.sh; not a test.
//
//   log_append_bench DIR [SECONDS] [FRAME_BYTES]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "stream_log.hpp"

using namespace streamrelay;

namespace {

struct Result {
  double framesPerSecond;
  double megabytesPerSecond;
};

Result run(const std::string& dir, FsyncPolicy policy, std::size_t batchFrames, double seconds, std::size_t frameBytes) {
  std::filesystem::remove_all(dir);
  LogOptions options;
  options.dir = dir;
  options.fsync = policy;
  options.retain.bytes = 256 << 20;  // the disk is not filled by a long run
  StreamLog log("bench", options);
  const std::string payload(frameBytes, 'x');
  std::uint64_t seq = log.nextSeqAtOpen();
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::uint64_t frames = 0;
  for (auto now = start; now < end; now = std::chrono::steady_clock::now()) {
    FrameBatchBuilder builder;
    for (std::size_t i = 0; i < batchFrames; ++i) builder.add(payload.data(), payload.size());
    auto batch = builder.seal(unixNowNs());
    log.seqGate().awaitReserved(seq + batchFrames - 1);  // what the stream's publisher asks first
    batch->assignFirstSeq(seq);
    log.append(*batch, 0, batchFrames);
    log.flush();
    log.tick(now);
    seq += batchFrames;
    frames += batchFrames;
  }
  log.close();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::filesystem::remove_all(dir);
  return {frames / elapsed, frames * (frameBytes + 32.0) / elapsed / 1e6};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: log_append_bench DIR [SECONDS] [FRAME_BYTES]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3;
  const std::size_t frameBytes = argc > 3 ? static_cast<std::size_t>(std::atol(argv[3])) : 128;
  std::printf("| fsync | frames per write | frames/s | MB/s |\n|---|---|---|---|\n");
  const struct {
    const char* name;
    FsyncPolicy policy;
  } policies[] = {{"never", FsyncPolicy::Never}, {"every_ms: 100", FsyncPolicy::EveryMs}, {"always", FsyncPolicy::Always}};
  for (const auto& p : policies)
    for (std::size_t batch : {1, 100}) {
      const Result r = run(dir, p.policy, batch, seconds, frameBytes);
      std::printf("| %s | %zu | %.0f | %.1f |\n", p.name, batch, r.framesPerSecond, r.megabytesPerSecond);
      std::fflush(stdout);
    }
  return 0;
}
