#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A streamrelay subscriber in Python, standard library only (socket, ssl, json).

It speaks the `streamrelay` listener protocol: one hello line of JSON, the
relay's answer (one frame of JSON), then frames that each carry a 24-byte
big-endian header:

    u32 payload bytes | u16 stream id | u16 flags | u64 seq | i64 receive time (ns since the Unix epoch)

Control frames (stream id 0xFFFF) are the answer, then heartbeats
({"type": "heartbeat"}) when the relay had nothing to send for the answer's
`heartbeat_ms`: a relay silent for three of those is taken for gone. On a lost
connection it connects again and resumes after the last seq it printed; the
answer then says whether the relay still had everything (`recovered`) and
where each stream restarts (`first_seq`). Given several relays of a fleet
(HOST:PORT,HOST:PORT), it connects to the first that answers, and after a
lost connection to the next one, resuming there. A refusal by the relay (a
bad token, an unknown stream) ends it with exit code 1: connecting again
would not help.

    streamrelay_client.py 127.0.0.1:7001 --token "$TOKEN" --ca ca.pem --inputs trades
    streamrelay_client.py h1:7001,h2:7001                               # two relays of a fleet
    streamrelay_client.py 127.0.0.1:7001 --resume 8734562934:1200      # after seq 1200 of that epoch

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
FLAG_SNAPSHOT = 1  # the newest frame of its key, sent before live frames (hello snapshot)
FLAG_CONFLATED = 2  # older frames of its key were skipped for this subscriber
MAX_FRAME_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 30


class Refused(Exception):
    """The relay refused the hello: no reconnect would change that."""


class ProtocolError(Exception):
    """The relay sent something this client cannot read."""


def read_exactly(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the relay closed the connection")
        data += chunk
    return bytes(data)


def read_frame(sock):
    length, stream, flags, seq, received_ns = HEADER.unpack(read_exactly(sock, HEADER.size))
    if length > MAX_FRAME_BYTES:  # never allocate what a header claims
        raise ProtocolError("frame of %d bytes announced, over the limit" % length)
    return stream, flags, seq, received_ns, read_exactly(sock, length)


def parse_resume(text):
    """EPOCH:SEQ (the only stream asked for) or EPOCH:STREAM=SEQ,STREAM=SEQ."""
    epoch, sep, rest = text.partition(":")
    try:
        if not sep:
            raise ValueError
        if "=" not in rest:
            return int(epoch), int(rest)
        return int(epoch), {name: int(seq) for name, seq in (item.split("=", 1) for item in rest.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError("expected EPOCH:SEQ or EPOCH:STREAM=SEQ,... (got %r)" % text)


class Subscriber:
    def __init__(self, addresses, token=None, inputs=None, ca=None, cert=None, key=None, server_name=None,
                 resume=None, select=None, snapshot=False):
        self.addresses = addresses  # [(host, port)]: the relays, tried in turn
        self.current = 0  # the one connected to (or tried last)
        self.token, self.inputs = token, inputs
        self.select, self.snapshot = select, snapshot
        self.tls = None
        if ca or cert:
            self.tls = ssl.create_default_context(cafile=ca)
            if cert:
                self.tls.load_cert_chain(cert, key)
        self.server_name = server_name
        # Where a new connection resumes: the epoch and, per stream, the last
        # seq had (a bare number before the first answer names the stream).
        self.epoch, self.after_seq = resume if resume else (None, {})
        self.epochs = {}  # a stream's own epoch where the answer gives it another (a logged stream beside others)
        self.names = {}
        self.heartbeat_ms = 0  # from the latest answer

    def connect_any(self):
        """Connects to the current relay or else to each of the others in turn."""
        for tried in range(len(self.addresses)):
            try:
                return self.connect(self.addresses[self.current])
            except OSError:
                if tried + 1 == len(self.addresses):
                    raise
                self.current = (self.current + 1) % len(self.addresses)

    def connect(self, address):
        sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_name or address[0])
            hello = {}
            if self.token:
                hello["token"] = self.token
            if self.inputs:
                hello["inputs"] = self.inputs
            if self.select:
                hello["select"] = self.select  # key patterns: md.*.BTC, md.eu.>
            if self.snapshot:
                hello["snapshot"] = True  # the relay leaves it out of a resume that continues
            if self.after_seq != {} and isinstance(self.after_seq, dict) and self.epochs:
                # Streams of different epochs: each position names its own.
                hello["resume"] = {"after_seq": {
                    name: {"epoch": str(self.epochs.get(name, self.epoch)), "seq": seq}
                    for name, seq in self.after_seq.items() if self.epochs.get(name, self.epoch) is not None}}
            elif self.epoch is not None and self.after_seq != {}:
                hello["resume"] = {"epoch": str(self.epoch), "after_seq": self.after_seq}
            sock.sendall((json.dumps(hello) + "\n").encode())
            stream, _flags, _seq, _t, payload = read_frame(sock)
            self.take_answer(stream, payload)
        except BaseException:
            sock.close()
            raise
        # Heartbeats come every heartbeat_ms when nothing else does: three
        # missed, and the relay is taken for gone. None announced: no limit.
        sock.settimeout(3 * self.heartbeat_ms / 1000 if self.heartbeat_ms > 0 else None)
        return sock

    def take_answer(self, stream, payload):
        try:
            answer = json.loads(payload)
        except ValueError:
            raise ProtocolError("the answer is not JSON: %r" % payload[:200])
        if stream != CONTROL_STREAM or not isinstance(answer, dict):
            raise ProtocolError("the relay's first frame is not its answer")
        if not answer.get("ok"):
            raise Refused("the relay refused the hello: %s" % answer.get("error", payload.decode("utf-8", "replace")))
        print("connected: %s (%s:%d)" % ((payload.decode(),) + self.addresses[self.current]), file=sys.stderr)
        try:
            # Decimal strings (numbers from older relays). The top-level epoch
            # is there when every stream shares it; each stream names its own.
            epoch = int(answer["epoch"]) if "epoch" in answer else None
            self.heartbeat_ms = int(answer.get("heartbeat_ms", 0))
            streams = {name: (int(start["id"]), int(start["first_seq"]), start.get("recovered"),
                              int(start["epoch"]) if "epoch" in start else epoch)
                       for name, start in answer["streams"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError("the answer lacks epoch or streams: %r" % payload[:200])
        if epoch != self.epoch or not isinstance(self.after_seq, dict):  # another run, or a bare SEQ given
            self.epoch, self.after_seq = epoch, {}
        self.names = {}
        self.epochs = {name: e for name, (_, _, _, e) in streams.items() if e != epoch}
        for name, (stream_id, first_seq, recovered, _) in streams.items():
            self.names[stream_id] = name
            # Recovered: it continues after our seq. Otherwise (or a stream we
            # had nothing of) it starts at first_seq.
            if recovered is not True or name not in self.after_seq:
                self.after_seq[name] = first_seq - 1

    def frames(self):
        """Yields (stream, seq, received_ns, payload, flags) forever, reconnecting with backoff.

        Raises Refused or ProtocolError, which connecting again would not cure."""
        delay = 0.1
        while True:
            try:
                sock = self.connect_any()
                delay = 0.1
                with sock:
                    while True:
                        stream, flags, seq, received_ns, payload = read_frame(sock)
                        if stream == CONTROL_STREAM:
                            continue  # a heartbeat, or a control message this client does not know
                        name = self.names.get(stream, str(stream))
                        self.after_seq[name] = seq
                        yield name, seq, received_ns, payload, flags
            except OSError as e:  # refused, reset, closed, timed out, TLS errors
                print("connection lost (%s); reconnecting in %.1f s" % (str(e) or type(e).__name__, delay), file=sys.stderr)
                time.sleep(delay)  # reconnect backoff
                delay = min(delay * 2, 5.0)
                # The next relay first, the one just lost last: in a fleet
                # they serve the same streams with the same (epoch, seq).
                self.current = (self.current + 1) % len(self.addresses)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT of a listener with protocol: streamrelay (several: H1:P1,H2:P2)")
    parser.add_argument("--token")
    parser.add_argument("--inputs", help="streams wanted, comma-separated (default: all)")
    parser.add_argument("--select", help="key patterns wanted, comma-separated (md.*.BTC,md.eu.>; default: every frame)")
    parser.add_argument("--snapshot", action="store_true", help="first the newest frame of each selected key")
    parser.add_argument("--resume", type=parse_resume, metavar="EPOCH:SEQ",
                        help="start after seq SEQ of epoch EPOCH; several streams: EPOCH:STREAM=SEQ,STREAM=SEQ")
    parser.add_argument("--ca", help="PEM CA file: connect with TLS")
    parser.add_argument("--cert", help="client certificate (mutual TLS)")
    parser.add_argument("--key", help="its key")
    parser.add_argument("--server-name", help="the name the relay's certificate must carry")
    parser.add_argument("--count", type=int, default=0, help="exit after N frames")
    args = parser.parse_args()
    addresses = []
    for item in args.address.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            parser.error("address: expected HOST:PORT or [IPv6]:PORT, got %r" % item)
        addresses.append((host.strip("[]"), int(port)))
    sub = Subscriber(addresses, args.token, args.inputs.split(",") if args.inputs else None,
                     args.ca, args.cert, args.key, args.server_name, args.resume,
                     args.select.split(",") if args.select else None, args.snapshot)
    try:
        for n, (stream, seq, received_ns, payload, flags) in enumerate(sub.frames(), 1):
            lag_ms = (time.time_ns() - received_ns) / 1e6
            marks = ("snapshot " if flags & FLAG_SNAPSHOT else "") + ("conflated " if flags & FLAG_CONFLATED else "")
            print("%s seq=%d %slag_ms=%.3f %s" % (stream, seq, marks, lag_ms, payload.decode("utf-8", "replace")),
                  flush=True)
            if args.count and n >= args.count:
                return 0
    except (Refused, ProtocolError) as e:
        print("streamrelay_client.py: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
