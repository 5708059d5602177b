// SPDX-License-Identifier: Apache-2.0
#pragma once
// TLS for sources that connect out, on OpenSSL 3 directly: the tcp,
// websocket and streamrelay sources own their sockets and poll loops
// (client_socket.hpp), and OpenSSL on a plain fd fits that model without a
// second socket layer. The http source hands the same TlsOptions to libcurl.
//
// TlsContext is built once per source at start (a bad certificate file is a
// start-up error); a TlsConnection is one handshake on one connected socket.
// Both are used by the source's own thread only.

#include <openssl/ssl.h>

#include <chrono>
#include <string>
#include <string_view>

#include "schema.hpp"

namespace streamrelay {

struct TlsOptions {
  bool enabled = false;
  std::string caFile;      // empty: the system's trust store
  std::string certFile;    // a client certificate (mutual TLS), with keyFile
  std::string keyFile;
  std::string serverName;  // checked against the certificate; empty: the host connected to
  bool verify = true;      // false: the provider's certificate is NOT checked (warned at start)

  // The one reading of a connecting source's `tls` group. `enabledByUrl`:
  // whether its URLs ask for TLS (https://, wss://), for the groups that
  // have no `enabled` key.
  static TlsOptions from(const Settings& tls, bool enabledByUrl);
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
  // Completes the handshake on the non-blocking `fd` by `deadline` (or until
  // `stopFd` is readable), checking the certificate against `host` (or
  // options.serverName). Throws std::runtime_error with one line saying what
  // failed. Does not own fd.
  TlsConnection(const TlsContext& context, int fd, const std::string& host,
                std::chrono::steady_clock::time_point deadline, int stopFd = -1);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  static constexpr long kWouldBlock = -2;
  static constexpr long kFailed = -1;
  // Up to `size` decrypted bytes: > 0; 0 at a clean close (close_notify);
  // kWouldBlock when it needs more from the socket; kFailed with error().
  long read(char* data, std::size_t size);
  // Sends everything by `deadline`; false with error().
  bool writeAll(std::string_view data, std::chrono::steady_clock::time_point deadline);
  // Sends close_notify by `deadline` (without waiting for the peer's): false
  // if it could not go, or the connection is already broken. Without it the
  // destructor leaves silently.
  bool sendCloseNotify(std::chrono::steady_clock::time_point deadline);
  // Bytes decrypted and waiting inside OpenSSL (read them before polling).
  bool pending() const { return SSL_pending(ssl_) > 0; }
  // "TLSv1.3, TLS_AES_256_GCM_SHA384": for the connect log line.
  std::string describe() const;
  const std::string& error() const { return error_; }

 private:
  SSL* ssl_ = nullptr;
  int fd_;
  bool broken_ = false;  // a fatal error: OpenSSL forbids SSL_shutdown after one
  std::string error_;
};

}  // namespace streamrelay
