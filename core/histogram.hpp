// SPDX-License-Identifier: Apache-2.0
#pragma once
// Histogram: counts of values in fixed buckets, for Prometheus-style
// histograms (cumulative `le` buckets are derived when rendered). Recording is
// lock-free and cheap enough for the per-batch path.
//
// Thread safe.

#include <algorithm>
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
  // Records valueOf(0..n-1), touching each shared counter once: for a batch.
  template <class ValueOf>
  void recordEach(std::size_t n, ValueOf valueOf);

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

template <class ValueOf>
void Histogram::recordEach(std::size_t n, ValueOf valueOf) {
  std::array<std::uint64_t, kMaxBuckets> local{};
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double value = valueOf(i);
    ++local[std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin()];
    sum += value;
  }
  for (std::size_t b = 0; b <= bounds_.size(); ++b)
    if (local[b]) counts_[b].fetch_add(local[b], std::memory_order_relaxed);
  sumMicro_.fetch_add(static_cast<std::uint64_t>(sum * 1e6), std::memory_order_relaxed);
}

// Frame sizes in bytes: 64 B .. 1 MiB, powers of 4.
Histogram makeFrameSizeHistogram();
// Latency in seconds: 10 us .. 10 s.
Histogram makeLatencyHistogram();

}  // namespace streamrelay
