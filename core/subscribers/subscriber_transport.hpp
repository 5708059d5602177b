// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberTransport: the byte stream under a subscriber's protocol — a
// connected non-blocking socket, plain or through TLS (tls_server.hpp).
// Every protocol runs over either; nothing above this file knows which.
//
// Owned by one SubscriberSession and used only by its writer thread.

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>

#include "subscription_queue.hpp"
#include "tls_server.hpp"

namespace streamrelay {

// Scratch space for building one write; owned by a writer thread, shared by
// all of its sessions.
struct WriteScratch {
  static constexpr int kMaxIov = 1024;  // IOV_MAX on Linux
  iovec iov[kMaxIov];
  // TLS: small pieces gathered into one full record (16 KiB) before they are encrypted.
  static constexpr std::size_t kTlsChunk = 16 * 1024;
  char tlsPlain[kTlsChunk];
};

class SubscriberTransport {
 public:
  // Takes ownership of `fd`. `tls` null: plain TCP.
  SubscriberTransport(int fd, std::shared_ptr<const TlsServerContext> tls);
  ~SubscriberTransport();
  SubscriberTransport(const SubscriberTransport&) = delete;
  SubscriberTransport& operator=(const SubscriberTransport&) = delete;

  static constexpr long kWouldBlock = -2;
  static constexpr long kFailed = -1;

  int fd() const { return fd_; }
  bool tls() const { return tls_ != nullptr; }

  // TLS: one step of the handshake (plain TCP: Done at once).
  enum class Handshake { Done, WantRead, WantWrite, Failed };
  Handshake handshake();
  // Bytes written (> 0), kWouldBlock, or kFailed (failure() says why).
  long send(const iovec* iov, int count, WriteScratch& scratch);
  long send(const char* data, std::size_t size);
  // Bytes read (> 0), 0 when the peer has shut its side, kWouldBlock, or kFailed.
  long receive(char* data, std::size_t size);
  // True after a send that returned kWouldBlock through TLS and before one
  // that wrote: the next send must start with the same bytes (OpenSSL's
  // write retry), so nothing may be sent ahead of them.
  bool retryPending() const { return retryPending_; }
  // Why the last send or the handshake failed: WriteError or PeerClosed,
  // TlsFailed; error() in words (no secret).
  CloseReason failure() const { return failure_; }
  const std::string& error() const { return error_; }
  // "TLSv1.3, TLS_AES_256_GCM_SHA384[, client CN=...]"; "" for plain TCP.
  std::string describe() const;
  // Ends the connection: a TLS close_notify (best effort, never waiting),
  // then the socket is closed. Idempotent.
  void close();

 private:
  long tlsResult(long written);
  long plainResult(long written);

  int fd_;
  std::unique_ptr<TlsServerStream> tls_;
  bool retryPending_ = false;
  CloseReason failure_ = CloseReason::None;
  std::string error_;
};

}  // namespace streamrelay
