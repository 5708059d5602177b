#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A streamrelay subscriber in Python, standard library only (socket, ssl, json).

It speaks the `streamrelay` listener protocol: one hello line of JSON, the
relay's answer (one frame of JSON), then frames that each carry a 24-byte
big-endian header:

    u32 payload bytes | u16 stream id | u16 flags | u64 seq | i64 receive time (ns since the Unix epoch)

The answer's stream id is 0xFFFF. On a lost connection it connects again and
resumes after the last seq it printed; the answer then says whether the relay
still had everything (`recovered`) or where each stream restarts (`first_seq`).

    streamrelay_client.py 127.0.0.1:7001 --token "$TOKEN" --ca ca.pem --inputs trades

Prints one line per frame: stream, seq, lag in milliseconds, payload.
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import time

HEADER = struct.Struct(">IHHQq")  # 24 bytes
CONTROL_STREAM = 0xFFFF
MAX_FRAME_BYTES = 1 << 20


def read_exactly(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the relay closed the connection")
        data += chunk
    return bytes(data)


def read_frame(sock):
    length, stream, _flags, seq, received_ns = HEADER.unpack(read_exactly(sock, HEADER.size))
    if length > MAX_FRAME_BYTES:  # never allocate what a header claims
        raise ValueError("frame of %d bytes announced, over the limit" % length)
    return stream, seq, received_ns, read_exactly(sock, length)


class Subscriber:
    def __init__(self, host, port, token=None, inputs=None, ca=None, cert=None, key=None, server_name=None):
        self.address = (host, port)
        self.token, self.inputs = token, inputs
        self.tls = None
        if ca or cert:
            self.tls = ssl.create_default_context(cafile=ca)
            if cert:
                self.tls.load_cert_chain(cert, key)
        self.server_name = server_name or host
        self.epoch, self.after_seq, self.names = None, {}, {}

    def connect(self):
        sock = socket.create_connection(self.address, timeout=30)
        if self.tls:
            sock = self.tls.wrap_socket(sock, server_hostname=self.server_name)
        hello = {}
        if self.token:
            hello["token"] = self.token
        if self.inputs:
            hello["inputs"] = self.inputs
        if self.epoch is not None and self.after_seq:
            hello["resume"] = {"epoch": self.epoch, "after_seq": self.after_seq}
        sock.sendall((json.dumps(hello) + "\n").encode())
        stream, _seq, _t, payload = read_frame(sock)
        answer = json.loads(payload)
        if stream != CONTROL_STREAM or not answer.get("ok"):
            raise PermissionError("the relay refused the hello: %s" % answer.get("error", answer))
        print("connected: %s" % payload.decode(), file=sys.stderr)
        if answer["epoch"] != self.epoch:
            self.epoch, self.after_seq = answer["epoch"], {}
        self.names = {}
        for name, start in answer["streams"].items():
            self.names[start["id"]] = name
            if not start["recovered"] or name not in self.after_seq:
                self.after_seq[name] = start["first_seq"] - 1
        return sock

    def frames(self):
        """Yields (stream, seq, received_ns, payload) forever, reconnecting with backoff."""
        delay = 0.1
        while True:
            try:
                sock = self.connect()
                delay = 0.1
                while True:
                    stream, seq, received_ns, payload = read_frame(sock)
                    name = self.names.get(stream, str(stream))
                    self.after_seq[name] = seq
                    yield name, seq, received_ns, payload
            except (ConnectionError, socket.timeout, ssl.SSLError, OSError) as e:
                print("connection lost (%s); reconnecting in %.1f s" % (e, delay), file=sys.stderr)
                time.sleep(delay)  # reconnect backoff
                delay = min(delay * 2, 5.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT of a listener with protocol: streamrelay")
    parser.add_argument("--token")
    parser.add_argument("--inputs", help="streams wanted, comma-separated (default: all)")
    parser.add_argument("--ca", help="PEM CA file: connect with TLS")
    parser.add_argument("--cert", help="client certificate (mutual TLS)")
    parser.add_argument("--key", help="its key")
    parser.add_argument("--server-name", help="the name the relay's certificate must carry")
    parser.add_argument("--count", type=int, default=0, help="exit after N frames")
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")
    sub = Subscriber(host.strip("[]"), int(port), args.token, args.inputs.split(",") if args.inputs else None,
                     args.ca, args.cert, args.key, args.server_name)
    for n, (stream, seq, received_ns, payload) in enumerate(sub.frames(), 1):
        lag_ms = (time.time_ns() - received_ns) / 1e6
        print("%s seq=%d lag_ms=%.3f %s" % (stream, seq, lag_ms, payload.decode("utf-8", "replace")), flush=True)
        if args.count and n >= args.count:
            return 0


if __name__ == "__main__":
    sys.exit(main())
