#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Drives a headless Chromium over the DevTools protocol for an integration
test: opens URL, then takes commands on stdin, one a line, and answers each
on stderr (which the test reads):

  wait SECONDS EXPR   evaluates the JavaScript EXPR in the page until it is
                      true or SECONDS pass: "TRUE" or "TIMEOUT"
  eval EXPR           "VALUE <EXPR as JSON>"

It ends, closing Chromium, when stdin ends. Exit 77 (printing "SKIP why")
when there is no Chromium. Needs python3-websockets.

usage: browser_driver.py URL
"""
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def say(line):
    print(line, file=sys.stderr, flush=True)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page target, spoken to over its DevTools WebSocket."""

    def __init__(self, socket):
        self.socket = socket
        self.ids = itertools.count(1)

    async def call(self, method, **params):
        call_id = next(self.ids)
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:  # events come in between; only the answer to this call counts
            message = json.loads(await self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            return None  # not yet defined (the page still loading): the caller waits on
        return result["result"].get("value")


async def wait_for_port(profile, browser, deadline):
    """Chromium writes its DevTools port to DevToolsActivePort once it listens."""
    path = os.path.join(profile, "DevToolsActivePort")
    while time.monotonic() < deadline:
        if browser.poll() is not None:
            raise RuntimeError(f"chromium exited with {browser.returncode}")
        try:
            with open(path) as f:
                port = f.readline().strip()
            if port:
                return int(port)
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.05)  # backoff while polling for the file
    raise RuntimeError("chromium did not open its DevTools port")


async def run(url):
    chromium = find_chromium()
    if not chromium:
        say("SKIP chromium is not installed (Debian: apt-get install chromium)")
        return 77
    profile = tempfile.mkdtemp(prefix="streamrelay-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = await wait_for_port(profile, browser, time.monotonic() + 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        target = next(t for t in targets if t.get("type") == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.call("Page.navigate", url=url)
            say("OPENED " + url)
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return 0
                command, _, rest = line.strip().partition(" ")
                if command == "wait":
                    seconds, _, expression = rest.partition(" ")
                    deadline = time.monotonic() + float(seconds)
                    while not await page.evaluate(expression):
                        if time.monotonic() > deadline:
                            say("TIMEOUT")
                            break
                        await asyncio.sleep(0.05)  # polling the page's state, with a deadline
                    else:
                        say("TRUE")
                elif command == "eval":
                    say("VALUE " + json.dumps(await page.evaluate(rest)))
                else:
                    say(f"ERROR unknown command '{command}' (wait, eval)")
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        say("usage: browser_driver.py URL")
        return 2
    try:
        return asyncio.run(run(sys.argv[1]))
    except Exception as e:  # one line the test shows, and a failing exit code
        say(f"ERROR {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
