// streamrelay-sub: subscribe to a relay listener and print its frames.

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "streamrelay/client.hpp"

namespace {

const char* kUsage =
    "usage: streamrelay-sub HOST:PORT [--format text|hex|raw] [--framing SPEC] [--count N] [--reconnect]\n"
    "  --format    text: one frame per line (default); hex: hex bytes per line; raw: payload bytes only\n"
    "  --framing   length-prefix[:W[:big|little]] (default length-prefix:4:big), delimiter[:TEXT], fixed:N\n"
    "  --count N   exit after N frames\n"
    "  --reconnect connect again when the relay goes away\n";

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
  streamrelay::client::Subscriber::Options options;
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
      } else if (target.empty() && arg[0] != '-') {
        target = arg;
      } else {
        throw std::invalid_argument("unknown argument '" + arg + "'");
      }
    }
    if (target.empty()) throw std::invalid_argument("HOST:PORT is required");
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-sub: " << e.what() << "\n" << kUsage;
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    streamrelay::client::Subscriber subscriber(target, options);
    std::string frame;
    for (long long n = 0; count < 0 || n < count; ++n) {
      if (!subscriber.next(frame)) {
        std::cerr << "streamrelay-sub: connection closed by " << target << "\n";
        return count < 0 ? 0 : 1;
      }
      print(frame, format);
      if (format != "raw") std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-sub: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
