// SPDX-License-Identifier: Apache-2.0
#pragma once
// Pki: a CA and certificates signed by it, made with the openssl CLI in a
// fresh directory once per test binary: "ca" and "other-ca" (an authority
// nobody trusts), "server" (for localhost and 127.0.0.1) and "client" (for
// mutual TLS), "other-server" (like server, signed by other-ca) and "expired"
// (like server, but valid only in 2020); jwt-rsa.key/.pub sign and check
// RS256 tokens. Files:
// NAME.pem and NAME.key.

#include <string>

namespace streamrelay::test {

struct Pki {
  std::string dir;
  std::string path(const std::string& file) const { return dir + "/" + file; }
  Pki();

 private:
  void makeCa(const std::string& name);
  void makeLeaf(const std::string& name, const std::string& ca, const std::string& cn, const std::string& ext);
  void makeExpiredLeaf(const std::string& name, const std::string& ca, const std::string& cn, const std::string& ext);
};

const Pki& pki();

}  // namespace streamrelay::test
