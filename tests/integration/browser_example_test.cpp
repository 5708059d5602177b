// SPDX-License-Identifier: Apache-2.0
// The browser example (sdk/examples/browser/index.html) in a real Chromium,
// headless, driven over the DevTools protocol by tests/support/
// browser_driver.py: the page, served by the metrics plugin's `pages`,
// subscribes over WebSocket and over EventSource; both listeners are
// restarted under it while frames flow (a cut), and the page's own checks
// of every seq must show no gap and no duplicate, EventSource resuming by
// itself with Last-Event-ID. Without Chromium the test says so and passes.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;

namespace {

bool chromiumInstalled() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(path, X_OK) == 0) return true;
  return false;
}

// The listeners of the example's config (config/browser.yaml), on free
// ports, with `ws` and `sse` keys of their own.
std::string browserConfig(const PluginDir& plugins, const std::string& ws, const std::string& sse) {
  return kListenUpstream + "streams: {upstream: {replay: {frames: 100000}}}\nlisteners:\n" +
         "  - {name: ws, bind: '127.0.0.1:0', protocol: websocket, " + ws + "}\n" +
         "  - {name: sse, bind: '127.0.0.1:0', protocol: sse, retry_ms: 200, " + sse + "}\n" +
         pluginsSection(plugins, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0', "
                                 "pages: '" STREAMRELAY_SOURCE_DIR "/sdk/examples/browser'}}\n");
}

// The page's state for both subscriptions, as `expression` over ws and sse.
std::string both(const std::string& expression) {
  return "((t) => t(streamrelayDemo.ws) && t(streamrelayDemo.sse))((t) => " + expression + ")";
}

}  // namespace

TEST_CASE("browser example: Chromium gets every frame over WebSocket and EventSource and both resume after a cut with no gap and no duplicate", "[integration][browser][websocket][sse][resume]") {
  if (!chromiumInstalled()) {
    WARN("skipped: Chromium is not installed (Debian: apt-get install chromium)");
    return;
  }
  PluginDir plugins;
  plugins.drop(std::string(STREAMRELAY_PLUGINS_DIR) + "/metrics.so", "metrics.so");
  const std::string anyPage = "allow_origins: ['*']";
  RunningRelay relay = startRelay(browserConfig(plugins, "envelope: json, message: text, " + anyPage,
                                                "encoding: text, " + anyPage),
                                  {"ws", "sse"});
  auto served = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  REQUIRE(served.size() == 2);
  const std::string origin = "http://127.0.0.1:" + served[1].str();
  const std::string page = origin + "/pages/index.html?ws=ws://127.0.0.1:" + std::to_string(relay.ports.at("ws")) +
                           "/&sse=http://127.0.0.1:" + std::to_string(relay.ports.at("sse")) + "/";
  ChildProcess browser("/usr/bin/python3", {STREAMRELAY_SOURCE_DIR "/tests/support/browser_driver.py", page});
  auto expect = [&](int seconds, const std::string& expression) {
    const int before = browser.countLines("^(TRUE|TIMEOUT|ERROR)");
    const int trueBefore = browser.countLines("^TRUE");
    browser.writeStdin("wait " + std::to_string(seconds) + " " + expression + "\n");
    REQUIRE(browser.waitForLines("^(TRUE|TIMEOUT|ERROR)", before + 1, std::chrono::seconds(seconds + 30)));
    // Counted before asking: the answer may be in before a count made after.
    const int valuesBefore = browser.countLines("^VALUE ");
    browser.writeStdin("eval JSON.stringify(streamrelayDemo, (k, v) => k === 'recent' ? v.slice(0, 3) : v)\n");
    REQUIRE(browser.waitForLines("^VALUE ", valuesBefore + 1));
    INFO(browser.output());
    return browser.countLines("^TRUE") == trueBefore + 1;
  };
  REQUIRE(browser.waitForLine("^(OPENED|SKIP|ERROR)", 60s).size() > 0);
  REQUIRE(expect(30, both("t.answers === 1 && t.status === 'connected'")));

  auto feed = publish(relay, 4000, 2000);
  REQUIRE(expect(30, both("t.frames >= 1000")));
  // The cut: another envelope and encoding restart both listeners, which
  // close their subscribers while frames keep coming; allow_origins now
  // names the page's origin alone. The page reconnects its WebSocket with
  // a resume; EventSource reconnects by itself with Last-Event-ID.
  relay.reload(browserConfig(plugins, "envelope: header, allow_origins: ['" + origin + "']",
                             "encoding: base64, allow_origins: ['" + origin + "']"));
  CHECK(expect(60, both("t.last.upstream === 4000")));
  CHECK(expect(1, both("t.answers === 2 && t.notRecovered === 0")));
  CHECK(expect(1, both("t.frames === 4000 && t.gaps === 0 && t.duplicates === 0")));
  CHECK(expect(1, "streamrelayDemo.sse.recent[0].startsWith('upstream #4000  feed 4000.')"));
  CHECK(expect(1, "streamrelayDemo.ws.recent[0].startsWith('upstream #4000  feed 4000.')"));
  browser.closeStdin();
  CHECK(browser.waitForExit(30s) == 0);
  CHECK(feed->waitForExit(30s) == 0);
}
