// SPDX-License-Identifier: Apache-2.0
#include "stop_signal.hpp"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace streamrelay {

StopSignal::StopSignal() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

StopSignal::~StopSignal() { ::close(fd_); }

void StopSignal::request() {
  std::uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof one);
  (void)n;  // only fails when the counter is already set
}

bool StopSignal::requested() const { return waitFor(std::chrono::milliseconds(0)); }

bool StopSignal::waitFor(std::chrono::milliseconds timeout) const {
  pollfd p{fd_, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Rounded up: truncated, a 1 ms wait became poll(0) and returned at once
    // (a thread pacing itself by 1 ms waits spun a core).
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count())));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
    if (rc == 0 && std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace streamrelay
