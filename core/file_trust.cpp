// SPDX-License-Identifier: Apache-2.0
#include "file_trust.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace streamrelay {

std::string untrustedBecause(const std::string& path, const struct stat& st) {
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + " is writable by group or others (mode " + mode + ")";
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return path + " is owned by uid " + std::to_string(st.st_uid) + ", not by this user or root";
  return "";
}

std::string readTrustedFile(const std::string& path, bool allowUntrusted, std::size_t maxBytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw std::runtime_error("'" + path + "' is not a regular file");
  if (!allowUntrusted)
    if (const std::string why = untrustedBecause(path, st); !why.empty()) throw UntrustedFileError(why);
  if (static_cast<std::size_t>(st.st_size) > maxBytes)
    throw std::runtime_error("'" + path + "' is larger than " + std::to_string(maxBytes) + " bytes");
  std::string text;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
    if (n == 0) return text;
    if (text.size() + static_cast<std::size_t>(n) > maxBytes)  // it grew while being read
      throw std::runtime_error("'" + path + "' is larger than " + std::to_string(maxBytes) + " bytes");
    text.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace streamrelay
