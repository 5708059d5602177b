// SPDX-License-Identifier: Apache-2.0
#include "tls_client.hpp"
#include "tls_error.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <stdexcept>

namespace streamrelay {

namespace {

bool isIpAddress(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// Waits for the socket to be readable or writable, as OpenSSL asked; false
// at the deadline or once `stopFd` (if >= 0) is readable.
bool waitFor(int fd, int sslError, std::chrono::steady_clock::time_point deadline, int stopFd = -1) {
  pollfd p[2] = {{fd, static_cast<short>(sslError == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0},
                 {stopFd, POLLIN, 0}};
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int rc = ::poll(p, stopFd >= 0 ? 2 : 1, static_cast<int>(left.count()));
    if (rc > 0) return p[1].revents == 0;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

TlsOptions TlsOptions::from(const Settings& tls, bool enabledByUrl) {
  TlsOptions o;
  o.enabled = tls.has("enabled") ? tls.boolean("enabled") : enabledByUrl;
  o.caFile = tls.string("ca_file");
  o.certFile = tls.string("cert_file");
  o.keyFile = tls.string("key_file");
  if (tls.has("server_name")) o.serverName = tls.string("server_name");
  o.verify = tls.boolean("verify");
  return o;
}

TlsContext::TlsContext(const TlsOptions& options) : options_(options) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) throw std::runtime_error("tls: " + openSslError("cannot create a context"));
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  auto fail = [&](const std::string& what) {
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error("tls: " + what);
  };
  if (!options.caFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, options.caFile.c_str(), nullptr) != 1)
      fail("ca_file " + options.caFile + ": " + openSslError("not a PEM certificate"));
  } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
    fail("the system trust store: " + openSslError("cannot be loaded"));
  }
  if (!options.certFile.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, options.certFile.c_str()) != 1)
      fail("cert_file " + options.certFile + ": " + openSslError("not a PEM certificate"));
    if (SSL_CTX_use_PrivateKey_file(ctx_, options.keyFile.c_str(), SSL_FILETYPE_PEM) != 1)
      fail("key_file " + options.keyFile + ": " + openSslError("not a PEM private key"));
    if (SSL_CTX_check_private_key(ctx_) != 1) fail("key_file " + options.keyFile + " does not match cert_file");
  }
  SSL_CTX_set_verify(ctx_, options.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

TlsConnection::TlsConnection(const TlsContext& context, int fd, const std::string& host,
                             std::chrono::steady_clock::time_point deadline, int stopFd)
    : fd_(fd) {
  ssl_ = SSL_new(context.get());
  if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) {
    if (ssl_) SSL_free(ssl_);
    throw std::runtime_error("TLS: " + openSslError("cannot set up the connection"));
  }
  const std::string name = context.options().serverName.empty() ? host : context.options().serverName;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  if (isIpAddress(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI: only for names
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }
  for (;;) {
    ERR_clear_error();
    int rc = SSL_connect(ssl_);
    if (rc == 1) return;
    int e = SSL_get_error(ssl_, rc);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && waitFor(fd, e, deadline, stopFd)) continue;
    std::string why;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) why = "timed out (or stopped)";
    else if (long verdict = SSL_get_verify_result(ssl_); verdict != X509_V_OK)
      why = std::string("certificate rejected: ") + X509_verify_cert_error_string(verdict) + " (for '" + name + "')";
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
      why = openSslError("the peer closed the connection");
    else
      why = openSslError("failed");
    SSL_free(ssl_);
    throw std::runtime_error("TLS handshake: " + why);
  }
}

TlsConnection::~TlsConnection() {
  if (!ssl_) return;
  SSL_set_quiet_shutdown(ssl_, 1);  // sendCloseNotify() said goodbye, if anyone did
  SSL_free(ssl_);
}

bool TlsConnection::sendCloseNotify(std::chrono::steady_clock::time_point deadline) {
  if (broken_) return false;
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_shutdown(ssl_);
    if (rc >= 0) return true;  // 0: ours is sent (the peer's is not awaited); 1: both
    const int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_WANT_WRITE && waitFor(fd_, e, deadline)) continue;
    broken_ = true;
    return e == SSL_ERROR_WANT_READ;  // sent; OpenSSL would read the peer's next
  }
}

long TlsConnection::read(char* data, std::size_t size) {
  ERR_clear_error();
  int n = SSL_read(ssl_, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
  if (n > 0) return n;
  switch (SSL_get_error(ssl_, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // renegotiation or a key update: poll and read again
      return kWouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      broken_ = true;
      error_ = openSslError(errno ? std::string("read error: ") + strerror(errno)
                                  : "connection closed without close_notify");
      return kFailed;
    default:
      broken_ = true;
      error_ = openSslError("TLS error");
      return kFailed;
  }
}

bool TlsConnection::writeAll(std::string_view data, std::chrono::steady_clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data.data() + sent, static_cast<int>(data.size() - sent));
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && waitFor(fd_, e, deadline)) continue;
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) broken_ = true;
    error_ = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? "write timed out" : openSslError("write failed");
    return false;
  }
  return true;
}

std::string TlsConnection::describe() const {
  return std::string(SSL_get_version(ssl_)) + ", " + SSL_get_cipher_name(ssl_);
}

}  // namespace streamrelay
