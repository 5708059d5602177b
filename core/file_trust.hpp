// SPDX-License-Identifier: Apache-2.0
#pragma once
// Whether the relay may trust what a file says: code it loads (plugins and
// their sidecars) and credentials it admits clients with (tokens files, JWT
// public keys). One rule for all of them, so that it reads the same
// everywhere: the file is not writable by group or others, and it is owned
// by the user the relay runs as or by root. Anyone else who can change such
// a file can run code in the relay or let themselves in.
//
// Thread safe (no state).

#include <sys/stat.h>

#include <stdexcept>
#include <string>

namespace streamrelay {

// A file that exists but may not be trusted.
struct UntrustedFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Empty if a file with this stat may be trusted, else why not (one line
// naming `path`, e.g. "/etc/x is writable by group or others (mode 0666)").
std::string untrustedBecause(const std::string& path, const struct stat& st);

// Reads a whole file of credentials after checking, on the open descriptor,
// that it may be trusted (no window between the check and the read), unless
// `allowUntrusted`. At most `maxBytes` are read. Throws UntrustedFileError if
// it may not be trusted, std::runtime_error if it cannot be read or is larger
// than `maxBytes`: one line naming `path`.
std::string readTrustedFile(const std::string& path, bool allowUntrusted, std::size_t maxBytes);

}  // namespace streamrelay
