// SPDX-License-Identifier: Apache-2.0
#include "crc32.hpp"

#include <zlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace streamrelay {
namespace logfmt {

namespace {

// Continues a CRC-32 with zlib (which takes a uInt length: fed in pieces).
std::uint32_t zlibCrc32(std::uint32_t crc, const char* data, std::size_t size) {
  uLong c = crc;
  while (size > 0) {
    const uInt piece = size > (1u << 30) ? (1u << 30) : static_cast<uInt>(size);
    c = crc32(c, reinterpret_cast<const Bytef*>(data), piece);
    data += piece;
    size -= piece;
  }
  return static_cast<std::uint32_t>(c);
}

#if defined(__x86_64__)
constexpr std::size_t kFoldMinimum = 64;  // one block of four 16-byte lanes

// The CRC register (not inverted) after `size` bytes, `size` >= 64 and a
// multiple of 16. The constants are the paper's for the bit-reflected
// polynomial 0x04C11DB7: x^(4*128+32) mod P, x^(4*128-32) mod P (k1, k2:
// folding four lanes by 64 bytes), x^(128+32), x^(128-32) (k3, k4: by 16
// bytes), x^64 (k5), and P' with mu for the Barrett reduction.
#define STREAMRELAY_FOLDING __attribute__((target("pclmul,sse4.1")))

STREAMRELAY_FOLDING inline __m128i load(const unsigned char* at) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
}

// x times k's two halves, plus the next 16 bytes.
STREAMRELAY_FOLDING inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), _mm_clmulepi64_si128(x, k, 0x00)), next);
}

STREAMRELAY_FOLDING std::uint32_t foldedCrc(const unsigned char* buf, std::size_t size, std::uint32_t crc) {
  alignas(16) static const std::uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const std::uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const std::uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const std::uint64_t poly[] = {0x01db710641, 0x01f7011641};

  __m128i x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = load(buf + 16), x3 = load(buf + 32), x4 = load(buf + 48);
  buf += 64;
  size -= 64;
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  for (; size >= 64; buf += 64, size -= 64) {  // four lanes in parallel
    x1 = fold(x1, k, load(buf));
    x2 = fold(x2, k, load(buf + 16));
    x3 = fold(x3, k, load(buf + 32));
    x4 = fold(x4, k, load(buf + 48));
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  x1 = fold(fold(fold(x1, k, x2), k, x3), k, x4);  // four lanes into one
  for (; size >= 16; buf += 16, size -= 16) x1 = fold(x1, k, load(buf));

  // 128 bits to 64, then Barrett's reduction to 32.
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(x1, k, 0x10));
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x00), _mm_srli_si128(x1, 4));
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  __m128i q = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x10);
  q = _mm_clmulepi64_si128(_mm_and_si128(q, low32), k, 0x00);
  return static_cast<std::uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, q), 1));
}

#undef STREAMRELAY_FOLDING

bool canFold() {
  static const bool can = [] {
    __builtin_cpu_init();  // may run before the runtime's own init (a static initializer)
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return can;
}
#endif

}  // namespace

std::uint32_t crc32ByTable(const char* data, std::size_t size) { return zlibCrc32(0, data, size); }

std::uint32_t crc32Of(const char* data, std::size_t size) {
#if defined(__x86_64__)
  if (size >= kFoldMinimum && canFold()) {
    const std::size_t folded = size & ~std::size_t{15};
    const std::uint32_t crc = ~foldedCrc(reinterpret_cast<const unsigned char*>(data), folded, ~0u);
    return zlibCrc32(crc, data + folded, size - folded);
  }
#endif
  return zlibCrc32(0, data, size);
}

}  // namespace logfmt
}  // namespace streamrelay
