// SPDX-License-Identifier: Apache-2.0
#pragma once
// StopSignal: tells a thread to stop, and lets it wait (for a deadline, or in
// poll() beside its sockets) in a way that the stop request interrupts at once.
// Thread safe.

#include <chrono>

namespace streamrelay {

class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  void request();
  bool requested() const;
  // Waits up to `timeout`; returns true if stop was requested.
  bool waitFor(std::chrono::milliseconds timeout) const;
  // Readable once stop is requested: poll it beside a socket.
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace streamrelay
