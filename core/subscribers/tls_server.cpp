// SPDX-License-Identifier: Apache-2.0
#include "tls_server.hpp"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "tls_error.hpp"

namespace streamrelay {

TlsServerContext::TlsServerContext(const ListenerConfig::Tls& tls) {
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_) throw std::runtime_error("tls: " + openSslError("cannot create a context"));
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // Partial writes: SSL_write returns once whole records are out, so the
  // writer counts what was sent; the retry after WANT_WRITE is rebuilt from
  // the session's queue (same bytes, maybe more, at another address).
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A peer that drops the connection without close_notify is a closed peer,
  // not an error; renegotiation is a way to make the relay work for nothing.
  SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Every subscriber's frames are encrypted separately: the relay picks
  // AES-128-GCM first (TLS 1.3's mandatory suite, the fastest with AES-NI;
  // Go's TLS, and so NATS, prefers it too), then OpenSSL's usual order.
  SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  auto fail = [&](const std::string& what) {
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error(what + ": " + openSslError("unknown error"));
  };
  if (SSL_CTX_use_certificate_chain_file(ctx_, tls.certFile.c_str()) != 1)
    fail("tls.cert_file '" + tls.certFile + "'");
  if (SSL_CTX_use_PrivateKey_file(ctx_, tls.keyFile.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("tls.key_file '" + tls.keyFile + "'");
  if (SSL_CTX_check_private_key(ctx_) != 1) fail("tls.key_file '" + tls.keyFile + "' does not match cert_file");
  if (!tls.clientCaFile.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, tls.clientCaFile.c_str(), nullptr) != 1)
      fail("tls.client_ca_file '" + tls.clientCaFile + "'");
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.clientCaFile.c_str()))
      SSL_CTX_set_client_CA_list(ctx_, names);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | (tls.requireClientCert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  }
}

TlsServerContext::~TlsServerContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

TlsServerStream::TlsServerStream(std::shared_ptr<const TlsServerContext> context, int fd)
    : context_(std::move(context)), ssl_(SSL_new(context_->get())) {
  if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) throw std::runtime_error("tls: " + openSslError("cannot create a session"));
  SSL_set_accept_state(ssl_);
}

TlsServerStream::~TlsServerStream() { SSL_free(ssl_); }

long TlsServerStream::failure(int result, const char* step) {
  const int code = SSL_get_error(ssl_, result);
  if (code == SSL_ERROR_WANT_READ) return kWantRead;
  if (code == SSL_ERROR_WANT_WRITE) return kWantWrite;
  if (code == SSL_ERROR_ZERO_RETURN) return 0;
  fatal_ = true;
  if (code == SSL_ERROR_SYSCALL) {
    const int saved = errno;
    ERR_clear_error();
    if (saved == 0 || saved == ECONNRESET || saved == EPIPE) {
      error_ = std::string(step) + ": the peer closed the connection";
      return kFailed;
    }
    error_ = std::string(step) + ": " + std::strerror(saved);
    return kFailed;
  }
  const unsigned long err = ERR_peek_error();
  const char* reason = err ? ERR_reason_error_string(err) : nullptr;
  error_ = std::string(step) + ": " + (reason ? reason : openSslError("TLS error"));
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) error_ += std::string(" (client certificate: ") + X509_verify_cert_error_string(verify) + ")";
  ERR_clear_error();
  return kFailed;
}

long TlsServerStream::handshake() {
  ERR_clear_error();
  const int result = SSL_do_handshake(ssl_);
  if (result == 1) return 1;
  const long status = failure(result, "TLS handshake");
  return status == 0 ? kFailed : status;
}

long TlsServerStream::read(char* data, std::size_t size) {
  ERR_clear_error();
  const int result = SSL_read(ssl_, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
  return result > 0 ? result : failure(result, "read");
}

long TlsServerStream::write(const char* data, std::size_t size) {
  ERR_clear_error();
  const int result = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
  if (result > 0) return result;
  const long status = failure(result, "write");
  return status == 0 ? kFailed : status;
}

// Large pieces (a run of frames in wire form) are encrypted where they lie;
// small ones (headers, short frames) are gathered into full records first.
// Either way a retry after WANT_WRITE rebuilds the same first write: the
// same bytes, perhaps more of them, as OpenSSL asks.
long TlsServerStream::writev(const iovec* iov, int count, char* gather, std::size_t gatherSize) {
  long total = 0;
  std::size_t gathered = 0;
  // Sends what is gathered; false when the socket took less (stop there).
  auto sendGathered = [&]() {
    const long n = write(gather, gathered);
    if (n > 0) total += n;
    const bool all = n == static_cast<long>(gathered);
    gathered = 0;
    return all ? 0L : (total > 0 ? total : n);
  };
  for (int i = 0; i < count; ++i) {
    const char* base = static_cast<const char*>(iov[i].iov_base);
    const std::size_t len = iov[i].iov_len;
    if (len >= kDirectBytes) {
      if (gathered > 0)
        if (const long stop = sendGathered()) return stop;
      const long n = write(base, len);
      if (n <= 0) return total > 0 ? total : n;
      total += n;
      if (static_cast<std::size_t>(n) < len) return total;
      continue;
    }
    if (gathered + len > gatherSize)
      if (const long stop = sendGathered()) return stop;
    std::memcpy(gather + gathered, base, len);
    gathered += len;
  }
  if (gathered > 0)
    if (const long stop = sendGathered()) return stop;
  return total;
}

void TlsServerStream::closeNotify() {
  if (fatal_ || !SSL_is_init_finished(ssl_)) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // the socket is non-blocking: one attempt, whatever it returns
  ERR_clear_error();
}

std::string TlsServerStream::describe() const {
  std::string text = std::string(SSL_get_version(ssl_)) + ", " + SSL_get_cipher_name(ssl_);
  if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
    char name[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
    text += std::string(", client CN=") + name;
    X509_free(peer);
  }
  return text;
}

}  // namespace streamrelay
