"""The reconnect-storm bench servers, run as subprocesses by `scripts.bench.storm`.

    python -m scripts.bench.storm_server --mode floor|hub [--database URL --dbname NAME]

Both serve ``GET /api/realtime`` on 127.0.0.1 (ephemeral port) and two topics:

- ``storm``: a ~196 KB snapshot, 1,000 items shaped like the demo's ``sessions.state``
  sessions (id, title, state, two timestamps; `storm_items`), and no events;
- ``live``: a tiny snapshot (``{"count":0}``) and, while the driver asks for it, an
  event every 10 ms carrying the publisher's `time.monotonic_ns()` (the fan-out
  bench's tick payload, `scripts.bench.common.tick`), so that clients that were
  connected before the storm can measure publish->receive during it.

Modes:

- ``floor``: bare aiohttp (no pydantic, no library loaded). A subscribe to ``storm``
  is answered with ONE precomputed frame, `storm_snapshot_text` - byte for byte what
  the hub sends for the same state - by ``await ws.send_str(frame)``; a live event is
  one `json.dumps` and ``send_str`` to each live client.
- ``hub``: the library, `setup_realtime` with both topics and every default setting
  but the connection limits (raised as the fan-out bench raises them). The ``storm``
  provider returns the snapshot model of the 1,000 items; with ``--database`` it is an
  asyncpg query reading them from the table ``storm_items`` of database NAME (which
  the driver creates and drops). The provider counts its calls.

The control protocol is `scripts.bench.common`'s (``PORT <n>`` once serving, then
one answer per stdin line; ``gc``, ``count`` as there) plus these commands:

- ``reset``: forget the snapshots built so far (the hub's `state_changed`: the warm-up
  subscriber's snapshot must not serve the storm) and zero the provider count;
  answers ``reset``;
- ``live <period_us>``: start publishing on ``live``, seq 1, 2, ... every period (at
  least one loop turn apart); answers ``live started``; under ``BENCH_PROFILE=<file>``
  the server is profiled from here until ``stop`` (the storm), dumped there at exit;
- ``stop``: stop publishing; answers ``stopped <events published>``;
- ``counts``: answers ``counts <storm subscribers> <live subscribers>``;
- ``calls``: answers ``calls <storm provider calls since reset>`` (0 for the floor);
- ``gctime``: answers ``gctime <ns> <full collections>``: the time CPython's garbage
  collector ran since ``live`` (the storm window), and how many of those runs were
  full (oldest-generation) collections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import gc
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from scripts.bench import common
from scripts.bench.common import BACKLOG, Command, control_loop, run_schedule, serve_main, tick

if TYPE_CHECKING:
    from pydantic import BaseModel

STORM, LIVE = "storm", "live"
ITEMS = 1_000
TABLE = "storm_items"
#: The hub's default heartbeat (scripts.bench.server keeps it equal to the library's).
HEARTBEAT_S = 25
#: What a client sends (the hub's protocol; the floor looks for the topic's name).
SUBSCRIBE_STORM = f'{{"type":"subscribe","topics":["{STORM}"]}}'
SUBSCRIBE_LIVE = f'{{"type":"subscribe","topics":["{LIVE}"]}}'
LIVE_SNAPSHOT_TEXT = f'{{"type":"snapshot","topic":"{LIVE}","seq":0,"payload":{{"count":0}}}}'
#: Every live event frame starts with this, then the seq's digits, then a comma.
LIVE_EVENT_PREFIX = f'{{"type":"event","topic":"{LIVE}","seq":'
STATES = ("idle", "running", "waiting", "error", "done")
EPOCH = datetime.datetime(2026, 12, 4, 9, 0, tzinfo=datetime.UTC)


# ---------------------------------------------------------------- the state, as JSON


def _stamp(at: datetime.datetime) -> str:
    """A UTC time as pydantic writes it (microseconds never 0 here, so always 6 digits)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def storm_items(n: int = ITEMS) -> list[dict[str, str]]:
    """The ``storm`` topic's state: `n` sessions as the demo has them (``s-<12 hex>``
    ids, a title, a state, two timestamps), ~196 bytes of JSON each; deterministic."""
    items = []
    for i in range(n):
        created = EPOCH + datetime.timedelta(seconds=37 * i, microseconds=1 + (i * 7919) % 999_998)
        updated = created + datetime.timedelta(seconds=11 + i % 600, microseconds=1 + (i * 104_729) % 999)
        items.append(
            {
                "id": f"s-{((i + 1) * 2_654_435_761) % (1 << 48):012x}",
                "title": f"Session {i:04d}: refactor the billing pipeline and add more tests",
                "state": STATES[i % len(STATES)],
                "created_at": _stamp(created),
                "updated_at": _stamp(updated),
            }
        )
    return items


@functools.cache
def storm_payload_json() -> str:
    """The snapshot's payload as the floor sends it (the hub's bytes: tests check it)."""
    return json.dumps({"sessions": storm_items()}, separators=(",", ":"))


@functools.cache
def storm_snapshot_text() -> str:
    """The whole snapshot frame of ``storm`` at seq 0, as every mode sends it."""
    return f'{{"type":"snapshot","topic":"{STORM}","seq":0,"payload":{storm_payload_json()}}}'


def live_event_text(seq: int, t: int) -> str:
    """A live event frame: compact JSON in the hub's field order."""
    message = {"type": "event", "topic": LIVE, "seq": seq, "payload": tick(seq, t)}
    return json.dumps(message, separators=(",", ":"))


@functools.cache
def snapshot_models() -> tuple[type[BaseModel], type[BaseModel]]:
    """The hub's models of the ``storm`` topic (snapshot, item), shaped like the demo's
    `Session` and `SessionsSnapshot`. Built on first use: the floor never loads pydantic."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    class StormItem(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        id: str
        title: str
        state: Literal["idle", "running", "waiting", "error", "done"]
        created_at: datetime.datetime
        updated_at: datetime.datetime

    class StormSnapshot(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        sessions: list[StormItem]

    return StormSnapshot, StormItem


def hub_payload_json(items: list[dict[str, Any]]) -> bytes:
    """What the hub's provider and encoder make of `items` (the tests compare it)."""
    snapshot, item = snapshot_models()
    return snapshot(sessions=[item.model_validate(i) for i in items]).model_dump_json().encode()


# ---------------------------------------------------------------- the servers

#: An app; the live publish; (storm, live) subscriber counts; the storm provider's calls
#: counter (a one-item list, zeroed by ``reset``); what ``reset`` does besides.
Built = tuple[
    web.Application,
    Callable[[int, int], Awaitable[None]],
    Callable[[], tuple[int, int]],
    list[int],
    Callable[[], None],
]
TOPICS_KEY = web.AppKey("storm_clients", dict)


async def floor_ws(request: web.Request) -> web.StreamResponse:
    clients: dict[str, set[web.WebSocketResponse]] = request.app[TOPICS_KEY]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and '"subscribe"' in msg.data:
                if f'"{STORM}"' in msg.data:
                    clients[STORM].add(ws)
                    await ws.send_str(storm_snapshot_text())
                if f'"{LIVE}"' in msg.data:
                    clients[LIVE].add(ws)
                    await ws.send_str(LIVE_SNAPSHOT_TEXT)
    finally:
        for topic in clients.values():
            topic.discard(ws)
    return ws


def build_floor() -> Built:
    app = web.Application()
    clients: dict[str, set[web.WebSocketResponse]] = {STORM: set(), LIVE: set()}
    app[TOPICS_KEY] = clients
    app.router.add_get("/api/realtime", floor_ws)
    storm_snapshot_text()  # precomputed before the first client

    async def publish(seq: int, t: int) -> None:
        frame = live_event_text(seq, t)
        for ws in list(clients[LIVE]):
            await ws.send_str(frame)

    return app, publish, lambda: (len(clients[STORM]), len(clients[LIVE])), [0], lambda: None


def build_hub(database: str | None, dbname: str | None) -> Built:
    from aiohttp_realtime import HUB_KEY, RealtimeSettings, TopicDef, TopicRegistry, setup_realtime
    from scripts.bench.server import Tick, Ticks

    snapshot, item = snapshot_models()
    app = web.Application()
    calls = [0]
    registry = TopicRegistry()
    registry.add(TopicDef(LIVE, Ticks, Tick), lambda _params: Ticks(count=0))
    storm = TopicDef(STORM, snapshot, item)
    if database is None:
        # In memory, as the demo's store keeps its sessions: built models, one list.
        held = [item.model_validate(i) for i in storm_items()]

        def from_memory(_params: object) -> BaseModel:
            calls[0] += 1
            return snapshot(sessions=list(held))

        registry.add(storm, from_memory)
    else:
        import asyncpg

        pools: list[asyncpg.Pool] = []

        async def pool_ctx(_app: web.Application) -> AsyncIterator[None]:
            pools.append(await asyncpg.create_pool(database, database=dbname, min_size=1, max_size=10))
            yield
            await pools[0].close()

        app.cleanup_ctx.append(pool_ctx)
        query = f"SELECT id, title, state, created_at, updated_at FROM {TABLE} ORDER BY n"

        async def from_database(_params: object) -> BaseModel:
            calls[0] += 1
            rows = await pools[0].fetch(query)
            return snapshot(sessions=[item.model_validate(dict(r)) for r in rows])

        registry.add(storm, from_database)
    # Every default but the connection limits: thousands of connections from a few
    # loopback addresses (the per-address default is 256), as in scripts.bench.server.
    settings = RealtimeSettings(max_connections=100_000, max_connections_per_address=100_000)
    hub = setup_realtime(app, registry, settings=settings)
    assert app[HUB_KEY] is hub

    async def publish(seq: int, t: int) -> None:
        await hub.publish(LIVE, tick(seq, t))

    def counts() -> tuple[int, int]:
        return hub.subscriber_count(STORM), hub.subscriber_count(LIVE)

    return app, publish, counts, calls, lambda: hub.state_changed(STORM)


# ---------------------------------------------------------------- garbage collection


OLDEST = len(gc.get_count()) - 1


class GcClock:
    """Time spent in CPython's garbage collector (`gc.callbacks`), from `reset` on."""

    def __init__(self) -> None:
        self.ns = 0
        self.full = 0
        self._started = 0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.ns = self.full = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        self.ns += time.perf_counter_ns() - self._started
        if info["generation"] == OLDEST:
            self.full += 1


# ---------------------------------------------------------------- main


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    if args.mode == "floor":
        app, publish, counts, calls, forget = build_floor()
    else:
        app, publish, counts, calls, forget = build_hub(args.database, args.dbname)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    published = [0]
    live: list[asyncio.Task[int]] = []
    collector = GcClock()

    async def counted(seq: int, t: int) -> None:
        await publish(seq, t)
        published[0] = seq

    async def reset(_args: list[str]) -> str:
        forget()
        calls[0] = 0
        return "reset"

    async def start_live(words: list[str]) -> str:
        if live:
            return "error live already running"
        published[0] = 0
        collector.reset()
        if common.PROFILER is not None:
            common.PROFILER.enable()  # BENCH_PROFILE: the storm window, from here to ``stop``
        live.append(asyncio.ensure_future(run_schedule(counted, 1, 1 << 40, int(words[0]), 0)))
        return "live started"

    async def stop_live(_args: list[str]) -> str:
        if not live:
            return "error live not running"
        task = live.pop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if common.PROFILER is not None:
            common.PROFILER.disable()
        return f"stopped {published[0]}"

    async def subscriber_counts(_args: list[str]) -> str:
        storm, live_count = counts()
        return f"counts {storm} {live_count}"

    async def provider_calls(_args: list[str]) -> str:
        return f"calls {calls[0]}"

    async def gc_time(_args: list[str]) -> str:
        return f"gctime {collector.ns} {collector.full}"

    extra: dict[str, Command] = {
        "reset": reset,
        "live": start_live,
        "stop": stop_live,
        "counts": subscriber_counts,
        "calls": provider_calls,
        "gctime": gc_time,
    }
    try:
        await control_loop(runner.addresses[0][1], publish, lambda: counts()[0], stop, extra)
    finally:
        for task in live:
            task.cancel()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("floor", "hub"), required=True)
    parser.add_argument("--database", help="hub: a PostgreSQL URL; the provider is a query")
    parser.add_argument("--dbname", help="the database (on --database's server) holding the table")
    args = parser.parse_args(argv)
    if args.database is not None and (args.mode != "hub" or not args.dbname):
        parser.error("--database is for --mode hub, with --dbname")
    serve_main(lambda stop: serve(args, stop))


if __name__ == "__main__":
    main()
