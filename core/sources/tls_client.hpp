// SPDX-License-Identifier: Apache-2.0
#pragma once
// TLS for sources that connect out (tcp now; http and websocket later), on
// OpenSSL 3 directly: the sources own their sockets and poll loops, and
// OpenSSL on a plain fd fits that model without a second socket layer.
//
// TlsContext is built once per source at start (a bad certificate file is a
// start-up error); a TlsConnection is one handshake on one connected socket.
// Both are used by the source's own thread only.

#include <openssl/ssl.h>

#include <chrono>
#include <string>

#include "schema.hpp"

namespace streamrelay {

struct TlsOptions {
  bool enabled = false;
  std::string caFile;      // empty: the system's trust store
  std::string certFile;    // a client certificate (mutual TLS), with keyFile
  std::string keyFile;
  std::string serverName;  // checked against the certificate; empty: the host connected to
  bool verify = true;      // false: the provider's certificate is NOT checked (warned at start)

  static TlsOptions from(const Settings& tls);
};

class TlsContext {
 public:
  // Throws std::runtime_error (one line) if a file cannot be used.
  explicit TlsContext(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const TlsOptions& options() const { return options_; }
  SSL_CTX* get() const { return ctx_; }

 private:
  TlsOptions options_;
  SSL_CTX* ctx_ = nullptr;
};

class TlsConnection {
 public:
  // Makes `fd` non-blocking and completes the handshake by `deadline`,
  // checking the certificate against `host` (or options.serverName).
  // Throws std::runtime_error with one line saying what failed. Does not own fd.
  TlsConnection(const TlsContext& context, int fd, const std::string& host,
                std::chrono::steady_clock::time_point deadline);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  static constexpr long kWouldBlock = -2;
  static constexpr long kFailed = -1;
  // Up to `size` decrypted bytes: > 0; 0 at a clean close (close_notify);
  // kWouldBlock when it needs more from the socket; kFailed with error().
  long read(char* data, std::size_t size);
  // Sends everything by `deadline`; false with error().
  bool writeAll(const std::string& data, std::chrono::steady_clock::time_point deadline);
  // Bytes decrypted and waiting inside OpenSSL (read them before polling).
  bool pending() const { return SSL_pending(ssl_) > 0; }
  // "TLSv1.3, TLS_AES_256_GCM_SHA384": for the connect log line.
  std::string describe() const;
  const std::string& error() const { return error_; }

 private:
  SSL* ssl_ = nullptr;
  int fd_;
  std::string error_;
};

}  // namespace streamrelay
