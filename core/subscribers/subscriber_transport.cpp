// SPDX-License-Identifier: Apache-2.0
#include "subscriber_transport.hpp"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

namespace streamrelay {

SubscriberTransport::SubscriberTransport(int fd, std::shared_ptr<const TlsServerContext> tls) : fd_(fd) {
  if (tls) tls_ = std::make_unique<TlsServerStream>(std::move(tls), fd_);
}

SubscriberTransport::~SubscriberTransport() { close(); }

SubscriberTransport::Handshake SubscriberTransport::handshake() {
  if (!tls_) return Handshake::Done;
  const long step = tls_->handshake();
  if (step == TlsServerStream::kWantRead) return Handshake::WantRead;
  if (step == TlsServerStream::kWantWrite) return Handshake::WantWrite;
  if (step == TlsServerStream::kFailed) {
    error_ = tls_->error();
    failure_ = CloseReason::TlsFailed;
    return Handshake::Failed;
  }
  return Handshake::Done;
}

long SubscriberTransport::send(const iovec* iov, int count, WriteScratch& scratch) {
  if (tls_) return tlsResult(tls_->writev(iov, count, scratch.tlsPlain, WriteScratch::kTlsChunk));
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<std::size_t>(count);
  long written;
  do written = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (written < 0 && errno == EINTR);
  return plainResult(written);
}

long SubscriberTransport::send(const char* data, std::size_t size) {
  if (tls_) return tlsResult(tls_->write(data, size));
  long written;
  do written = ::send(fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (written < 0 && errno == EINTR);
  return plainResult(written);
}

long SubscriberTransport::tlsResult(long written) {
  if (written == TlsServerStream::kWantRead || written == TlsServerStream::kWantWrite) {
    retryPending_ = true;
    return kWouldBlock;
  }
  if (written == TlsServerStream::kFailed) {
    error_ = tls_->error();
    failure_ = CloseReason::WriteError;
    return kFailed;
  }
  if (written > 0) retryPending_ = false;
  return written;
}

long SubscriberTransport::plainResult(long written) {
  if (written >= 0) return written;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
  failure_ = (errno == EPIPE || errno == ECONNRESET) ? CloseReason::PeerClosed : CloseReason::WriteError;
  return kFailed;
}

long SubscriberTransport::receive(char* data, std::size_t size) {
  if (tls_) {
    const long n = tls_->read(data, size);
    if (n == TlsServerStream::kWantRead || n == TlsServerStream::kWantWrite) return kWouldBlock;
    return n == TlsServerStream::kFailed ? kFailed : n;
  }
  ssize_t n;
  do n = ::recv(fd_, data, size, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
}

std::string SubscriberTransport::describe() const { return tls_ ? tls_->describe() : std::string(); }

void SubscriberTransport::close() {
  if (fd_ < 0) return;
  if (tls_) tls_->closeNotify();
  ::close(fd_);
  fd_ = -1;
}

}  // namespace streamrelay
