// SPDX-License-Identifier: Apache-2.0
#include "histogram.hpp"

#include <algorithm>
#include <cassert>

namespace streamrelay {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  assert(bounds_.size() + 1 <= kMaxBuckets && std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::record(double value, std::uint64_t count) {
  std::size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(count, std::memory_order_relaxed);
  sumMicro_.fetch_add(static_cast<std::uint64_t>(value * 1e6 * static_cast<double>(count)), std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return static_cast<double>(sumMicro_.load(std::memory_order_relaxed)) / 1e6; }

std::uint64_t Histogram::count() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) total += counts_[i].load(std::memory_order_relaxed);
  return total;
}

Histogram makeFrameSizeHistogram() {
  return Histogram({64, 256, 1024, 4096, 16384, 65536, 262144, 1048576});
}

Histogram makeLatencyHistogram() {
  return Histogram({0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1, 2.5, 10});
}

}  // namespace streamrelay
