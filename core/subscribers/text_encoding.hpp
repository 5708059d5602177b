// SPDX-License-Identifier: Apache-2.0
#pragma once
// Text encodings for protocols that carry frames as text (a WebSocket text
// message, a JSON envelope, a Server-Sent Event): whether bytes are UTF-8,
// whether they are one JSON value, a JSON string of them, base64.
//
// Thread safe (no state). Linear in the input; nothing recurses (nesting in
// a JSON value is counted, not followed on the stack).

#include <string>
#include <string_view>

#include "streamrelay/mini_json.hpp"

namespace streamrelay {
namespace text {

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
bool isUtf8(std::string_view bytes);
// Exactly one JSON value (RFC 8259), with optional whitespace around it,
// its strings UTF-8, nested at most 512 deep.
bool isJson(std::string_view bytes);
// Appends `utf8` (well-formed UTF-8) as a JSON string, quotes included
// (the SDK's writer, shared with the client and the plugins).
using client::appendJsonString;
// Appends the standard base64 (RFC 4648, padded) of `bytes`.
void appendBase64(std::string& out, std::string_view bytes);

}  // namespace text
}  // namespace streamrelay
