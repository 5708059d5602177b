// SPDX-License-Identifier: Apache-2.0
// The log's CRC-32: the folded (PCLMULQDQ) path gives zlib's value for
// every length and alignment, so logs written before and after it read
// the same.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "crc32.hpp"

using streamrelay::logfmt::crc32ByTable;
using streamrelay::logfmt::crc32Of;

TEST_CASE("crc32Of is zlib's CRC-32: the check value, and every length up to 1100 bytes at every alignment", "[log][crc32]") {
  CHECK(crc32Of("123456789", 9) == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  CHECK(crc32Of("", 0) == 0);

  std::mt19937 random(20261203);
  std::string bytes(1100 + 16, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  for (std::size_t offset = 0; offset < 16; ++offset)
    for (std::size_t size = 0; size <= 1100; ++size) {
      const char* data = bytes.data() + offset;
      if (crc32Of(data, size) != crc32ByTable(data, size)) FAIL("offset " << offset << ", size " << size);
    }

  const std::string zeros(4096, '\0'), ones(4096, '\xff');
  CHECK(crc32Of(zeros.data(), zeros.size()) == crc32ByTable(zeros.data(), zeros.size()));
  CHECK(crc32Of(ones.data(), ones.size()) == crc32ByTable(ones.data(), ones.size()));
  std::string large(1 << 20, '\0');
  for (char& c : large) c = static_cast<char>(random());
  CHECK(crc32Of(large.data(), large.size()) == crc32ByTable(large.data(), large.size()));
}
