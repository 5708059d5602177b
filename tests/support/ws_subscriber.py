#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A subscriber of a websocket listener built on python3-websockets, an
independent client for the integration tests. Prints to stderr (the test
reads it) one line per message: ANSWER <json> for the first, then
TEXT <message> or BINARY <hex>; at the end CLOSED <code> <reason> if the
relay closed the connection, or DONE after COUNT messages.

  ws_subscriber.py URL COUNT [--hello JSON] [--origin O] [--cafile PEM] [--after TEXT]

--after sends TEXT as a message once the answer came (what a client may
say after its hello: the relay drops it, or closes if it is too big).
"""
import argparse
import asyncio
import ssl
import sys

import websockets


def say(line):
    print(line, file=sys.stderr, flush=True)


async def run(args):
    context = None
    if args.url.startswith("wss://"):
        context = ssl.create_default_context(cafile=args.cafile)
    try:
        async with websockets.connect(args.url, origin=args.origin, ssl=context, max_size=None,
                                      ping_interval=None) as ws:
            if args.hello is not None:
                await ws.send(args.hello)
            say("ANSWER " + await ws.recv())
            if args.after is not None:
                await ws.send(args.after)
            for _ in range(args.count):
                message = await ws.recv()
                say("TEXT " + message if isinstance(message, str) else "BINARY " + message.hex())
            say("DONE")
    except websockets.exceptions.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else 1006
        say("CLOSED %d %s" % (code, e.rcvd.reason if e.rcvd else ""))
    except websockets.exceptions.InvalidStatusCode as e:
        say("REFUSED %d" % e.status_code)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--hello")
    parser.add_argument("--origin")
    parser.add_argument("--cafile")
    parser.add_argument("--after")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
