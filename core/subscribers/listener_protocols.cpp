// SPDX-License-Identifier: Apache-2.0
// The registry of listener protocols, built from listener_protocols.def.
#include <stdexcept>

#include "keys.hpp"
#include "listener_protocol.hpp"

namespace streamrelay {

#define LISTENER_PROTOCOL(NAME) ListenerProtocolType NAME##_listener_protocol();
#include "listener_protocols.def"
#undef LISTENER_PROTOCOL

const std::vector<ListenerProtocolType>& listenerProtocols() {
  static const std::vector<ListenerProtocolType> protocols{
#define LISTENER_PROTOCOL(NAME) NAME##_listener_protocol(),
#include "listener_protocols.def"
#undef LISTENER_PROTOCOL
  };
  return protocols;
}

const ListenerProtocolType& listenerProtocol(const std::string& name) {
  for (const ListenerProtocolType& p : listenerProtocols())
    if (p.spec.name == name) return p;
  throw std::logic_error("no listener protocol '" + name + "'");
}

bool framingGiven(const Settings& listener) {
  return listener.given("framing") && !framingFrom(listener.group("framing")).isWireForm();
}

}  // namespace streamrelay
