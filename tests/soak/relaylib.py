# SPDX-License-Identifier: Apache-2.0
"""Helpers for the soak scripts: run the real relay, read its log, look at the
process from /proc, ask the metrics plugin for /stats. Standard library only."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("STREAMRELAY_BUILD", os.path.join(ROOT, "build"))
RELAY = os.path.join(BUILD, "core", "streamrelay")
FEED = os.path.join(BUILD, "tools", "streamrelay-feed")
PLUGINS = os.path.join(BUILD, "plugins")


class Relay:
    """The relay as a child process, its stderr collected line by line."""

    def __init__(self, config_text):
        self.dir = tempfile.mkdtemp(prefix="streamrelay-soak.")
        self.config = os.path.join(self.dir, "relay.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.lines = []
        self.changed = threading.Condition()
        self.proc = subprocess.Popen([RELAY, "--config", self.config], stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern, timeout=15):
        """The first match of `pattern` in the log, waiting up to `timeout` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError("no log line matching %r; log:\n%s" % (pattern, "\n".join(self.lines[-30:])))
                self.changed.wait(left)

    def count(self, pattern):
        regex = re.compile(pattern)
        with self.changed:
            return sum(1 for line in self.lines if regex.search(line))

    def port(self, listener):
        return int(self.wait_for(r"listener %s: listening on .*:(\d+) " % listener).group(1))

    def publisher_port(self):
        return int(self.wait_for(r"listening for publishers on .*:(\d+)").group(1))

    def metrics_port(self):
        return int(self.wait_for(r"plugin metrics: serving http://127.0.0.1:(\d+)/").group(1))

    def stats(self, metrics_port):
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % metrics_port, timeout=10) as reply:
            return json.loads(reply.read())

    def alive(self):
        return self.proc.poll() is None

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def status(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def threads(self):
        return self.status("Threads")

    def thread_names(self):
        """{name: count} of the relay's threads."""
        names = {}
        for task in os.listdir("/proc/%d/task" % self.proc.pid):
            try:
                with open("/proc/%d/task/%s/comm" % (self.proc.pid, task)) as f:
                    name = f.read().strip()
            except OSError:
                continue
            names[name] = names.get(name, 0) + 1
        return names

    def rss_kib(self):
        return self.status("VmRSS")

    def stop(self, timeout=30):
        """SIGTERM; returns (exit code, seconds it took)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start


def wait_until(condition, timeout, interval=0.05):
    """Checks `condition` until it holds or `timeout` s pass (a poll under a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def metrics_plugin_section(extra=""):
    return ("plugins:\n  directory: %s\n  instances:\n"
            "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n%s" % (PLUGINS, extra))
