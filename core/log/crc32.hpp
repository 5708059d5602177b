// SPDX-License-Identifier: Apache-2.0
#pragma once
// crc32: the CRC-32 (zlib's, IEEE 802.3) that the log's records and
// headers carry. zlib computes it a byte table at a time, which was a
// quarter of the log writer's CPU at 128-byte frames. On x86-64 with
// PCLMULQDQ the bulk of a buffer is folded 64 bytes at a time with
// carry-less multiplication ("Fast CRC Computation for Generic Polynomials
// Using PCLMULQDQ Instruction", Gopal et al., Intel 2009: the method of
// Chromium's zlib and Linux's crc32-pclmul), and zlib does the rest. The
// value is zlib's crc32() bit for bit: the format does not change.
// Thread safe.

#include <cstddef>
#include <cstdint>

namespace streamrelay {
namespace logfmt {

std::uint32_t crc32Of(const char* data, std::size_t size);

// zlib's table-driven CRC-32 alone: the reference crc32Of must equal.
std::uint32_t crc32ByTable(const char* data, std::size_t size);

}  // namespace logfmt
}  // namespace streamrelay
