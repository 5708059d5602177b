// SPDX-License-Identifier: Apache-2.0
#pragma once
// RFC 3339 times, as a hello's resume.from_time gives them:
// 2026-12-03T14:05:00Z, 2026-12-03T14:05:00.250+01:00 (fraction up to ns).

#include <cstdint>
#include <optional>
#include <string_view>

namespace streamrelay {

// Unix ns of `text`; none if it is not an RFC 3339 date-time (with its offset).
std::optional<std::int64_t> parseRfc3339(std::string_view text);

}  // namespace streamrelay
