"""The fan-out bench server, run as a subprocess by `scripts.bench.fanout`.

    python -m scripts.bench.server --mode bare|hub

Listens on 127.0.0.1 on an ephemeral port and prints ``PORT <n>`` once it serves.
Both modes serve `GET /api/realtime` and `POST /publish?count=K`, which publishes K
events of ~250 bytes to every subscriber and returns when its loop is done (both
modes yield to the event loop every `YIELD_EVERY` events, or ``&yield_every=M``, so
writers can drain):

- ``bare``: the naive baseline. A set of `WebSocketResponse`s and, per event, one
  `json.dumps` then ``for ws in clients: await ws.send_str(frame)``. No send queue,
  no slow-consumer protection. A subscribe message gets a snapshot-shaped frame so
  the client side is the same in both modes.
- ``hub``: the library, `setup_realtime` with one topic ``bench``; per event
  ``await hub.publish("bench", payload)`` (validate, serialise once, push the same
  bytes to each subscriber's byte-bounded queue; one writer task per connection).

With ``BENCH_PROFILE=<file>`` in the environment the whole process runs under
cProfile and the stats are dumped to that file on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import signal
import sys
from typing import Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel

from aiohttp_realtime import HUB_KEY, RealtimeSettings, TopicDef, TopicRegistry, setup_realtime

TOPIC = "bench"
YIELD_EVERY = 50
HEARTBEAT_S = RealtimeSettings().heartbeat_s  # the same heartbeat timer per connection in both modes
CLIENTS_KEY = web.AppKey("bench_clients", set)


class Tick(BaseModel):
    op: Literal["tick"]
    n: int
    symbol: str
    price: float
    volume: int
    note: str


class Ticks(BaseModel):
    count: int


#: Padding that brings a whole event frame (envelope included) to ~250 bytes.
NOTE = "x" * 125


def tick(n: int) -> dict:
    return {"op": "tick", "n": n, "symbol": "ACME", "price": 1234.5, "volume": 1000 + n % 1000, "note": NOTE}


def bare_frame(seq: int) -> str:
    """The same JSON the hub sends for event `seq` (compact separators, same field order)."""
    payload = json.dumps(tick(seq), separators=(",", ":"))
    return f'{{"type":"event","topic":"{TOPIC}","seq":{seq},"payload":{payload}}}'


def _publish_params(request: web.Request) -> tuple[int, int]:
    """`count` events, yielding to the loop every `yield_every` (default YIELD_EVERY)."""
    return int(request.query["count"]), max(1, int(request.query.get("yield_every", YIELD_EVERY)))


# ---------------------------------------------------------------- bare mode


async def bare_ws(request: web.Request) -> web.StreamResponse:
    clients: set[web.WebSocketResponse] = request.app[CLIENTS_KEY]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and '"subscribe"' in msg.data:
                clients.add(ws)
                await ws.send_str(f'{{"type":"snapshot","topic":"{TOPIC}","seq":0,"payload":{{"count":0}}}}')
    finally:
        clients.discard(ws)
    return ws


async def bare_publish(request: web.Request) -> web.Response:
    clients: set[web.WebSocketResponse] = request.app[CLIENTS_KEY]
    count, every = _publish_params(request)
    for seq in range(1, count + 1):
        frame = bare_frame(seq)
        for ws in list(clients):
            await ws.send_str(frame)
        if seq % every == 0:
            await asyncio.sleep(0)
    return web.json_response({"published": count, "subscribers": len(clients)})


def build_bare() -> web.Application:
    app = web.Application()
    app[CLIENTS_KEY] = set()
    app.router.add_get("/api/realtime", bare_ws)
    app.router.add_post("/publish", bare_publish)
    return app


# ---------------------------------------------------------------- hub mode


async def hub_publish(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    count, every = _publish_params(request)
    for i in range(count):
        seq = await hub.publish(TOPIC, tick(i + 1))
        if seq % every == 0:
            await asyncio.sleep(0)
    return web.json_response({"published": count, "subscribers": hub.subscriber_count(TOPIC)})


def build_hub() -> web.Application:
    app = web.Application()
    registry = TopicRegistry()
    registry.add(TopicDef(TOPIC, Ticks, Tick), lambda _params: Ticks(count=0))
    setup_realtime(app, registry)
    app.router.add_post("/publish", hub_publish)
    return app


# ---------------------------------------------------------------- main


async def serve(mode: str) -> None:
    app = build_bare() if mode == "bare" else build_hub()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["bare", "hub"], required=True)
    args = parser.parse_args(argv)
    profile_path = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(serve(args.mode))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
            print(f"profile written to {profile_path}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
