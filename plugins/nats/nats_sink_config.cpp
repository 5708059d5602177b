// SPDX-License-Identifier: Apache-2.0
#include "nats_sink_config.hpp"

namespace streamrelay::plugins {

const ConfigKeys& natsSinkConfigKeys() {
  static const ConfigKeys keys{
      stringsKey("servers").needed().url().doc("nats://HOST:PORT or tls://HOST:PORT, tried in order"),
      stringKey("subject").def("streamrelay.{stream}").doc("the subject; {stream}: the frame's stream"),
      groupKey("jetstream").doc("present: publish to JetStream, each frame acknowledged"),
      stringKey("jetstream.stream").doc("the stream that must store the frames (empty: any)"),
      intKey("jetstream.ack_timeout_ms", 5000, 100, 3600000).doc("a frame not acknowledged by then is sent again"),
      intKey("max_pending", 4096, 1, 1000000).doc("JetStream: frames published and not yet acknowledged, at most"),
      stringKey("user").doc("with password"),
      stringKey("password").secret().doc("with user"),
      stringKey("token").secret().doc("an authentication token"),
      stringKey("creds_file").doc("a NATS credentials file (JWT and seed)"),
      groupKey("tls").doc("present: TLS"),
      boolKey("tls.enabled", true).doc("false: plain TCP despite the tls group"),
      stringKey("tls.ca_file").doc("CA certificates that sign the servers'"),
      stringKey("tls.cert_file").doc("a client certificate, with key_file"),
      stringKey("tls.key_file").doc("the client certificate's key"),
  };
  return keys;
}

NatsSinkConfig parseNatsSinkConfig(const std::string& yaml) {
  const ConfigReader config(yaml, natsSinkConfigKeys());
  auto fail = &ConfigReader::fail;
  NatsSinkConfig c;
  // Required: a sink dropped into the plugins directory without a
  // configured instance must not start publishing to whatever listens on 4222.
  static_cast<NatsConnectionConfig&>(c) = readNatsConnection(config);
  c.subject = config.string("subject");
  if (c.subject.empty() || c.subject.find_first_of(" \t\r\n") != std::string::npos)
    fail("subject", "must be a NATS subject (no spaces)");
  c.jetstream = config.given("jetstream");
  c.stream = config.string("jetstream.stream");
  c.ackTimeout = std::chrono::milliseconds(config.integer("jetstream.ack_timeout_ms"));
  c.maxPending = static_cast<int>(config.integer("max_pending"));
  return c;
}

}  // namespace streamrelay::plugins
