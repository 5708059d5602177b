#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""http_feed.py - an HTTP streaming provider for the integration tests, on
Python's http.server: it listens on 127.0.0.1 (port 0: any free port; with
--cert/--key it speaks https), prints "http-feed: listening on
127.0.0.1:PORT" and one line per request to stderr (with the names of the
request's headers), and exits after --max-seconds. Frames are "feed N" (N
from 1), as the tests' readSequence expects.

  GET /ndjson?n=N[&gzip=1][&rate=R][&end=1]  N lines, chunked in 7-byte
                              pieces that cut lines (R lines per second if
                              given), then holds the connection open (with
                              end=1: ends the response instead)
  GET /sse?n=N[&drop_after=K][&rate=R] N events "id: i / data: feed i" with
                              comments between (R events per second if given);
                              with drop_after and no Last-Event-ID it
                              sends K events and half of the next, then drops
                              the connection; Last-Event-ID: i resumes after i
  GET /limited?n=N[&retry_after=V]  first request: 429 with Retry-After: V
                              (default 1); then /ndjson
  GET /fail                   500 with a body, every time
  GET /redirect?to=URL        302 to URL (a path, or another server)
  GET /auth?n=N               /ndjson if "Authorization: Bearer s3cret", else 401
  POST /post                  /ndjson with n = the request body
"""
import argparse
import gzip
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

DEADLINE = [0.0]
LIMITED_CALLS = [0]
LOCK = threading.Lock()


def log(text):
    print("http-feed: " + text, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request is logged by do_*
        pass

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def start_stream(self, content_type, encoding=None):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()

    def hold(self):
        """Keeps the response open (no last chunk) until the client leaves."""
        self.connection.settimeout(0.2)
        while time.time() < DEADLINE[0]:
            try:
                if self.connection.recv(1024) == b"":
                    return
            except OSError as e:
                if "timed out" not in str(e):
                    return

    def plain(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def ndjson(self, n, compress=False, rate=0, end=False):
        self.start_stream("application/x-ndjson", "gzip" if compress else None)
        if rate:
            for i in range(1, n + 1):
                if time.time() > DEADLINE[0]:
                    return
                self.chunk(b"feed %d\n" % i)
                time.sleep(1.0 / rate)
            self.hold()
            return
        if end:
            self.chunk(b"".join(b"feed %d\n" % i for i in range(1, n + 1)))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"".join(b"feed %d\n" % i for i in range(1, n + 1))
        if compress:
            body = gzip.compress(body)
        for i in range(0, len(body), 7):
            self.chunk(body[i:i + 7])
        self.hold()

    def sse(self, n, drop_after, rate=0):
        resume = self.headers.get("Last-Event-ID")
        start = int(resume) + 1 if resume else 1
        self.start_stream("text/event-stream")
        if rate:
            for i in range(start, n + 1):
                if time.time() > DEADLINE[0]:
                    return
                self.chunk(b"id: %d\ndata: feed %d\n\n" % (i, i))
                time.sleep(1.0 / rate)
            self.hold()
            return
        out = b""
        for i in range(start, n + 1):
            if drop_after and not resume and i == drop_after + 1:
                self.chunk(out + b"id: %d\ndata: feed %d cut in ha" % (i, i))
                log("dropping the connection mid-event")
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if i % 10 == 0:
                out += b": heartbeat\n"
            out += b"id: %d\ndata: feed %d\n\n" % (i, i)
            if len(out) > 500:
                self.chunk(out)
                out = b""
        if out:
            self.chunk(out)
        self.hold()

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        n = int(q.get("n", "100"))
        log("GET %s Last-Event-ID=%s headers=%s" % (self.path, self.headers.get("Last-Event-ID"),
                                                      ",".join(sorted(k.lower() for k in self.headers.keys()))))
        if url.path == "/ndjson":
            self.ndjson(n, q.get("gzip") == "1", int(q.get("rate", "0")), q.get("end") == "1")
        elif url.path == "/sse":
            self.sse(n, int(q.get("drop_after", "0")), int(q.get("rate", "0")))
        elif url.path == "/limited":
            with LOCK:
                LIMITED_CALLS[0] += 1
                first = LIMITED_CALLS[0] == 1
            if first:
                self.plain(429, b"slow down, please", [("Retry-After", q.get("retry_after", "1"))])
            else:
                self.ndjson(n)
        elif url.path == "/fail":
            self.plain(500, b"boom: the feed is down")
        elif url.path == "/redirect":
            self.plain(302, b"", [("Location", q["to"])])
        elif url.path == "/auth":
            if self.headers.get("Authorization") == "Bearer s3cret":
                self.ndjson(n)
            else:
                self.plain(401, b"bad token")
        else:
            self.plain(404, b"no such feed")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        log("POST %s body=%s" % (self.path, body.decode(errors="replace")))
        self.ndjson(int(body))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()
    DEADLINE[0] = time.time() + args.max_seconds
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.timeout = 0.5
    log("listening on 127.0.0.1:%d" % server.server_address[1])
    while time.time() < DEADLINE[0]:
        server.handle_request()


if __name__ == "__main__":
    main()
