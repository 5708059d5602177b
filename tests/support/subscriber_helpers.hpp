// SPDX-License-Identifier: Apache-2.0
#pragma once
// Helpers for the integration tests of remote subscribers (TLS, the
// `streamrelay` protocol, tokens): client options, a publisher, and checks
// of what a client read or printed. Catch2 assertions inside: include only
// from test files.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "relay_fixture.hpp"

namespace streamrelay::test {

// The `tls:` keys of a listener with the certificate `cert` of pki() ("server"...).
std::string tlsKeys(const std::string& cert = "server", const std::string& more = "");
// A client that trusts the CA `ca` of pki().
Subscriber::Options tlsClient(const std::string& ca = "ca");
// A client of the streamrelay protocol presenting `token` (none if empty).
Subscriber::Options protocolClient(const std::string& token = "");
// streamrelay-feed sending `count` frames "feed N" to the relay's listen source (rate 0: at once).
std::unique_ptr<ChildProcess> publish(const RunningRelay& relay, int count, int rate = 0, int size = 64);
// Reads frames with their headers until `count` arrived; checks the seqs
// follow each other from `firstSeq`. Returns the last seq read (0: none).
std::uint64_t readSeqs(Subscriber& sub, std::uint64_t firstSeq, long count);
// A client that prints "STREAM seq=N lag_ms=L PAYLOAD" per frame exits 0
// after printing `count` frames of the stream upstream, the last with seq `count`.
void checkPrintedFrames(ChildProcess& client, int count);

// The (seq, payload) of each frame a subscriber read from a LineFeed.
using FeedFrames = std::vector<std::pair<std::uint64_t, std::string>>;
// Reads up to the LineFeed's "end"; a hang guard ends it after `quiet`
// without a frame, and `stopping` (a JoinedThread's, set as a failed test
// unwinds) at once.
FeedFrames readToEnd(Subscriber& sub, std::chrono::milliseconds quiet = std::chrono::seconds(30),
                     const std::atomic<bool>* stopping = nullptr);
// Every frame i is seq `first` + i with the payload "feed SEQ", the last one "end".
bool isWholeFeed(const FeedFrames& frames, std::uint64_t first = 1);
// "" if `got` is `want`; otherwise both sizes and the first place they
// differ (a check of the whole lists would print every element).
std::string difference(const FeedFrames& got, const FeedFrames& want);

}  // namespace streamrelay::test
