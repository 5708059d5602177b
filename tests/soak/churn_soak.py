#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Churn soak: CLIENTS subscribers connect, read a random amount and vanish
(reset, half-close then close, stall then close, plain close) over and over for
SECONDS while the relay publishes RATE frames/s. Then the relay's file
descriptors and threads must be back to their baseline, its RSS near it, and
/stats must list no subscriber that is gone.

    tests/soak/churn_soak.py [--seconds 180] [--clients 200] [--rate 50000]

Exits 0 when every check holds; prints the figures either way."""

import argparse
import random
import socket
import struct
import sys
import threading
import time

from relaylib import Relay, metrics_plugin_section, wait_until


def client_loop(port, stop, counts, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            counts["connect_failed"] += 1
            continue
        counts["sessions"] += 1
        try:
            want = rng.randint(0, 256 * 1024)
            got = 0
            s.settimeout(2)
            while got < want:
                data = s.recv(min(65536, want - got))
                if not data:
                    break
                got += len(data)
            how = rng.choice(["reset", "half_close", "stall", "close"])
            counts[how] += 1
            if how == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif how == "half_close":
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)
            elif how == "stall":
                stop.wait(rng.uniform(0, 1.5))  # a subscriber that stops reading for a while
        except OSError:
            counts["errors"] += 1
        finally:
            s.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=50000)
    args = parser.parse_args()

    relay = Relay("upstream: {type: generator, rate: %d, size: 100}\n"
                  "listeners:\n  - {name: main, bind: '127.0.0.1:0', max_clients: %d}\n"
                  % (args.rate, args.clients + 16) + metrics_plugin_section())
    port = relay.port("main")
    metrics = relay.metrics_port()
    relay.wait_for("relay started")
    counts = {k: 0 for k in ["sessions", "reset", "half_close", "stall", "close", "errors", "connect_failed"]}

    def churn(seconds):
        """Runs the clients for `seconds`; returns the relay's peak RSS meanwhile."""
        stop = threading.Event()
        threads = [threading.Thread(target=client_loop, args=(port, stop, counts, i)) for i in range(args.clients)]
        for t in threads:
            t.start()
        peak = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end and relay.alive():
            peak = max(peak, relay.rss_kib())
            stop.wait(1)
        stop.set()
        for t in threads:
            t.join()
        return peak

    # Warm-up: POCO's HTTP server (the metrics plugin) grows its thread pool on
    # demand up to a bound; concurrent scrapes take it there, and churn takes the
    # accept hand-off there, before the baseline is taken.
    scrapers = [threading.Thread(target=relay.stats, args=(metrics,)) for _ in range(16)]
    for t in scrapers:
        t.start()
    for t in scrapers:
        t.join()
    churn(3)
    wait_until(lambda: relay.stats(metrics)["listeners"][0]["clients"] == 0, 30)
    baseline = {"fds": relay.fds(), "threads": relay.threads(), "rss_kib": relay.rss_kib()}
    print("baseline after a 3 s warm-up: %(fds)d fds, %(threads)d threads, RSS %(rss_kib)d KiB" % baseline)
    print("threads by name: %s" % relay.thread_names())
    peak_rss = churn(args.seconds)

    ok = relay.alive()
    gone = wait_until(lambda: relay.stats(metrics)["listeners"][0]["clients"] == 0, 30)
    stats = relay.stats(metrics)
    dead = [c["name"] for c in stats["consumers"] if c["kind"] == "subscriber"]
    # Closed sockets linger in the writers for at most one event-loop turn.
    settled = wait_until(lambda: relay.fds() <= baseline["fds"] and relay.threads() <= baseline["threads"], 30)
    after = {"fds": relay.fds(), "threads": relay.threads(), "rss_kib": relay.rss_kib()}
    listener = stats["listeners"][0]
    print("sessions: %(sessions)d (reset %(reset)d, half-close %(half_close)d, stall %(stall)d, close %(close)d, "
          "errors %(errors)d, connect failures %(connect_failed)d)" % counts)
    print("relay: accepted %d, disconnects %s, frames %d" % (listener["accepted"], listener["disconnects"],
                                                            stats["frames_received"]))
    print("threads by name: %s" % relay.thread_names())
    print("after: %(fds)d fds, %(threads)d threads, RSS %(rss_kib)d KiB; peak RSS during churn %(peak)d KiB"
          % dict(after, peak=peak_rss))
    checks = [
        ("relay alive", ok),
        ("listener clients back to 0", gone),
        ("no dead subscriber in /stats", not dead),
        ("fds and threads back to baseline", settled),
        ("RSS within baseline + 64 MiB", after["rss_kib"] <= baseline["rss_kib"] + 64 * 1024),
    ]
    code, took = relay.stop()
    checks.append(("SIGTERM exits 0", code == 0))
    for name, passed in checks:
        print("%s: %s" % ("ok  " if passed else "FAIL", name))
    if dead:
        print("dead subscribers listed: %s" % dead[:10])
    return 0 if all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
