#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The seed's Python StreamClient, unchanged, against the real relay.

DESIGN.md: "The seed's Python StreamClient must work against the relay
unchanged." The class below is copied from the seed code review (including its
shutdown(SHUT_WR) right after connecting); the test runs the relay with a
generator on an ephemeral port, reads frames with the seed client, then stops
the relay with SIGTERM and expects exit 0.

usage: seed_client_test.py STREAMRELAY_BINARY
"""
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

# --- the seed's client, verbatim -------------------------------------------
HEADER_FORMAT = struct.Struct('!I')


class StreamClient():

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

        self.sock.connect(address)
        self.sock.shutdown(socket.SHUT_WR)
        print('Connected to', self.sock.getsockname())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.sock.close()

    def _recvall(self, size):
        data = b''
        while size:
            block = self.sock.recv(size)

            if not block:
                raise EOFError('Socket closed during message transmission')

            data += block
            size -= len(block)
        return data

    def __iter__(self):
        while True:
            try:
                (item_size,) = HEADER_FORMAT.unpack(self._recvall(HEADER_FORMAT.size))
                yield self._recvall(item_size).decode('utf-8')
            except EOFError:
                return
            except:
                # ...
                # What exceptions to expect?
                raise
# ---------------------------------------------------------------------------


def wait_for_line(stream, pattern, deadline):
    """Reads the relay's stderr until a line matches; None at the deadline."""
    buffered = b''
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        buffered += chunk
        match = re.search(pattern, buffered.decode(errors='replace'))
        if match:
            return match
    return None


def main():
    relay_binary = sys.argv[1]
    with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as config:
        config.write('upstream: {type: generator, rate: 100, size: 30}\n'
                     'listeners: [{name: main, bind: "127.0.0.1:0"}]\n')
    relay = subprocess.Popen([relay_binary, '--config', config.name], stderr=subprocess.PIPE)
    try:
        match = wait_for_line(relay.stderr, r'listener main: listening on 127\.0\.0\.1:(\d+)', time.monotonic() + 10)
        assert match, 'the relay did not start listening'
        port = int(match.group(1))
        socket.setdefaulttimeout(10)  # bounded: a stuck read fails the test instead of hanging
        frames = []
        with StreamClient(('127.0.0.1', port)) as stream:
            for item in stream:
                frames.append(item)
                if len(frames) == 5:
                    break
        assert len(frames) == 5, frames
        for frame in frames:
            assert frame.startswith('frame ') and len(frame) == 30, frame
        numbers = [int(f.split()[1]) for f in frames]
        assert numbers == list(range(numbers[0], numbers[0] + 5)), numbers
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=15) == 0, 'the relay did not exit 0 on SIGTERM'
        print('1 passed, 0 failed')
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
        os.unlink(config.name)


if __name__ == '__main__':
    main()
