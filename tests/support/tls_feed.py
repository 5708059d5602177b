#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""tls_feed.py - a TLS provider for the integration tests, on Python's ssl
module (OpenSSL underneath): it listens on 127.0.0.1, and to every client that
completes the handshake sends --frames length-prefixed frames "feed N" padded
with '.' to --size bytes, then holds the connection until the client leaves.
With --client-ca it requires a client certificate signed by that CA.
It prints "tls-feed: listening on 127.0.0.1:PORT" to stderr, logs each
handshake and how each client left ("client sent close_notify", or "client
left without close_notify: ..."), and exits after --max-seconds without a new
client."""
import argparse
import socket
import ssl
import struct
import sys


def log(text):
    print("tls-feed: " + text, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=120)
    args = p.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Python sets this by default: an EOF without close_notify would look like one.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    frames = b""
    for n in range(1, args.frames + 1):
        payload = ("feed %d" % n).encode().ljust(args.size, b".")
        frames += struct.pack(">I", len(payload)) + payload

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(args.max_seconds)
    log("listening on 127.0.0.1:%d" % server.getsockname()[1])
    while True:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            log("no client for %g s: exiting" % args.max_seconds)
            return
        conn.settimeout(args.max_seconds)
        try:
            # suppress_ragged_eofs=False: an EOF without close_notify is an error, not b"".
            tls = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as e:
            log("handshake failed: %s" % e)
            conn.close()
            continue
        log("client connected")
        try:
            tls.sendall(frames)
            while tls.recv(4096):
                pass
            log("client sent close_notify")
        except (ssl.SSLError, OSError) as e:
            log("client left without close_notify: %s" % e)
        tls.close()


if __name__ == "__main__":
    main()
