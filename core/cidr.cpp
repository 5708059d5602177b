// SPDX-License-Identifier: Apache-2.0
#include "cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

namespace streamrelay {

namespace {
using Address = std::array<unsigned char, 16>;

Address mappedV4(const void* v4) {
  Address a{};
  a[10] = a[11] = 0xff;
  std::memcpy(a.data() + 12, v4, 4);
  return a;
}
}  // namespace

Cidr Cidr::parse(const std::string& text) {
  Cidr cidr;
  cidr.text_ = text;
  auto slash = text.find('/');
  std::string host = text.substr(0, slash);
  unsigned char raw[16];
  int maxBits;
  if (inet_pton(AF_INET, host.c_str(), raw) == 1) {
    cidr.network_ = mappedV4(raw);
    maxBits = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), raw) == 1) {
    std::memcpy(cidr.network_.data(), raw, 16);
    maxBits = 128;
  } else {
    throw std::invalid_argument("'" + text + "' is not an IP address or CIDR block");
  }
  int bits = maxBits;
  if (slash != std::string::npos) {
    std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(len) > maxBits)
      throw std::invalid_argument("'" + text + "' has a bad prefix length (0.." + std::to_string(maxBits) + ")");
    bits = std::stoi(len);
  }
  cidr.prefixBits_ = bits + (128 - maxBits);
  return cidr;
}

bool Cidr::contains(const Address& address) const {
  // An IPv4 peer is stored IPv4-mapped (::ffff:a.b.c.d). Only rules inside
  // that space (IPv4 rules, or ::ffff:0:0/96 and longer) may match it: "::/0"
  // means every IPv6 peer, not every peer.
  static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (prefixBits_ < 96 && std::memcmp(address.data(), kMappedPrefix, 12) == 0) return false;
  int full = prefixBits_ / 8, rest = prefixBits_ % 8;
  if (std::memcmp(address.data(), network_.data(), full) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (address[full] & mask) == (network_[full] & mask);
}

bool CidrList::allows(const sockaddr* peer) const {
  if (rules_.empty()) return true;
  Address address{};
  if (peer->sa_family == AF_INET) {
    address = mappedV4(&reinterpret_cast<const sockaddr_in*>(peer)->sin_addr);
  } else if (peer->sa_family == AF_INET6) {
    std::memcpy(address.data(), &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, 16);
  } else {
    return false;
  }
  for (const Cidr& rule : rules_)
    if (rule.contains(address)) return true;
  return false;
}

}  // namespace streamrelay
