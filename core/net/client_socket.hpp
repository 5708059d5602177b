// SPDX-License-Identifier: Apache-2.0
#pragma once
// ClientSocket: one TCP connection out, with TLS over it when asked for —
// what the tcp, websocket and streamrelay sources stream over, and what a
// lease talks to Redis on (lease/resp_client.hpp). Non-blocking; every
// wait has a deadline, and a connect or handshake gives up at once when the
// source is asked to stop.
//
// Used by one source thread only. Not copyable.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls_client.hpp"

namespace streamrelay {

class ClientSocket {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects to host:port (a name, or an IPv4 or IPv6 address without
  // brackets), then does the TLS handshake if `tls` is set, by `deadline` or
  // until `stopFd` is readable. Throws std::runtime_error with one line.
  ClientSocket(const std::string& host, int port, const TlsContext* tls, Clock::time_point deadline, int stopFd);
  ~ClientSocket();  // closes at once: call close() first to say goodbye
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;

  int fd() const { return fd_; }
  bool tls() const { return tls_ != nullptr; }
  static constexpr long kWouldBlock = -2;
  static constexpr long kFailed = -1;
  // Up to `size` bytes: > 0; 0 when the provider closed in order (FIN, or
  // with TLS its close_notify); kWouldBlock; kFailed with error().
  long read(char* data, std::size_t size);
  // Waits up to `timeoutMs` (-1: no limit) for bytes to read: Readable at
  // once when TLS holds decrypted bytes; Stopped when `stopFd` is readable.
  enum class Wait { Readable, TimedOut, Stopped };
  Wait waitReadable(int stopFd, int timeoutMs) const;
  // Waits up to `timeoutMs` for bytes, reads them into `buffer` and hands
  // each read to `take(data, size)`, which returns false to stop: one read
  // on plain TCP; with TLS (a record, at most 16 KiB, per read) until
  // OpenSSL needs more from the socket, at most kMaxReadsPerBurst, so a fast
  // provider never keeps the source thread from its timers.
  enum class Burst { Read, TimedOut, Stopped, Closed, Failed };  // Closed: in order; Failed: see error()
  static constexpr int kMaxReadsPerBurst = 64;
  template <class Take>
  Burst readBurst(std::vector<char>& buffer, int stopFd, int timeoutMs, Take&& take);
  // Sends everything by `deadline`; false with error().
  bool writeAll(std::string_view data, Clock::time_point deadline);
  // Says goodbye by `deadline`, best effort: TLS close_notify, then a FIN,
  // then reads (and drops) what the provider still sends until it closes
  // too, so that the close never turns into a reset. Idempotent.
  void close(Clock::time_point deadline);
  // "TLSv1.3, TLS_AES_256_GCM_SHA384", or "" without TLS.
  std::string describe() const { return tls_ ? tls_->describe() : std::string(); }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::unique_ptr<TlsConnection> tls_;
  bool closed_ = false;
  std::string error_;
};

template <class Take>
ClientSocket::Burst ClientSocket::readBurst(std::vector<char>& buffer, int stopFd, int timeoutMs, Take&& take) {
  switch (waitReadable(stopFd, timeoutMs)) {
    case Wait::Stopped:
      return Burst::Stopped;
    case Wait::TimedOut:
      return Burst::TimedOut;
    case Wait::Readable:
      break;
  }
  for (int reads = 0; reads < kMaxReadsPerBurst; ++reads) {
    const long n = read(buffer.data(), buffer.size());
    if (n == kWouldBlock) break;
    if (n == kFailed) return Burst::Failed;
    if (n == 0) return Burst::Closed;
    if (!take(static_cast<const char*>(buffer.data()), static_cast<std::size_t>(n)) || !tls()) break;
  }
  return Burst::Read;
}

}  // namespace streamrelay
