// SPDX-License-Identifier: Apache-2.0
#pragma once
// What one read burst on a provider's ClientSocket means for the stream. It
// is the same for every source on a socket (tcp, websocket, streamrelay):
// only what a close by the peer means differs, so the caller says that.

#include <optional>

#include "client_socket.hpp"
#include "connecting_source.hpp"

namespace streamrelay {

// `fromBytes`: what the bytes read said (a protocol error, a close frame),
// if anything. `onClose()` makes the end for a connection the peer closed;
// called only then, so that its text costs nothing on every other burst.
template <typename OnClose>
std::optional<StreamEnd> endOfBurst(ClientSocket::Burst burst, const ClientSocket& socket,
                                    std::optional<StreamEnd> fromBytes, OnClose onClose) {
  switch (burst) {
    case ClientSocket::Burst::Stopped:
      return StreamEnd::stopped();
    case ClientSocket::Burst::Closed:
      return onClose();
    case ClientSocket::Burst::Failed:
      return StreamEnd::failed(socket.error());
    case ClientSocket::Burst::TimedOut:
    case ClientSocket::Burst::Read:
      break;
  }
  return fromBytes;
}

}  // namespace streamrelay
