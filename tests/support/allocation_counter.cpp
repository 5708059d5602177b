// SPDX-License-Identifier: Apache-2.0
#include "allocation_counter.hpp"

#include <cstdlib>
#include <new>

namespace {

thread_local bool counting = false;
thread_local std::size_t allocationsCounted = 0;

void* allocate(std::size_t size) {
  if (counting) ++allocationsCounted;
  void* memory = std::malloc(size == 0 ? 1 : size);
  if (!memory) throw std::bad_alloc();
  return memory;
}

void* allocateNoThrow(std::size_t size) noexcept {
  if (counting) ++allocationsCounted;
  return std::malloc(size == 0 ? 1 : size);
}

}  // namespace

namespace streamrelay {
namespace test {

AllocationCounter::AllocationCounter() {
  allocationsCounted = 0;
  counting = true;
}

AllocationCounter::~AllocationCounter() { counting = false; }

std::size_t AllocationCounter::allocations() const { return allocationsCounted; }

}  // namespace test
}  // namespace streamrelay

// The aligned forms (std::align_val_t) are left to the library: they use their
// own allocation and release functions, so no pair is mixed.
void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocateNoThrow(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocateNoThrow(size); }
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
