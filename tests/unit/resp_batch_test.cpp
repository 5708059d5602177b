// SPDX-License-Identifier: Apache-2.0
// RespBatch, the redis sink's pipeline: what it writes, and a limited write
// (the first frame alone on a new connection) leaving the rest for later.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "redis/resp_batch.hpp"

using streamrelay::Frame;
using streamrelay::Retained;
using streamrelay::plugins::RespBatch;

namespace {

// Everything readable on `fd` now.
std::string readAll(int fd) {
  std::string got;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;) got.append(buffer, static_cast<std::size_t>(n));
  return got;
}

}  // namespace

TEST_CASE("resp batch: a limited write sends the first frames only, in order, and the rest on the next write", "[unit][redis]") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  RespBatch batch(RespBatch::Mode::Publish, 0);
  const std::string payloads[] = {"one", "two", "three"};
  for (std::uint64_t seq = 1; seq <= 3; ++seq)
    batch.add(Frame{payloads[seq - 1], seq, 0, "s", 1, nullptr, {}}, "chan", Retained());
  const std::string all = batch.unwrittenBytes();
  std::string error;
  REQUIRE(batch.writeUnwritten(fds[0], error, 1));
  CHECK(batch.written() == 1);
  CHECK(batch.unwritten() == 2);
  const std::string first = readAll(fds[1]);
  CHECK(first == "*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$3\r\none\r\n");
  REQUIRE(batch.writeUnwritten(fds[0], error));
  CHECK(batch.unwritten() == 0);
  CHECK(first + readAll(fds[1]) == all);  // nothing twice, nothing left out
  batch.rewind();                          // a new connection: all again
  REQUIRE(batch.writeUnwritten(fds[0], error, 2));
  CHECK(batch.written() == 2);
  CHECK(readAll(fds[1]) == all.substr(0, all.find("*3", first.size() + 1)));
  ::close(fds[0]);
  ::close(fds[1]);
}
