#pragma once
// Histogram: counts of values in fixed buckets, for Prometheus-style
// histograms (cumulative `le` buckets are derived when rendered). Recording is
// lock-free and cheap enough for the per-batch path.
//
// Thread safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace streamrelay {

class Histogram {
 public:
  // Upper bounds of the buckets, ascending; values above the last land in +Inf.
  explicit Histogram(std::vector<double> bounds);
  void record(double value, std::uint64_t count = 1);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket counts (not cumulative); the last entry is +Inf.
  std::vector<std::uint64_t> counts() const;
  double sum() const;
  std::uint64_t count() const;

 private:
  static constexpr std::size_t kMaxBuckets = 32;
  std::vector<double> bounds_;
  std::array<std::atomic<std::uint64_t>, kMaxBuckets> counts_{};
  std::atomic<std::uint64_t> sumMicro_{0};  // sum in millionths: atomics have no double add
};

// Frame sizes in bytes: 64 B .. 1 MiB, powers of 4.
Histogram makeFrameSizeHistogram();
// Latency in seconds: 10 us .. 10 s.
Histogram makeLatencyHistogram();

}  // namespace streamrelay
