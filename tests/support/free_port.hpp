// SPDX-License-Identifier: Apache-2.0
#pragma once
// freePort(): for tests that start a server of another project (redis-server,
// nats-server), which must be told its port rather than asked for it.
// Catch2 assertions inside: include only from test files.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace streamrelay::test {

// A loopback port nobody listens on now (the server that takes it binds it
// a moment later; another process taking it meanwhile fails the test loudly).
inline int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace streamrelay::test
