// SPDX-License-Identifier: Apache-2.0
#include "subscriber_helpers.hpp"

#include "pki.hpp"

namespace streamrelay::test {

using Protocol = streamrelay::client::Subscriber::Protocol;

std::string tlsKeys(const std::string& cert, const std::string& more) {
  return "tls: {enabled: true, cert_file: '" + pki().path(cert + ".pem") + "', key_file: '" +
         pki().path(cert + ".key") + "'" + more + "}";
}

Subscriber::Options tlsClient(const std::string& ca) {
  Subscriber::Options o;
  o.tls.enabled = true;
  o.tls.caFile = pki().path(ca + ".pem");
  return o;
}

Subscriber::Options protocolClient(const std::string& token) {
  Subscriber::Options o;
  o.protocol = Protocol::Streamrelay;
  o.token = token;
  return o;
}

std::unique_ptr<ChildProcess> publish(const RunningRelay& relay, int count, int rate, int size) {
  return startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--generate", "--rate",
                    std::to_string(rate), "--size", std::to_string(size), "--count", std::to_string(count)});
}

std::uint64_t readSeqs(Subscriber& sub, std::uint64_t firstSeq, long count) {
  std::string frame;
  streamrelay::client::FrameInfo info;
  std::uint64_t expected = firstSeq;
  for (long i = 0; i < count; ++i) {
    if (!sub.next(frame, info, 20s)) {
      FAIL_CHECK("frame " << i << " of " << count << " did not come");
      return expected - 1;
    }
    if (info.seq != expected) {
      FAIL_CHECK("seq " << info.seq << " where " << expected << " was due");
      return info.seq;
    }
    const std::string want = "feed " + std::to_string(expected);
    if (frame.compare(0, want.size(), want) != 0) FAIL_CHECK("seq " << expected << " carried '" << frame << "'");
    ++expected;
  }
  return expected - 1;
}

void checkPrintedFrames(ChildProcess& client, int count) {
  CHECK(client.waitForExit(30s) == 0);
  INFO(client.output());
  const std::string n = std::to_string(count);
  CHECK(client.countLines("^upstream seq=\\d+ lag_ms=[0-9.]+ feed \\d+") == count);
  CHECK(client.countLines("^upstream seq=" + n + " lag_ms=[0-9.]+ feed " + n) == 1);
}

FeedFrames readToEnd(Subscriber& sub, std::chrono::milliseconds quiet, const std::atomic<bool>* stopping) {
  FeedFrames got;
  std::string frame;
  streamrelay::client::FrameInfo info;
  auto lastFrame = std::chrono::steady_clock::now();
  while (!(stopping && *stopping) && std::chrono::steady_clock::now() - lastFrame < quiet) {
    if (!sub.next(frame, info, 200ms)) {
      if (!sub.timedOut()) break;  // the connection ended (and was not to be reopened)
      continue;
    }
    lastFrame = std::chrono::steady_clock::now();
    got.emplace_back(info.seq, frame);
    if (frame == "end") break;
  }
  return got;
}

bool isWholeFeed(const FeedFrames& frames, std::uint64_t first) {
  if (frames.empty() || frames.back().second != "end") return false;
  for (std::size_t i = 0; i + 1 < frames.size(); ++i)
    if (frames[i].first != first + i || frames[i].second != "feed " + std::to_string(first + i)) return false;
  return frames.back().first == first + frames.size() - 1;
}

std::string difference(const FeedFrames& got, const FeedFrames& want) {
  if (got == want) return "";
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto at = [&](const FeedFrames& f) {
    return i < f.size() ? "(" + std::to_string(f[i].first) + ", '" + f[i].second.substr(0, 40) + "')" : std::string("(none)");
  };
  return std::to_string(got.size()) + " frames where " + std::to_string(want.size()) + " were due; the first difference at " +
         std::to_string(i) + ": " + at(got) + " where " + at(want) + " was due" +
         (i > 0 ? "; the frame before: (" + std::to_string(got[i - 1].first) + ")" : "");
}

}  // namespace streamrelay::test
