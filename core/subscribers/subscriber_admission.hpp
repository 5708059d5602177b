// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberAdmission: admits a client of a listener, whatever its protocol:
// hello -> auth -> inputs -> resume. It checks the hello's token with the
// listener's Authenticator, picks the streams the client asked for (all of
// the listener's if none) among those the token allows, and subscribes the
// client's queue to each, after the seq the hello asks to resume from if
// the stream still holds the next frame, else live after the listener's
// replay; the result says where each stream starts.
// A subscriber may select frames by key (select: NATS subject patterns); what
// it selects must lie inside what the listener's `select` and its token's
// select claim allow, and without a select of its own it gets what they allow.
//
// Thread safe (it holds nothing that changes; the buses are thread safe).

#include <cstddef>
#include <vector>

#include "authenticator.hpp"
#include "bus.hpp"
#include "listener_protocol.hpp"

namespace streamrelay {

class SubscriberAdmission {
 public:
  // `inputs`: the listener's streams, in its config's order. `select`: the
  // listener's (empty: every frame).
  SubscriberAdmission(std::vector<Bus*> inputs, std::size_t replayFrames, std::vector<std::string> select = {});

  // `hello` null: a client that says nothing (raw): every input, from the
  // listener's replay on; no token is asked for. Never throws: a hello that
  // cannot be admitted is a refusal.
  AdmissionResult admit(const protocol::Hello* hello, const QueuePtr& queue, const Authenticator& auth) const;

 private:
  AdmissionResult admitHello(const protocol::Hello& hello, const QueuePtr& queue, const Authenticator& auth) const;
  // The listener's inputs the hello asks for and the token allows, as
  // indices into inputs_; or a refusal.
  bool choose(const protocol::Hello& hello, const AuthVerdict& verdict, std::vector<std::size_t>& chosen,
              AdmissionResult& refusal) const;
  // The key patterns the client gets (empty: every frame), or a refusal.
  bool chooseSelection(const protocol::Hello& hello, const AuthVerdict& verdict, std::vector<std::string>& select,
                       AdmissionResult& refusal) const;

  const std::vector<Bus*> inputs_;
  const std::size_t replayFrames_;
  const std::vector<std::string> select_;
};

}  // namespace streamrelay
