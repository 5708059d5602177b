#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Shutdown under load: SUBSCRIBERS subscribers and a `block` sqlite_writer
while a feed publishes as fast as it can; SIGTERM after SECONDS. The relay must
exit 0 within shutdown_timeout_ms + 1 s, and every frame it received before
the signal must be in the database, in order.

    tests/soak/shutdown_under_load.py [--seconds 5] [--subscribers 100]

Exits 0 when every check holds; prints the figures either way."""

import argparse
import os
import socket
import sqlite3
import sys
import threading
import time

from relaylib import FEED, PLUGINS, Relay
import subprocess

SHUTDOWN_TIMEOUT_MS = 5000


def subscriber(port, stop):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(1)
        while not stop.is_set():
            try:
                if not s.recv(1 << 20):
                    return
            except socket.timeout:
                continue
    except OSError:
        return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--subscribers", type=int, default=100)
    args = parser.parse_args()

    db_dir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    db = os.path.join(db_dir, "shutdown-soak.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    relay = Relay("upstream: {type: listen, bind: '127.0.0.1:0'}\n"
                  "listeners:\n  - {name: main, bind: '127.0.0.1:0', max_clients: %d}\n"
                  "shutdown_timeout_ms: %d\n"
                  "plugins:\n  directory: %s\n  instances:\n"
                  "    - {name: db, type: sqlite_writer, queue: {on_full: block}, config: {path: %s}}\n"
                  % (args.subscribers + 8, SHUTDOWN_TIMEOUT_MS, PLUGINS, db))
    port = relay.port("main")
    publisher_port = relay.publisher_port()
    relay.wait_for("relay started")
    stop = threading.Event()
    readers = [threading.Thread(target=subscriber, args=(port, stop)) for _ in range(args.subscribers)]
    for t in readers:
        t.start()
    feed = subprocess.Popen([FEED, "--connect", "127.0.0.1:%d" % publisher_port, "--generate", "--rate", "0",
                             "--size", "128", "--hold"], stderr=subprocess.DEVNULL)
    relay.wait_for("publisher .* connected")
    stop.wait(args.seconds)  # the load runs this long before SIGTERM
    code, took = relay.stop(timeout=SHUTDOWN_TIMEOUT_MS / 1000 + 30)
    stop.set()
    feed.kill()
    feed.wait()
    for t in readers:
        t.join()
    received = int(relay.wait_for(r"relay stopped after (\d+) frames received").group(1))
    con = sqlite3.connect(db)
    rows, low, high = con.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM frames").fetchone()
    con.close()
    print("received %d frames before stopping; %d rows in SQLite (seq %s..%s); exit %d after %.2f s"
          % (received, rows, low, high, code, took))
    checks = [
        ("exit 0", code == 0),
        ("within shutdown_timeout_ms + 1 s", took <= SHUTDOWN_TIMEOUT_MS / 1000 + 1),
        ("every frame received is a row, seq 1..N", rows == received and low == 1 and high == received),
    ]
    for name, passed in checks:
        print("%s: %s" % ("ok  " if passed else "FAIL", name))
    return 0 if all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
