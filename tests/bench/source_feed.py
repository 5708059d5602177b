#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""source_feed.py - a provider at full speed for tests/bench/source-bench.sh:
listens on 127.0.0.1 (prints "source-feed: listening on 127.0.0.1:PORT"), and
to the first client sends --frames frames of --size bytes in the protocol of
--mode, from a pre-built buffer so that Python is not the bottleneck:

  tcp, tls   4-byte big-endian length + payload
  http       an HTTP/1.1 200 response, chunked, one payload + "\\n" per frame
  ws, wss    after the WebSocket handshake, one text message per frame

It starts sending when it receives SIGUSR1 (the bench connects its
subscribers first), then holds the connection until the client leaves or
--max-seconds pass."""
import argparse
import base64
import hashlib
import signal
import socket
import ssl
import struct
import sys
import time


def frame_bytes(mode, size):
    payload = b"x" * size
    if mode in ("tcp", "tls"):
        return struct.pack(">I", size) + payload
    if mode == "http":
        return payload[:-1] + b"\n"
    header = b"\x81" + (bytes([size]) if size < 126 else b"\x7e" + struct.pack(">H", size))
    return header + payload


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", required=True, choices=["tcp", "tls", "http", "ws", "wss"])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=1000000)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--max-seconds", type=float, default=300)
    a = p.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])  # kept pending until sigtimedwait takes it
    deadline = time.time() + a.max_seconds
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    print("source-feed: listening on 127.0.0.1:%d" % server.getsockname()[1], file=sys.stderr, flush=True)
    conn, _ = server.accept()
    if a.mode in ("tls", "wss"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        conn = ctx.wrap_socket(conn, server_side=True)
    if a.mode in ("http", "ws", "wss"):
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        if a.mode == "http":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            key = [l.split(b":", 1)[1].strip() for l in request.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    one = frame_bytes(a.mode, a.size)
    per_block = max(1, (256 * 1024) // len(one))
    block = one * per_block
    if a.mode == "http":
        block = b"%x\r\n" % len(block) + block + b"\r\n"
    if signal.sigtimedwait([signal.SIGUSR1], max(0.0, deadline - time.time())) is None:
        return  # never told to start
    sent = 0
    while sent + per_block <= a.frames:
        conn.sendall(block)
        sent += per_block
    rest = a.frames - sent
    if rest:
        tail = one * rest
        conn.sendall(b"%x\r\n" % len(tail) + tail + b"\r\n" if a.mode == "http" else tail)
    print("source-feed: sent %d frames" % a.frames, file=sys.stderr, flush=True)
    conn.settimeout(1)
    while time.time() < deadline:
        try:
            if not conn.recv(4096):
                break
        except socket.timeout:
            continue
        except OSError:
            break


if __name__ == "__main__":
    main()
