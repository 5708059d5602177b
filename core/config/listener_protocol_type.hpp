// SPDX-License-Identifier: Apache-2.0
#pragma once
// ListenerProtocolType: what a listener protocol (listeners[].protocol)
// registers — its keys (a TypeSpec of the listener schema), whether its
// clients present a hello, and how to build one. The config reads the keys;
// the listener builds the protocol. Every protocol is listed once, in
// subscribers/listener_protocols.def; what a protocol is, is in
// subscribers/listener_protocol.hpp.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "schema.hpp"

namespace streamrelay {

class ListenerProtocol;
struct ListenerConfig;
struct StreamId;

struct ListenerProtocolType {
  TypeSpec spec;            // the value of `protocol`, a summary, its own keys and checks
  bool readsHello = false;  // its clients present a hello (token, inputs, resume): `auth` applies
  // `inputs`: the streams the listener serves, in its config's order (a
  // stream's id in the streamrelay header is its index here).
  std::function<std::unique_ptr<ListenerProtocol>(const ListenerConfig& config, std::vector<const StreamId*> inputs)>
      create;
};

// Every registered protocol, in listener_protocols.def order.
const std::vector<ListenerProtocolType>& listenerProtocols();
// The protocol named `name`; throws std::logic_error if none (the config was validated).
const ListenerProtocolType& listenerProtocol(const std::string& name);

}  // namespace streamrelay
