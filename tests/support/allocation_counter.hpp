// SPDX-License-Identifier: Apache-2.0
#pragma once
// AllocationCounter: counts the calls to the global operator new made by this
// thread while it is alive, to prove that a hot path allocates nothing.
// allocation_counter.cpp replaces operator new and delete for the whole test
// binary that links it; outside a counter's life they only forward to malloc
// and free. Not nestable; one per thread at a time.

#include <cstddef>

namespace streamrelay {
namespace test {

class AllocationCounter {
 public:
  AllocationCounter();
  ~AllocationCounter();
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;

  std::size_t allocations() const;
};

}  // namespace test
}  // namespace streamrelay
