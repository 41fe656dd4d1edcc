"""The ``socketio`` peer: python-socketio's AsyncServer on aiohttp, one room, `emit` to it.

    python -m scripts.bench.peer_socketio

Clients connect with the WebSocket transport directly
(``/socket.io/?EIO=4&transport=websocket``), join the default namespace (``40``),
then emit ``subscribe``; the handler enters the room ``bench`` and emits the snapshot
to that client. Per event, ``await sio.emit("e", message, room="bench")``: python-
socketio encodes the packet once (compact JSON, the same bytes as the other modes'
frame) and starts one task per recipient that puts it on the client's engine.io
queue, whose writer task sends it. On the wire an event is socket.io's framing
around the common frame: ``42["e",<the ~250-byte JSON>]`` (8 more bytes). Defaults
otherwise (engine.io ping every 25 s). Commands on stdin: `scripts.bench.common`.
"""

from __future__ import annotations

import asyncio
import json

import socketio
from aiohttp import web

from scripts.bench.common import BACKLOG, SNAPSHOT_TEXT, TOPIC, control_loop, event_message, serve_main

SNAPSHOT = json.loads(SNAPSHOT_TEXT)


async def run(stop: asyncio.Event) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    members: set[str] = set()

    @sio.on("subscribe")  # type: ignore[untyped-decorator,unused-ignore]
    async def subscribe(sid: str, *_args: object) -> None:
        await sio.enter_room(sid, TOPIC)
        members.add(sid)
        await sio.emit("s", SNAPSHOT, to=sid)

    @sio.on("disconnect")  # type: ignore[untyped-decorator,unused-ignore]
    async def disconnect(sid: str, *_args: object) -> None:
        members.discard(sid)

    async def publish(seq: int, t: int) -> None:
        await sio.emit("e", event_message(seq, t), room=TOPIC)

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    try:
        await control_loop(runner.addresses[0][1], publish, lambda: len(members), stop)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    serve_main(run)
