// SPDX-License-Identifier: Apache-2.0
#pragma once
// The live status page served at "/": plain HTML and JavaScript, no outside
// assets. It polls /stats every second and draws frames/s and bytes/s over the
// last five minutes, the upstream state, and the listeners and consumers.

namespace streamrelay::plugins {

extern const char* const kStatusPageHtml;

}  // namespace streamrelay::plugins
