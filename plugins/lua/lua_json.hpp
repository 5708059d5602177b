// SPDX-License-Identifier: Apache-2.0
#pragma once
// The `json` module of lua scripts:
//   json.decode(text)  -> a Lua value; objects are tables, arrays are tables
//                         marked as arrays (so [] encodes back as []), null
//                         is json.null; an error names the byte it stopped at
//   json.encode(value) -> JSON text; a table is an array when marked so or
//                         when its keys are exactly 1..n, else an object
//                         (string or number keys; their order is not kept)
//   json.null, json.array(table) (marks a table as an array; returns it)
// Numbers are Lua numbers (doubles): integers beyond 2^53 lose precision.
// Nesting is limited to 200 levels either way (a table that holds itself is
// an error, not a crash). Everything decode builds counts against the
// script's memory limit.

struct lua_State;

namespace streamrelay::plugins {

// Sets the global `json`. Call in protected mode (it allocates).
void openJson(lua_State* L);

}  // namespace streamrelay::plugins
