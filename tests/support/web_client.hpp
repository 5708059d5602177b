// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebClient: a test's own HTTP and WebSocket client on a plain socket, byte
// by byte under the test's control, for what well-behaved libraries never
// send (malformed handshakes, unmasked frames, garbage) and to read exactly
// what the relay answers (status lines, close codes, SSE events).

#include <chrono>
#include <cstdint>
#include <string>

#include "streamrelay/wire.hpp"

namespace streamrelay::test {

class WebClient {
 public:
  // Connects to 127.0.0.1:port; `receiveBuffer` > 0 sets SO_RCVBUF (a slow reader).
  explicit WebClient(int port, int receiveBuffer = 0);
  ~WebClient();
  WebClient(const WebClient&) = delete;
  WebClient& operator=(const WebClient&) = delete;

  // A WebSocket upgrade request for `target` ("/?inputs=a") with `headers` ("Name: v\r\n...").
  static std::string upgradeRequest(const std::string& target, const std::string& headers = "");
  // Sends raw bytes; false if the relay closed the connection.
  bool send(const std::string& bytes);
  // Reads up to and including the blank line after a response's headers
  // (the bytes after it stay buffered); "" if none came in time.
  std::string readHead(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The status code of a head ("HTTP/1.1 101 ..." -> 101), or 0.
  static int statusOf(const std::string& head);
  // Opens a WebSocket: the upgrade, then checks the 101. False if refused.
  bool openWebSocket(const std::string& target, const std::string& headers = "");

  // A client frame (masked unless told not to).
  bool sendFrame(wire::WsOpcode opcode, const std::string& payload, bool masked = true);
  // Its bytes, to send several frames at once (send()).
  static std::string clientFrame(wire::WsOpcode opcode, const std::string& payload, bool masked = true);
  struct Message {
    int opcode = -1;  // -1: none came in time, or the connection ended
    std::string payload;
    int closeCode() const;  // a close frame's code (1005 if it has none)
  };
  // The next frame the relay sends.
  Message readMessage(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next message that is not a ping (pings are counted).
  Message readData(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  int pingsSeen() const { return pings_; }

  // Reads bytes until `pattern` (a substring) has arrived; returns all read
  // so far (the buffer is consumed), or "" if it did not come in time.
  std::string readUntil(const std::string& pattern, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Everything the relay sends until it closes the connection (a refusal's
  // body), or what came before `timeout`.
  std::string readToEnd(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True once the relay has closed the connection (read returns 0 or an error) within `timeout`.
  bool waitForEnd(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
  int pings_ = 0;
  bool ended_ = false;
};

}  // namespace streamrelay::test
