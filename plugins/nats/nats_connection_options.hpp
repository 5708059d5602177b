// SPDX-License-Identifier: Apache-2.0
#pragma once
// The cnats options both nats plugins connect with: the configured servers
// in order (the first is the primary: no randomizing), reconnecting forever
// every 200 ms, and the credentials and TLS of NatsConnectionConfig.

#include <nats/nats.h>

#include "nats_connection_config.hpp"

namespace streamrelay::plugins {

// NATS_OK, or the first option cnats refused (a CA file it cannot read...).
natsStatus applyNatsConnection(const NatsConnectionConfig& config, natsOptions* opts);

}  // namespace streamrelay::plugins
