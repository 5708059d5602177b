// SPDX-License-Identifier: Apache-2.0
#pragma once
// Renders the relay's stats JSON (the host API's stats_json) in the
// Prometheus text exposition format 0.0.4.

#include <string>

namespace streamrelay::plugins {

// Throws Poco::Exception if `statsJson` is not the relay's stats document.
std::string renderPrometheus(const std::string& statsJson);

}  // namespace streamrelay::plugins
