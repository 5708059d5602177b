// SPDX-License-Identifier: Apache-2.0
#pragma once
// ThreadOwner: the thread that may call an object's owner-only methods, and
// the check of that rule where the comment states it (muduo's
// EventLoop::assertInLoopThread).
//
// The owner is the thread that constructed the object until another claims
// it. A thread claims what it will own when it starts; whoever takes over
// after that thread has ended (joined, or known to be done) claims again.
// Ownership is handed over, never shared: between two claims exactly one
// thread may call the owner-only methods.
//
// assertOwned() aborts with a line naming the method in builds with
// assertions (STREAMRELAY_ASSERTIONS, or any build without NDEBUG); in
// release builds it is nothing. claim() costs one relaxed store in every
// build, and the layout is the same in both.
//
// Thread safe. claim() does not order the object's other state: the handover
// it records must already be ordered (a thread's start, a join, a lock).

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace streamrelay {

class ThreadOwner {
 public:
  ThreadOwner() : owner_(std::this_thread::get_id()) {}
  ThreadOwner(const ThreadOwner&) = delete;
  ThreadOwner& operator=(const ThreadOwner&) = delete;

  // The calling thread owns the object from now on.
  void claim() { owner_.store(std::this_thread::get_id(), std::memory_order_relaxed); }
  bool ownedByThisThread() const { return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(); }

#ifdef NDEBUG
  void assertOwned(const char* = nullptr) const {}
#else
  // `caller` defaults to the calling function's name (GCC and Clang).
  void assertOwned(const char* caller = __builtin_FUNCTION()) const {
    if (!ownedByThisThread()) violated(caller);
  }
#endif

 private:
  [[noreturn]] static void violated(const char* caller) {
    std::fprintf(stderr, "streamrelay: assertion failed: %s called from a thread that does not own the object\n",
                 caller ? caller : "(unknown)");
    std::fflush(stderr);
    std::abort();
  }

  std::atomic<std::thread::id> owner_;
};

}  // namespace streamrelay
