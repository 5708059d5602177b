// SPDX-License-Identifier: Apache-2.0
#pragma once
// CidrList: the `allow` list of a listener. IPv4 rules also match IPv4-mapped
// IPv6 peers (::ffff:a.b.c.d), as a dual-stack "[::]" listener reports them.

#include <array>
#include <string>
#include <vector>

struct sockaddr;

namespace streamrelay {

class Cidr {
 public:
  // Parses "10.0.0.0/8", "::1/128" or a bare address; throws std::invalid_argument.
  static Cidr parse(const std::string& text);
  bool contains(const std::array<unsigned char, 16>& address) const;
  const std::string& text() const { return text_; }

 private:
  std::array<unsigned char, 16> network_{};  // IPv4 as ::ffff:a.b.c.d
  int prefixBits_ = 0;                       // out of 128
  std::string text_;
};

class CidrList {
 public:
  CidrList() = default;
  explicit CidrList(std::vector<Cidr> rules) : rules_(std::move(rules)) {}
  // An empty list allows everyone.
  bool allows(const sockaddr* peer) const;
  bool empty() const { return rules_.empty(); }
  const std::vector<Cidr>& rules() const { return rules_; }

 private:
  std::vector<Cidr> rules_;
};

}  // namespace streamrelay
