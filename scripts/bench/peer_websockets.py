"""The ``websockets`` peer: python-websockets' asyncio server and its `broadcast()`.

    python -m scripts.bench.peer_websockets

A subscribe message adds the connection to a set and gets the snapshot frame; per
event one `json.dumps`, then ``broadcast(subscribers, frame)``, which writes the
frame to every connection's transport without awaiting (a connection whose buffer
is above the high-water mark is still written to; websockets skips only closed ones).
Compression off, as in every mode; everything else at the library's defaults
(keepalive ping every 20 s). Commands on stdin: `scripts.bench.common`.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from scripts.bench.common import BACKLOG, SNAPSHOT_TEXT, control_loop, event_message, serve_main


async def run(stop: asyncio.Event) -> None:
    subscribers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, str) and '"subscribe"' in message:
                    subscribers.add(ws)
                    await ws.send(SNAPSHOT_TEXT)
        except ConnectionClosed:
            pass  # the load generator aborts its connections at the end of a run
        finally:
            subscribers.discard(ws)

    async def publish(seq: int, t: int) -> None:
        broadcast(subscribers, json.dumps(event_message(seq, t), separators=(",", ":")))

    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=BACKLOG) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await control_loop(port, publish, lambda: len(subscribers), stop)


if __name__ == "__main__":
    serve_main(run)
