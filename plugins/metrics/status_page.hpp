// SPDX-License-Identifier: Apache-2.0
#pragma once
// The live status page served at "/": plain HTML and JavaScript, no outside
// assets. The server puts the relay's stats and its recent history (the
// metrics plugin's StatsHistory) into the page, so the first paint already
// shows every figure and five minutes of frames/s and bytes/s; then it polls
// /stats and /history every second.

#include <string>

namespace streamrelay::plugins {

// The page with `statsJson` (the relay's stats) and `historyJson`
// (StatsHistory::json) in it.
std::string renderStatusPage(const std::string& statsJson, const std::string& historyJson);

}  // namespace streamrelay::plugins
