// SPDX-License-Identifier: Apache-2.0
#pragma once
// HttpServer: the metrics plugin's HTTP/1.1 server — one thread, poll(2),
// every connection non-blocking, so that slow or stalled clients cost a
// socket each, never a thread, and cannot keep a scrape waiting.
//
// Limits, each enforced and counted (events() gets "http_timeouts",
// "http_evicted", "http_rejected"):
// - a request head (request line and headers) must arrive whole within
//   requestTimeout of the connect, and the response be taken within
//   requestTimeout of the answer; else the connection is closed;
// - at most maxConnections at once: one more closes the oldest connection
//   still sending its request (a scrape always gets in);
// - a request head over maxRequestBytes is answered 431 and closed.
// One request per connection (Connection: close); GET and HEAD.
//
// Threads: the server thread accepts, reads, calls the handler and the tick,
// and writes. Construction and destruction on the owner's thread.

#include <Poco/Net/ServerSocket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace streamrelay::plugins {

class HttpServer {
 public:
  struct Limits {
    std::chrono::milliseconds requestTimeout{5000};
    std::size_t maxConnections = 64;
    std::size_t maxRequestBytes = 8192;
  };
  struct Response {
    int status = 200;
    std::string contentType;
    std::string body;
  };
  // Called on the server thread. `target` is the request's path and query.
  using Handler = std::function<Response(const std::string& method, const std::string& target)>;
  // Called on the server thread at start and every `tickInterval`.
  using Tick = std::function<void()>;
  // Called on the server thread once per limit enforced (a counter's name).
  using Event = std::function<void(const char* counter)>;

  // Binds and listens on `bind` (HOST:PORT, [IPv6]:PORT; port 0: any) and
  // starts the thread. Throws std::runtime_error naming the address.
  HttpServer(const std::string& bind, Limits limits, Handler handler, std::chrono::milliseconds tickInterval, Tick tick,
             Event event);
  ~HttpServer();  // stops the thread, closes every connection
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::string address() const;

 private:
  struct Connection;
  void run();
  void acceptAll(std::vector<std::unique_ptr<Connection>>& connections);
  // Returns false once the connection is done (answered, failed or closed).
  bool readRequest(Connection& c);
  bool writeResponse(Connection& c);
  void answer(Connection& c, const Response& response, bool withBody);

  const Limits limits_;
  Handler handler_;
  const std::chrono::milliseconds tickInterval_;
  Tick tick_;
  Event event_;
  Poco::Net::ServerSocket socket_;
  int wakeFd_ = -1;  // eventfd: the destructor wakes the thread
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace streamrelay::plugins
