#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ws_feed.py - a WebSocket provider for the integration tests, on the
`websockets` library (python3-websockets): it listens on 127.0.0.1 (port 0:
any free port; with --cert/--key it speaks wss), prints
"ws-feed: listening on 127.0.0.1:PORT" and one line per event to stderr, and
exits after --max-seconds. When a connection ends it logs how:
"connection to PATH closed by the client with code C" (the code of the
client's close frame; 1006 if it sent none) or "... closed by the server".

  /feed?n=N[&expect=1][&rate=R]  (R messages per second if given)
                        (waits for one message from the client first, and logs
                        it), then N messages "feed i": text, every 3rd binary,
                        every 5th fragmented in three; then pings and logs the
                        pong; then holds the connection
  /oversize             "feed 1", then a message of 2 MiB, then holds
  /close[?code=C[&reason=R]]  "feed 1".."feed 3", then closes with C and
                        reason R (default 4001 "maintenance")
  /invalid              "feed 1", then a frame with a reserved opcode (0xB):
                        not WebSocket
"""
import argparse
import asyncio
import ssl
import sys
from urllib.parse import parse_qs, urlparse

import websockets


def log(text):
    print("ws-feed: " + text, file=sys.stderr, flush=True)


async def handler(ws, path=None):
    url = urlparse(path or ws.path)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    log("connection to %s" % url.path)
    try:
        if url.path == "/feed":
            if q.get("expect") == "1":
                log("received %r" % await ws.recv())
            rate = float(q.get("rate", "0"))
            for i in range(1, int(q.get("n", "100")) + 1):
                if rate:
                    await asyncio.sleep(1 / rate)
                text = "feed %d" % i
                if i % 5 == 0:
                    await ws.send([text[:2], text[2:4], text[4:]])
                elif i % 3 == 0:
                    await ws.send(text.encode())
                else:
                    await ws.send(text)
            pong = await ws.ping()
            await asyncio.wait_for(pong, 10)
            log("pong received")
        elif url.path == "/oversize":
            await ws.send("feed 1")
            await ws.send("x" * (2 << 20))
        elif url.path == "/invalid":
            await ws.send("feed 1")
            await asyncio.sleep(0.2)  # "feed 1" goes out on its own first
            ws.transport.write(b"\x8b\x05hello")
        elif url.path == "/close":
            for i in range(1, 4):
                await ws.send("feed %d" % i)
            await ws.close(int(q.get("code", "4001")), q.get("reason", "" if "code" in q else "maintenance"))
            log("connection to %s closed by the server" % url.path)
            return
        await ws.wait_closed()
    except websockets.ConnectionClosed as e:
        log("connection closed: %s" % e)
    log("connection to %s closed by the client with code %s" % (url.path, ws.close_code))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    async with websockets.serve(handler, "127.0.0.1", args.port, ssl=context, max_size=None,
                                reuse_address=True) as server:
        log("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1])
        await asyncio.sleep(args.max_seconds)


if __name__ == "__main__":
    asyncio.run(main())
