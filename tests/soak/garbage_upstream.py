#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Garbage upstream: a `tcp` upstream (the script plays the provider) and then
a `listen` upstream (the script plays publishers) send random bytes,
0xFFFFFFFF length prefixes, frames cut short, and stalls, at full rate, for
SECONDS each, while SUBSCRIBERS read. The relay must never crash, its RSS
must stay bounded, and no subscriber may be disconnected.

    tests/soak/garbage_upstream.py [--seconds 60] [--subscribers 4]

Exits 0 when every check holds; prints the figures either way."""

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

from relaylib import Relay, metrics_plugin_section

RSS_BOUND_KIB = 200 * 1024


def garbage(rng):
    """One burst of bad input: (name, bytes, close_after)."""
    kind = rng.choice(["random", "huge_prefix", "truncated", "good_then_bad", "stall", "good"])
    if kind == "random":
        return kind, os.urandom(rng.randint(1, 256 * 1024)), rng.random() < 0.3
    if kind == "huge_prefix":
        return kind, b"\xff\xff\xff\xff" + os.urandom(rng.randint(0, 4096)), True
    if kind == "truncated":
        return kind, struct.pack(">I", 100000) + os.urandom(rng.randint(0, 99999)), True
    if kind == "good_then_bad":
        good = b"".join(struct.pack(">I", 20) + b"g" * 20 for _ in range(rng.randint(1, 500)))
        return kind, good + b"\xff\xff\xff\xfe", True
    if kind == "stall":
        return kind, b"", False
    frames = b"".join(struct.pack(">I", 50) + b"f" * 50 for _ in range(rng.randint(1, 2000)))
    return kind, frames, False


def send_garbage(sock, rng, stop, counts):
    """Sends bursts on one connection until a burst says close (or the time is up)."""
    while not stop.is_set():
        kind, data, close = garbage(rng)
        counts[kind] = counts.get(kind, 0) + 1
        try:
            if kind == "stall":
                stop.wait(rng.uniform(0.05, 0.5))  # a provider that goes quiet mid-stream
            else:
                sock.sendall(data)
        except OSError:
            return
        if close:
            return


def subscriber(port, stop, results, index):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(1)
    got = 0
    while not stop.is_set():
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not data:
            results[index] = ("closed by the relay", got)
            return
        got += len(data)
    results[index] = ("connected", got)
    s.close()


def run_phase(name, config, feed, args):
    relay = Relay(config + "listeners:\n  - {name: main, bind: '127.0.0.1:0', "
                  "queue: {max_frames: 0, max_bytes: 8388608, on_full: drop_oldest}}\n" + metrics_plugin_section())
    port = relay.port("main")
    metrics = relay.metrics_port()
    relay.wait_for("relay started")
    stop = threading.Event()
    results = [None] * args.subscribers
    readers = [threading.Thread(target=subscriber, args=(port, stop, results, i)) for i in range(args.subscribers)]
    for t in readers:
        t.start()
    counts = {}
    peak = 0
    feeder = threading.Thread(target=feed, args=(relay, stop, counts))
    feeder.start()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end and relay.alive():
        peak = max(peak, relay.rss_kib())
        stop.wait(0.5)
    alive = relay.alive()
    stats = relay.stats(metrics) if alive else {}
    stop.set()
    feeder.join()
    for t in readers:
        t.join()
    code, _ = relay.stop() if alive else (relay.proc.returncode, 0)
    upstream = stats.get("upstream", {})
    print("%s: bursts %s; relay: %d frames, %d protocol errors, %d connects, peak RSS %d KiB"
          % (name, counts, stats.get("frames_received", 0), upstream.get("protocol_errors", 0),
             upstream.get("connects", 0), peak))
    checks = [
        ("%s: relay alive" % name, alive),
        ("%s: RSS under %d KiB" % (name, RSS_BOUND_KIB), peak < RSS_BOUND_KIB),
        ("%s: every subscriber still connected" % name, all(r and r[0] == "connected" for r in results)),
        ("%s: SIGTERM exits 0" % name, code == 0),
    ]
    print("%s: subscribers %s" % (name, results))
    return checks


def tcp_phase(args):
    provider = socket.socket()
    provider.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    provider.bind(("127.0.0.1", 0))
    provider.listen(4)
    provider.settimeout(1)
    config = ("upstream: {type: tcp, host: 127.0.0.1, port: %d, framing: {max_frame_bytes: 65536}, "
              "idle_timeout_ms: 300, reconnect: {initial_delay_ms: 1, max_delay_ms: 20}}\n" % provider.getsockname()[1])

    def feed(relay, stop, counts):
        rng = random.Random(1)
        while not stop.is_set():
            try:
                conn, _ = provider.accept()
            except socket.timeout:
                continue
            send_garbage(conn, rng, stop, counts)
            conn.close()
    try:
        return run_phase("tcp", config, feed, args)
    finally:
        provider.close()


def listen_phase(args):
    config = ("upstream: {type: listen, bind: '127.0.0.1:0', max_publishers: 8, idle_timeout_ms: 300, "
              "framing: {max_frame_bytes: 65536}}\n")

    def feed(relay, stop, counts):
        port = relay.publisher_port()

        def publisher(seed):
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                except OSError:
                    continue
                send_garbage(s, rng, stop, counts)
                s.close()
        workers = [threading.Thread(target=publisher, args=(seed,)) for seed in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return run_phase("listen", config, feed, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--subscribers", type=int, default=4)
    args = parser.parse_args()
    checks = tcp_phase(args) + listen_phase(args)
    for name, passed in checks:
        print("%s: %s" % ("ok  " if passed else "FAIL", name))
    return 0 if all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
