// SPDX-License-Identifier: Apache-2.0
#pragma once
// TLS for listeners, on OpenSSL 3 driven from the writer threads' epoll loops
// (POCO 1.11's SecureServerSocket would hand-shake in blocking mode, poco#822).
//
// TlsServerContext: a listener's certificate, key and client CA, loaded once
// (at start and again on reload: sessions keep the context they started
// with). TlsServerStream: one subscriber's TLS over its non-blocking socket.
// A listener with TLS sends no byte in clear: the handshake comes first.

#include <openssl/ssl.h>
#include <sys/uio.h>

#include <memory>
#include <string>

#include "config.hpp"

namespace streamrelay {

class TlsServerContext {
 public:
  // Throws std::runtime_error (one line) if a file cannot be used.
  explicit TlsServerContext(const ListenerConfig::Tls& tls);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

class TlsServerStream {
 public:
  // Does not own fd (the session does).
  TlsServerStream(std::shared_ptr<const TlsServerContext> context, int fd);
  ~TlsServerStream();
  TlsServerStream(const TlsServerStream&) = delete;
  TlsServerStream& operator=(const TlsServerStream&) = delete;

  static constexpr long kWantRead = -2;
  static constexpr long kWantWrite = -3;
  static constexpr long kFailed = -1;
  // One step of the handshake: 1 when done, kWantRead/kWantWrite, or kFailed with error().
  long handshake();
  // Decrypted bytes: > 0; 0 when the peer closed; kWantRead/kWantWrite; kFailed.
  long read(char* data, std::size_t size);
  // Encrypts and sends from `iov`: pieces of kDirectBytes or more where they
  // lie, smaller ones gathered into `gather` (gatherSize bytes: one record).
  // Plaintext bytes sent, or kWantRead/kWantWrite (retry with at least the
  // same bytes), or kFailed.
  static constexpr std::size_t kDirectBytes = 16 * 1024;
  long writev(const iovec* iov, int count, char* gather, std::size_t gatherSize);
  // Encrypts and sends `size` bytes from `data`: the same results as writev().
  long write(const char* data, std::size_t size);
  // Sends a close_notify, so that the client reads a clean end rather than
  // a cut connection. Best effort: it never waits (on a full socket or a
  // record still half written the alert is lost), and is skipped before the
  // handshake is done or after a fatal error (where OpenSSL forbids it).
  void closeNotify();
  // "TLSv1.3, TLS_AES_256_GCM_SHA384[, client CN=...]": for the connect log line.
  std::string describe() const;
  const std::string& error() const { return error_; }

 private:
  long failure(int result, const char* step);

  std::shared_ptr<const TlsServerContext> context_;
  SSL* ssl_ = nullptr;
  std::string error_;
  bool fatal_ = false;  // SSL_ERROR_SYSCALL or SSL_ERROR_SSL seen: no close_notify
};

}  // namespace streamrelay
