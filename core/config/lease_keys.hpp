// SPDX-License-Identifier: Apache-2.0
#pragma once
// The `lease` and `follow` groups of a source that connects out
// (docs/fleet.md "Standby for the provider connection"): the Redis lease that
// allows one relay of a fleet to hold the provider connection, and the other
// relays' listeners it follows while it does not. LeasedSource
// (sources/leased_source.hpp) runs them.

#include <vector>

#include "schema.hpp"

namespace streamrelay {

// Adds the two groups to a connecting source type's keys.
void addLeaseKeys(std::vector<KeySpec>& keys);
// Every source's check: lease and follow go together, and a lease names its Redis and key.
void checkLease(const Settings& s, const YamlMap& m);

}  // namespace streamrelay
