// SPDX-License-Identifier: Apache-2.0
#include "web_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "relay_fixture.hpp"

namespace streamrelay::test {

WebClient::WebClient(int port, int receiveBuffer) : fd_(connectLoopback(port, receiveBuffer)) {}

WebClient::~WebClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::string WebClient::upgradeRequest(const std::string& target, const std::string& headers) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + headers + "\r\n";
}

bool WebClient::send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

bool WebClient::fill(std::chrono::steady_clock::time_point deadline) {
  if (ended_) return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd p{fd_, POLLIN, 0};
  if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char chunk[65536];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) {
    ended_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::string WebClient::readHead(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::size_t end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = buffer_.substr(0, end + 4);
      buffer_.erase(0, end + 4);
      return head;
    }
    if (!fill(deadline)) return "";
  }
}

int WebClient::statusOf(const std::string& head) {
  if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) return 0;
  return std::stoi(head.substr(9, 3));
}

bool WebClient::openWebSocket(const std::string& target, const std::string& headers) {
  return send(upgradeRequest(target, headers)) && statusOf(readHead()) == 101;
}

bool WebClient::sendFrame(wire::WsOpcode opcode, const std::string& payload, bool masked) {
  return send(clientFrame(opcode, payload, masked));
}

std::string WebClient::clientFrame(wire::WsOpcode opcode, const std::string& payload, bool masked) {
  static std::mt19937 random{4711};
  unsigned char mask[4];
  for (unsigned char& b : mask) b = static_cast<unsigned char>(random());
  char header[wire::kMaxWsHeaderBytes];
  std::string frame(header, wire::writeWsHeader(header, opcode, payload.size(), masked ? mask : nullptr));
  const std::size_t at = frame.size();
  frame += payload;
  if (masked) wire::applyWsMask(&frame[at], payload.size(), mask);
  return frame;
}

int WebClient::Message::closeCode() const {
  if (payload.size() < 2) return 1005;
  return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
}

WebClient::Message WebClient::readMessage(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (buffer_.size() >= 2) {
      const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.data());
      const std::size_t headerBytes = wire::wsHeaderBytes(bytes[0], bytes[1]);
      if (buffer_.size() >= headerBytes) {
        const wire::WsHeader h = wire::readWsHeader(bytes);
        if (buffer_.size() >= headerBytes + h.payloadBytes) {
          Message m;
          m.opcode = h.opcode;
          m.payload = buffer_.substr(headerBytes, h.payloadBytes);
          buffer_.erase(0, headerBytes + h.payloadBytes);
          return m;
        }
      }
    }
    if (!fill(deadline)) return {};
  }
}

WebClient::Message WebClient::readData(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Message m = readMessage(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (m.opcode != static_cast<int>(wire::WsOpcode::Ping)) return m;
    ++pings_;
  }
}

std::string WebClient::readUntil(const std::string& pattern, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffer_.find(pattern) == std::string::npos)
    if (!fill(deadline)) return "";
  std::string all;
  all.swap(buffer_);
  return all;
}

std::string WebClient::readToEnd(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fill(deadline)) {
  }
  std::string all;
  all.swap(buffer_);
  return all;
}

bool WebClient::waitForEnd(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ended_) {
    buffer_.clear();
    if (!fill(deadline) && !ended_) return false;
  }
  return true;
}

}  // namespace streamrelay::test
