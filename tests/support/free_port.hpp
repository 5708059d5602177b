// SPDX-License-Identifier: Apache-2.0
#pragma once
// freePort(): for tests that start a server of another project (redis-server,
// nats-server), which must be told its port rather than asked for it.
// Catch2 assertions inside: include only from test files.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace streamrelay::test {

// `count` different loopback ports nobody listens on now: each is held
// until all are chosen, so two calls of one test never get the same port.
// (The server that takes a port binds it a moment later; another process
// taking it meanwhile fails the test loudly.)
inline std::vector<int> freePorts(int count) {
  std::vector<int> held, ports;
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0);
    held.push_back(fd);
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : held) ::close(fd);
  return ports;
}

inline int freePort() { return freePorts(1).front(); }

}  // namespace streamrelay::test
