"""The aiohttp bench servers, run as subprocesses by `scripts.bench.fanout`.

    python -m scripts.bench.server --mode bare|hub|hub-sse

Each serves ``GET /api/realtime`` on 127.0.0.1 (ephemeral port) and takes commands on
stdin (`scripts.bench.common`):

- ``bare``, the baseline: aiohttp with a set of `WebSocketResponse`s. A subscribe
  message gets the snapshot frame; per event one `json.dumps`, then
  ``for ws in clients: await ws.send_str(frame)``. No send queue, no slow-consumer
  protection.
- ``hub``: the library, `setup_realtime` with one topic ``bench``; per event
  ``await hub.publish("bench", payload)``: validate, serialise once, append the same
  bytes to every subscriber's outbox; the `Flusher` writes each ready connection once
  per loop tick.
- ``hub-sse``: the same hub, whose clients connect to ``GET /api/realtime/sse``
  (mounted by `setup_realtime` beside the WebSocket) and POST their subscribe: the
  same publish, the same outboxes, each frame's SSE bytes built once and shared.

Both use the same WebSocket heartbeat (the hub's default), so each connection has
the same timer. With ``BENCH_PROFILE=<file>`` the server runs under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel

from scripts.bench.common import (
    BACKLOG,
    SNAPSHOT_TEXT,
    TOPIC,
    Publish,
    control_loop,
    event_message,
    serve_main,
    tick,
)

#: The hub's default heartbeat (RealtimeSettings.heartbeat_s; tests/test_bench_fanout.py keeps them
#: equal): the same timer per connection in both modes. Not imported, so that ``bare`` does not load
#: the library.
HEARTBEAT_S = 25
CLIENTS_KEY = web.AppKey("bench_clients", set)
#: An app, its publish function and its subscriber count.
Built = tuple[web.Application, Publish, Callable[[], int]]


class Tick(BaseModel):
    op: Literal["tick"]
    n: int
    symbol: str
    price: float
    volume: int
    t: int
    note: str


class Ticks(BaseModel):
    count: int


# ---------------------------------------------------------------- bare


async def bare_ws(request: web.Request) -> web.StreamResponse:
    clients: set[web.WebSocketResponse] = request.app[CLIENTS_KEY]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and '"subscribe"' in msg.data:
                clients.add(ws)
                await ws.send_str(SNAPSHOT_TEXT)
    finally:
        clients.discard(ws)
    return ws


def build_bare() -> Built:
    app = web.Application()
    clients: set[web.WebSocketResponse] = set()
    app[CLIENTS_KEY] = clients
    app.router.add_get("/api/realtime", bare_ws)

    async def publish(seq: int, t: int) -> None:
        frame = json.dumps(event_message(seq, t), separators=(",", ":"))
        for ws in list(clients):
            await ws.send_str(frame)

    return app, publish, lambda: len(clients)


# ---------------------------------------------------------------- hub


def build_hub() -> Built:
    from aiohttp_realtime import HUB_KEY, RealtimeSettings, TopicDef, TopicRegistry, setup_realtime

    app = web.Application()
    registry = TopicRegistry()
    registry.add(TopicDef(TOPIC, Ticks, Tick), lambda _params: Ticks(count=0))
    # Every default but the connection limits: the load generators open thousands of
    # connections from a few loopback addresses (the per-address default is 256).
    settings = RealtimeSettings(max_connections=100_000, max_connections_per_address=100_000)
    hub = setup_realtime(app, registry, settings=settings)
    assert app[HUB_KEY] is hub

    async def publish(seq: int, t: int) -> None:
        await hub.publish(TOPIC, tick(seq, t))

    return app, publish, lambda: hub.subscriber_count(TOPIC)


# ---------------------------------------------------------------- main

BUILDERS = {"bare": build_bare, "hub": build_hub, "hub-sse": build_hub}


async def serve(mode: str, stop: asyncio.Event) -> None:
    app, publish, subscribers = BUILDERS[mode]()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    try:
        await control_loop(runner.addresses[0][1], publish, subscribers, stop)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(BUILDERS), required=True)
    args = parser.parse_args(argv)
    serve_main(lambda stop: serve(args.mode, stop))


if __name__ == "__main__":
    main()
