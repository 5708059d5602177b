#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""account_feed.py - a provider that lets an account hold ONE connection, for
the failover tests. It listens on --ports ports of 127.0.0.1 (the primary
first), all serving the same account in --protocol:

  tcp   4-byte big-endian length + payload
  ws    WebSocket, one text message per frame (a minimal RFC 6455 server)
  http  one chunked NDJSON response

Every connection gets frames "feed N" (N from 1) at --rate per second. The
connections open across all ports are counted, and every change is one line:
"account-feed: port I: connection opened (open now N, peak P)". A connection
stops counting the moment it is known to end (before this side closes), so a
client that waits for the close to finish before it connects again is never
counted twice.

It prints "account-feed: listening on 127.0.0.1:P0,P1,...", then takes
commands on stdin, one a line, each answered by "account-feed: VERB I done":
  down I   stop listening on port I and drop its connections abruptly
           (a TCP reset: no close frame, no end of response); the port
           stays bound (connects are refused), so no other process takes it
  up I     listen on port I again
  end I    end port I's connections as planned: ws close 1012 (service
           restart), http the response's last chunk, tcp a FIN
  quiet I  send no frames on port I (its connections stay open)
  talk I   send frames on port I again
It logs how each connection ended ("closed by the client with code 1000").

With --exclusive the account refuses a second connection while one is open
(it is reset at once, never counted) and logs "a second connection refused
(open now N)": the rule of a provider that fences its clients itself."""
import argparse
import asyncio
import base64
import hashlib
import socket
import struct
import sys


def log(text):
    print("account-feed: " + text, file=sys.stderr, flush=True)


class Connection:
    """One client connection: a sender task, and a reader that notices its end."""

    def __init__(self, account, index, reader, writer):
        self.account, self.index, self.reader, self.writer = account, index, reader, writer
        self.counted = False
        self.ended = False
        self.close_sent = False  # ws: this side sent its close frame

    def finish(self, how):
        """The connection is over (whoever ends it): uncounted before anything is closed."""
        if self.ended:
            return
        self.ended = True
        self.account.closed(self, how)

    def abort(self):
        self.finish("dropped abruptly")
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def end(self):
        self.finish("ended as planned")
        protocol = self.account.protocol
        try:
            if protocol == "ws":
                self.close_sent = True
                self.writer.write(b"\x88" + bytes([2 + 15]) + struct.pack(">H", 1012) + b"service restart")
            elif protocol == "http":
                self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
            if protocol != "ws":
                self.writer.close()  # the ws client answers the close frame and closes first
        except OSError:
            pass

    def frame(self, n):
        payload = b"feed %d" % n
        if self.account.protocol == "tcp":
            return struct.pack(">I", len(payload)) + payload
        if self.account.protocol == "ws":
            return b"\x81" + bytes([len(payload)]) + payload
        line = payload + b"\n"
        return b"%x\r\n%s\r\n" % (len(line), line)

    async def send(self):
        n, tick = 0, 0.005
        per_tick = max(1, int(self.account.rate * tick))
        while not self.ended:
            if self.index not in self.account.quiet:
                out = b""
                for _ in range(per_tick):
                    n += 1
                    out += self.frame(n)
                self.writer.write(out)
                try:
                    await self.writer.drain()
                except OSError:
                    return
            await asyncio.sleep(tick)

    async def read_ws_frames(self):
        """Client frames until its close (answered) or EOF."""
        while True:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            mask = await self.reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(await self.reader.readexactly(length)))
            opcode = head[0] & 0x0F
            if opcode == 9:
                self.writer.write(b"\x8a" + bytes([len(data)]) + data)
            elif opcode == 8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                self.finish("closed by the client with code %d" % code)
                if not self.close_sent:
                    self.writer.write(b"\x88" + bytes([len(data)]) + data)
                self.writer.close()
                return

    async def run(self):
        protocol = self.account.protocol
        if protocol in ("ws", "http"):
            request = await self.reader.readuntil(b"\r\n\r\n")
            if protocol == "http":
                self.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            else:
                key = [l.split(b":", 1)[1].strip() for l in request.split(b"\r\n")
                       if l.lower().startswith(b"sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                self.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        sender = asyncio.ensure_future(self.send())
        try:
            if protocol == "ws":
                await self.read_ws_frames()
            else:
                while await self.reader.read(65536):
                    pass
                self.finish("closed by the client")
        except (asyncio.IncompleteReadError, OSError):
            self.finish("closed by the client without a close frame" if protocol == "ws" else "closed by the client")
        finally:
            sender.cancel()
            if not self.writer.is_closing():
                self.writer.close()


class Account:
    def __init__(self, protocol, rate, count):
        self.protocol, self.rate = protocol, rate
        self.ports = [0] * count
        self.servers = [None] * count
        self.holders = [None] * count  # a port that is down: bound, not listening
        self.connections = [set() for _ in range(count)]
        self.quiet = set()
        self.open = 0
        self.peak = 0
        self.exclusive = False

    def opened(self, connection):
        connection.counted = True
        self.connections[connection.index].add(connection)
        self.open += 1
        self.peak = max(self.peak, self.open)
        log("port %d: connection opened (open now %d, peak %d)" % (connection.index, self.open, self.peak))

    def closed(self, connection, how):
        if not connection.counted:
            return
        self.connections[connection.index].discard(connection)
        self.open -= 1
        log("port %d: connection %s (open now %d, peak %d)" % (connection.index, how, self.open, self.peak))

    async def listen(self, index):
        async def accepted(reader, writer):
            if self.exclusive and self.open >= 1:
                log("port %d: a second connection refused (open now %d)" % (index, self.open))
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            connection = Connection(self, index, reader, writer)
            self.opened(connection)
            await connection.run()

        # SO_REUSEPORT: the holder of a port that is down shares it until the
        # server listens again, so the port is never free in between.
        self.servers[index] = await asyncio.start_server(accepted, "127.0.0.1", self.ports[index],
                                                         reuse_address=True, reuse_port=True)
        self.ports[index] = self.servers[index].sockets[0].getsockname()[1]
        if self.holders[index] is not None:
            self.holders[index].close()
            self.holders[index] = None

    def hold(self, index):
        """Keeps port `index` bound, not listening: a connect to it is refused."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", self.ports[index]))
        self.holders[index] = holder

    async def command(self, verb, index):
        if verb == "down":
            self.hold(index)
            self.servers[index].close()  # no new connection first, then the drop
            for connection in list(self.connections[index]):
                connection.abort()
        elif verb == "up":
            await self.listen(index)
        elif verb == "end":
            for connection in list(self.connections[index]):
                await connection.end()
        elif verb == "quiet":
            self.quiet.add(index)
        elif verb == "talk":
            self.quiet.discard(index)
        log("%s %d done" % (verb, index))


async def commands(account):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        verb, index = line.decode().split()
        await account.command(verb, int(index))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["tcp", "ws", "http"], required=True)
    p.add_argument("--ports", type=int, default=2)
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--exclusive", action="store_true", help="refuse a second connection while one is open")
    args = p.parse_args()
    account = Account(args.protocol, args.rate, args.ports)
    account.exclusive = args.exclusive
    for index in range(args.ports):
        await account.listen(index)
    log("listening on 127.0.0.1:%s" % ",".join(str(port) for port in account.ports))
    asyncio.ensure_future(commands(account))
    await asyncio.sleep(args.max_seconds)


if __name__ == "__main__":
    asyncio.run(main())
