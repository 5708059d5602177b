// SPDX-License-Identifier: Apache-2.0
#include "lease_keys.hpp"

#include "keys.hpp"
#include "redis_url.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

const Schema& leaseSchema() {
  static const Schema schema = [] {
    Schema s;
    s.what = "lease";
    s.keys = {key("url").doc("redis://HOST:PORT of the Redis that holds the lease"),
              key("key").doc("the Redis key of the lease (one per provider connection)"),
              key("ttl_ms", KeyKind::Int).def("5000").range(100, 3600000)
                  .doc("the lease's time to live: renewed every ttl/3; a standby takes over about this long after a holder dies"),
              key("password").env().hidden().doc("AUTH to the Redis server, if it asks")};
    s.reload = Reload::Process;
    return s;
  }();
  return schema;
}

const Schema& followSchema() {
  static const Schema schema = [] {
    Schema s;
    s.what = "follow";
    s.keys = {key("endpoints", KeyKind::Endpoints)
                  .doc("HOST:PORT of the other relays' streamrelay listeners, followed while another relay holds the lease"),
              key("inputs", KeyKind::Strings).doc("the upstream stream to follow (empty: the listener's only stream)"),
              key("token").env().hidden().doc("presented in the hello to a listener with auth"),
              groupKey("tls", tlsSchema())};
    s.reload = Reload::Process;
    return s;
  }();
  return schema;
}

}  // namespace

void addLeaseKeys(std::vector<KeySpec>& keys) {
  keys.push_back(groupKey("lease", leaseSchema())
                     .applies(Reload::Process)
                     .doc("connect to the provider only while holding this Redis lease; follow the holder meanwhile"));
  keys.push_back(groupKey("follow", followSchema())
                     .applies(Reload::Process)
                     .doc("with lease: the holder's streamrelay listeners (a streamrelay source in mirror mode)"));
}

void checkLease(const Settings& s, const YamlMap& m) {
  if (!s.has("lease")) return;
  const Settings& lease = s.group("lease");
  const Settings& follow = s.group("follow");
  // A printed config writes both groups with their defaults: a lease is one
  // with a url or a key, a follow one with endpoints.
  const bool leased = !lease.string("url").empty() || !lease.string("key").empty();
  if (!leased) {
    if (!follow.strings("endpoints").empty())
      m.fail("follow", "is only for a source with a lease (lease.url, lease.key)");
    return;
  }
  const YamlMap l = m.map("lease");
  std::string host;
  int port = 0;
  if (lease.string("url").empty()) l.failHere("missing required key 'url' (redis://HOST:PORT)");
  if (!parseRedisUrl(lease.string("url"), host, port))
    l.fail("url", "must be redis://HOST:PORT, got '" + lease.string("url") + "'");
  if (lease.string("key").empty()) l.fail("key", "must not be empty (the Redis key of the lease)");
  if (!s.given("follow")) m.fail("lease", "needs follow: {endpoints: [...]} (the other relays' streamrelay listeners)");
  if (follow.strings("endpoints").empty())
    m.map("follow").fail("endpoints", "must list the other relays' streamrelay listeners (HOST:PORT)");
}

}  // namespace streamrelay
