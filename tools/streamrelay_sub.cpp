// SPDX-License-Identifier: Apache-2.0
// streamrelay-sub: subscribe to a relay listener and print its frames.

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <string>

#include "streamrelay/client.hpp"

namespace {


const char* kUsage =
    "usage: streamrelay-sub HOST:PORT[,HOST:PORT...]|URL [options]\n"
    "  HOST:PORT,...     several relays of a fleet: the first that answers; --reconnect goes to the next\n"
    "                    one and resumes there (a URL too: ws://H1:P1,H2:P2/PATH)\n"
    "  URL               ws://HOST:PORT/PATH or wss:// (protocol websocket); http://, https://, sse://, sses://\n"
    "                    (protocol sse); its query may give token, inputs and resume=EPOCH-SEQ\n"
    "  --format F        text: one frame per line (default); hex: hex bytes per line; raw: payload bytes only\n"
    "  --framing SPEC    raw protocol: length-prefix[:W[:big|little]] (default), delimiter[:TEXT], fixed:N\n"
    "  --count N         exit after N frames\n"
    "  --reconnect       connect again when the connection ends or is lost (streamrelay protocol: resuming)\n"
    "  --read-timeout MS a relay that sends nothing for MS ms is taken for gone (0: never; default: streamrelay\n"
    "                    protocol, 3 x the heartbeat_ms the relay announces; raw protocol, never)\n"
    "  --protocol P      raw (default) or streamrelay (a URL says websocket or sse): each line then starts\n"
    "                    with stream, seq and lag where the protocol tells them\n"
    "  --token T         the token to present (default: $STREAMRELAY_TOKEN); not with raw\n"
    "  --inputs A,B      the streams wanted (default: all of the listener's); not with raw\n"
    "  --select P,Q      only frames whose key matches a pattern (md.*.BTC, md.>); not with raw\n"
    "  --snapshot        first the newest frame of each selected key (marked snapshot), then live\n"
    "  --resume E:S      start after seq S of epoch E (as the answer gives it); not with raw;\n"
    "                    S may be STREAM=SEQ,...\n"
    "  --from-seq N      replay from seq N of the stream (its epoch now; one --inputs stream), then live\n"
    "  --since D         replay what was received in the last D (30s, 10m, 2h), then live\n"
    "  --tls             connect with TLS (implied by the --tls-* options)\n"
    "  --tls-ca FILE     PEM CAs to trust (default: the system's)\n"
    "  --tls-cert FILE   client certificate (mutual TLS); --tls-key FILE its key\n"
    "  --tls-server-name NAME  the name the relay's certificate must carry (default: HOST)\n";

// "E:S" or "E:STREAM=SEQ,STREAM=SEQ".
streamrelay::client::ResumePoint parseResume(const std::string& text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) throw std::invalid_argument("--resume expects EPOCH:SEQ or EPOCH:STREAM=SEQ,...");
  streamrelay::client::ResumePoint point;
  point.epoch = std::stoull(text.substr(0, colon));
  std::string rest = text.substr(colon + 1);
  for (std::size_t start = 0; start <= rest.size();) {
    std::size_t comma = rest.find(',', start);
    if (comma == std::string::npos) comma = rest.size();
    const std::string item = rest.substr(start, comma - start);
    const std::size_t eq = item.find('=');
    point.afterSeq[eq == std::string::npos ? std::string() : item.substr(0, eq)] =
        std::stoull(eq == std::string::npos ? item : item.substr(eq + 1));
    start = comma + 1;
  }
  return point;
}

// --since: a whole number of seconds, minutes or hours (30s, 10m, 2h).
std::chrono::milliseconds parseDuration(const std::string& text) {
  const std::size_t digits = text.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string::npos || digits > 9 || digits + 1 != text.size() ||
      std::string("smh").find(text.back()) == std::string::npos)
    throw std::invalid_argument("--since expects a duration such as 30s, 10m or 2h, not '" + text + "'");
  const long long n = std::stoll(text.substr(0, digits));
  const long long unit = text.back() == 's' ? 1 : text.back() == 'm' ? 60 : 3600;
  return std::chrono::milliseconds(n * unit * 1000);
}

void print(const std::string& frame, const std::string& format) {
  if (format == "raw") {
    std::fwrite(frame.data(), 1, frame.size(), stdout);
  } else if (format == "hex") {
    static const char* digits = "0123456789abcdef";
    std::string line;
    for (unsigned char c : frame) {
      line += digits[c >> 4];
      line += digits[c & 15];
    }
    std::puts(line.c_str());
  } else {
    std::fwrite(frame.data(), 1, frame.size(), stdout);
    std::fputc('\n', stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, format = "text";
  long long count = -1;
  using Protocol = streamrelay::client::Subscriber::Protocol;
  streamrelay::client::Subscriber::Options options;
  std::string resume;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--help" || arg == "-h") {
        std::cout << kUsage;
        return 0;
      } else if (arg == "--format") {
        format = value();
        if (format != "text" && format != "hex" && format != "raw")
          throw std::invalid_argument("--format must be text, hex or raw");
      } else if (arg == "--framing") {
        options.framing = streamrelay::client::Framing::parse(value());
      } else if (arg == "--count") {
        count = std::stoll(value());
      } else if (arg == "--reconnect") {
        options.reconnect = true;
      } else if (arg == "--read-timeout") {
        const long long ms = std::stoll(value());
        if (ms < 0) throw std::invalid_argument("--read-timeout must be 0 or more");
        options.readTimeout = std::chrono::milliseconds(ms);
      } else if (arg == "--protocol") {
        const std::string protocol = value();
        if (protocol != "raw" && protocol != "streamrelay")
          throw std::invalid_argument("--protocol must be raw or streamrelay");
        options.protocol = protocol == "raw" ? Protocol::Raw : Protocol::Streamrelay;
      } else if (arg == "--token") {
        options.token = value();
      } else if (arg == "--inputs") {
        options.inputs = streamrelay::client::commaList(value());
      } else if (arg == "--select") {
        options.select = streamrelay::client::commaList(value());
      } else if (arg == "--snapshot") {
        options.snapshot = true;
      } else if (arg == "--resume") {
        resume = value();
      } else if (arg == "--from-seq") {
        const std::string text = value();
        if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos ||
            std::stoull(text) == 0)
          throw std::invalid_argument("--from-seq expects a seq from 1 on, not '" + text + "'");
        options.fromSeq = std::stoull(text);
      } else if (arg == "--since") {
        options.since = parseDuration(value());
      } else if (arg == "--tls") {
        options.tls.enabled = true;
      } else if (arg == "--tls-ca") {
        options.tls.enabled = true;
        options.tls.caFile = value();
      } else if (arg == "--tls-cert") {
        options.tls.enabled = true;
        options.tls.certFile = value();
      } else if (arg == "--tls-key") {
        options.tls.enabled = true;
        options.tls.keyFile = value();
      } else if (arg == "--tls-server-name") {
        options.tls.enabled = true;
        options.tls.serverName = value();
      } else if (target.empty() && arg[0] != '-') {
        target = arg;
      } else {
        throw std::invalid_argument("unknown argument '" + arg + "'");
      }
    }
    if (target.empty()) throw std::invalid_argument("HOST:PORT or a URL is required");
    const bool url = target.find("://") != std::string::npos;
    if (url && options.protocol != Protocol::Raw)
      throw std::invalid_argument("--protocol goes with HOST:PORT (a URL's scheme says websocket or sse)");
    if (!url && options.protocol == Protocol::Raw &&
        (!options.token.empty() || !options.inputs.empty() || !resume.empty() || !options.select.empty() ||
         options.snapshot || options.fromSeq || options.since))
      throw std::invalid_argument("--token, --inputs, --select, --snapshot, --resume, --from-seq and --since need a "
                                  "protocol with a hello (not raw)");
    if ((!resume.empty()) + (options.fromSeq ? 1 : 0) + (options.since ? 1 : 0) > 1)
      throw std::invalid_argument("give one of --resume, --from-seq and --since");
    if ((url || options.protocol == Protocol::Streamrelay) && options.token.empty())
      if (const char* token = std::getenv("STREAMRELAY_TOKEN")) options.token = token;
    if (!resume.empty()) {
      options.resume = parseResume(resume);
      // "E:S" names no stream: it is the only one asked for.
      auto unnamed = options.resume->afterSeq.find("");
      if (unnamed != options.resume->afterSeq.end()) {
        if (options.inputs.size() != 1) throw std::invalid_argument("--resume E:S needs exactly one --inputs stream");
        options.resume->afterSeq[options.inputs.front()] = unnamed->second;
        options.resume->afterSeq.erase(unnamed);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-sub: " << e.what() << "\n" << kUsage;
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Each connection's answer, as soon as it comes (before any frame).
  options.onAnswer = [](const streamrelay::client::Subscriber& s) {
    if (s.answers() > 1) std::cerr << "streamrelay-sub: " << s.endReason() << "; connected again\n";
    std::cerr << "streamrelay-sub: connected: " << s.answer().json << " (" << s.endpoint().host << ":"
              << s.endpoint().port << ")" << std::endl;
  };
  try {
    streamrelay::client::Subscriber subscriber(target, options);
    std::string frame;
    streamrelay::client::FrameInfo info;
    if (subscriber.protocol() != Protocol::Raw) subscriber.awaitAnswer(std::chrono::seconds(30));
    for (long long n = 0; count < 0 || n < count; ++n) {
      if (!subscriber.next(frame, info)) {
        const std::string why = subscriber.endReason().empty() ? "connection closed" : subscriber.endReason();
        std::cerr << "streamrelay-sub: " << target << ": " << why << "\n";
        return count < 0 ? 0 : 1;
      }
      if (!info.stream.empty() && format != "raw") {
        std::printf("%s seq=%llu ", info.stream.c_str(), static_cast<unsigned long long>(info.seq));
        if (info.flags & streamrelay::wire::kFlagSnapshot) std::printf("snapshot ");
        if (info.flags & streamrelay::wire::kFlagConflated) std::printf("conflated ");
        if (info.receivedUnixNs > 0) {  // sse events carry no receive time
          // Lag: from the relay reading the frame to now (clocks of two hosts if remote).
          const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
          std::printf("lag_ms=%.3f ", static_cast<double>(now - info.receivedUnixNs) / 1e6);
        }
      }
      print(frame, format);
      if (format != "raw") std::fflush(stdout);
    }
  } catch (const std::invalid_argument& e) {  // the address or its URL: a bad argument
    std::cerr << "streamrelay-sub: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-sub: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
