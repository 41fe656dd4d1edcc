"""A reconnect storm's snapshots (issue 19): one provider call per (topic, seq, view),
views that never hand one principal's snapshot to another, and admission that keeps
builds few at a time, in arrival order, without holding live clients' events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import (
    BearerTokens,
    Principal,
    RealtimeSettings,
    TopicDef,
    TopicRegistry,
    View,
    setup_realtime,
)
from tests.support import WsClient, until


class Snap(BaseModel):
    who: str
    n: int


class Ev(BaseModel):
    n: int


class Calls:
    """Provider calls, by topic, and a gate that holds async builds until opened."""

    def __init__(self) -> None:
        self.by_topic: dict[str, int] = {}
        self.started: list[str] = []
        self.running = 0
        self.most_running = 0
        self.gates: dict[str, asyncio.Event] = {}

    def plain(self, name: str) -> Any:
        def provider(_params: Mapping[str, str]) -> Snap:
            self.by_topic[name] = self.by_topic.get(name, 0) + 1
            return Snap(who="", n=self.by_topic[name])

        return provider

    def per_principal(self, name: str) -> Any:
        def provider(_params: Mapping[str, str], principal: Principal | None) -> Snap:
            self.by_topic[name] = self.by_topic.get(name, 0) + 1
            return Snap(who=principal.id if principal else "", n=self.by_topic[name])

        return provider

    async def gated(self, params: Mapping[str, str]) -> Snap:
        name = params["n"]
        self.started.append(name)
        self.by_topic[name] = self.by_topic.get(name, 0) + 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gates.setdefault(name, asyncio.Event()).wait()
        finally:
            self.running -= 1
        return Snap(who="", n=int(name))


TOKENS = {
    "t-alice": Principal("acme/alice"),
    "t-alice-2": Principal("acme/alice"),
    "t-alice-admin": Principal("acme/alice", frozenset({"admin"})),
    "t-bob": Principal("acme/bob"),
    "t-carl": Principal("umbrella/carl"),
}


def tenant(principal: Principal | None) -> str:
    return principal.id.split("/")[0] if principal else ""


def app_with(calls: Calls, settings: RealtimeSettings, *, auth: bool = False) -> tuple[web.Application, Any]:
    registry = TopicRegistry()
    views: list[tuple[str, Any, View | None]] = [
        ("plain", calls.plain("plain"), None),
        ("mine", calls.per_principal("mine"), None),  # default for a provider that sees who asks
        ("board", calls.per_principal("board"), "nothing"),  # declared the same for everyone
        ("tenant", calls.per_principal("tenant"), tenant),
    ]
    for name, provider, view in views:
        registry.add(TopicDef(name, Snap, Ev), provider, view=view)
    registry.add(TopicDef("slow:{n}", Snap, Ev), calls.gated)
    registry.add(TopicDef("live", Snap, Ev), calls.plain("live"))
    app = web.Application()
    authenticate = BearerTokens(TOKENS) if auth else None
    hub = setup_realtime(app, registry, settings=settings, authenticate=authenticate)
    return app, hub


async def test_a_thousand_subscribers_of_one_version_cost_one_provider_call(aiohttp_client):
    calls = Calls()
    app, hub = app_with(calls, RealtimeSettings(max_connections_per_address=2000))
    client = await aiohttp_client(app)
    calls.gates["0"] = asyncio.Event()  # the build waits until every subscribe asked for it
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        url = client.make_url("/api/realtime")
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        for _ in range(10):
            sockets += await asyncio.gather(*(session.ws_connect(url) for _ in range(100)))
        for ws in sockets:
            assert json.loads((await ws.receive()).data)["type"] == "hello"
            await ws.send_json({"type": "subscribe", "topics": ["slow:0"]})
        await until(lambda: hub.subscriber_count("slow:0") == 1000)
        calls.gates["0"].set()
        texts = {(await ws.receive(timeout=30)).data for ws in sockets}
        assert calls.by_topic == {"0": 1}
        [text] = texts  # one snapshot, byte for byte, for all of them
        expected = {"type": "snapshot", "topic": "slow:0", "seq": 0, "payload": {"who": "", "n": 0}}
        assert json.loads(text) == expected
        # Later subscribers, still no event: the kept snapshot, no new call.
        late = [await session.ws_connect(url) for _ in range(3)]
        for ws in late:
            await ws.receive()
            await ws.send_json({"type": "subscribe", "topics": ["slow:0"]})
            assert (await ws.receive(timeout=10)).data == text
        assert calls.by_topic == {"0": 1}
        await asyncio.gather(*(ws.close() for ws in sockets + late))


async def subscribe_as(client: Any, token: str, topic: str) -> dict[str, Any]:
    ws = await WsClient.connect(client, headers={"Authorization": f"Bearer {token}"})
    await ws.subscribe(topic)
    [snapshot] = await ws.barrier()
    assert snapshot["type"] == "snapshot", snapshot
    payload: dict[str, Any] = snapshot["payload"]
    return payload


async def test_snapshots_are_shared_only_within_a_view(aiohttp_client):
    calls = Calls()
    app, _hub = app_with(calls, RealtimeSettings(), auth=True)
    client = await aiohttp_client(app)
    everyone = list(TOKENS)

    # A provider that takes the principal: one build per distinct principal (id and
    # scopes), never another principal's state.
    mine = [await subscribe_as(client, token, "mine") for token in everyone]
    assert [p["who"] for p in mine] == [TOKENS[t].id for t in everyone]
    assert calls.by_topic["mine"] == 4  # alice twice shares; alice as admin is another view
    assert mine[0] == mine[1] and mine[0] != mine[2]

    # Declared "nothing": one build for all, whoever asked first.
    board = [await subscribe_as(client, token, "board") for token in everyone]
    assert calls.by_topic["board"] == 1 and len({p["who"] for p in board}) == 1

    # The app's key: one build per tenant.
    by_tenant = [await subscribe_as(client, token, "tenant") for token in everyone]
    assert calls.by_topic["tenant"] == 2
    assert [p["who"].split("/")[0] for p in by_tenant] == ["acme"] * 4 + ["umbrella"]

    # A provider that cannot see who asks: one view.
    for token in everyone:
        await subscribe_as(client, token, "plain")
    assert calls.by_topic["plain"] == 1


async def test_builds_are_admitted_a_few_at_a_time_in_arrival_order_while_events_flow(aiohttp_client):
    calls = Calls()
    app, hub = app_with(calls, RealtimeSettings(max_snapshot_builds=2))
    client = await aiohttp_client(app)
    live = await WsClient.connect(client)
    await live.subscribe("live")
    await live.barrier()
    storm = [await WsClient.connect(client) for _ in range(6)]
    for i, ws in enumerate(storm):
        await ws.subscribe(f"slow:{i}")
        await until(lambda i=i: hub.admission.active + hub.admission.waiting == i + 1)
    assert (calls.started, hub.admission.waiting) == (["0", "1"], 4)

    # The storm waits; a live subscriber's event does not.
    await hub.publish("live", Ev(n=7))
    assert await live.recv() == {"type": "event", "topic": "live", "seq": 1, "payload": {"n": 7}}

    for i, ws in enumerate(storm):
        calls.gates.setdefault(str(i), asyncio.Event()).set()
        snapshot = await ws.recv()
        assert (snapshot["type"], snapshot["payload"]["n"]) == ("snapshot", i)
    assert calls.started == [str(i) for i in range(6)]  # in the order they asked
    assert calls.most_running == 2
    assert (hub.admission.active, hub.admission.waiting) == (0, 0)


async def test_a_build_that_waits_past_the_deadline_fails_and_frees_its_place(aiohttp_client):
    calls = Calls()
    app, hub = app_with(calls, RealtimeSettings(max_snapshot_builds=1, snapshot_timeout_s=0.3))
    client = await aiohttp_client(app)
    stuck, waiting = await WsClient.connect(client), await WsClient.connect(client)
    await stuck.subscribe("slow:0")  # holds the only slot until its provider's deadline
    await until(lambda: hub.admission.active == 1)
    await waiting.subscribe("slow:1", id="w")
    assert (await waiting.recv())["code"] == "snapshot_failed"
    assert (await stuck.recv())["code"] == "snapshot_failed"
    assert calls.started == ["0"]  # the waiter never built
    assert (hub.admission.active, hub.admission.waiting) == (0, 0)
    calls.gates["2"] = asyncio.Event()
    calls.gates["2"].set()
    await waiting.subscribe("slow:2")
    assert (await waiting.recv())["payload"] == {"who": "", "n": 2}


async def test_a_subscribe_waiting_for_a_shared_snapshot_keeps_little_alive(aiohttp_client):
    """While a storm's query runs, every subscribe waits on it: what each waiting one keeps
    alive survives into CPython's oldest generation and lengthens its full collections
    (with 12-22 objects a waiter, a 5,000-client storm on PostgreSQL paid one more full
    collection than one served from memory). A waiter keeps its coroutine, its
    subscribe's state and its future: not the parsed frame, its plan, nor a shield."""
    import collections
    import gc

    n = 200
    calls = Calls()
    app, hub = app_with(calls, RealtimeSettings(max_connections_per_address=1000))
    client = await aiohttp_client(app)
    calls.gates["7"] = asyncio.Event()

    def census() -> collections.Counter[str]:
        gc.collect()
        return collections.Counter(type(o).__qualname__ for o in gc.get_objects())

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        url = client.make_url("/api/realtime")
        sockets = await asyncio.gather(*(session.ws_connect(url) for _ in range(n)))
        for ws in sockets:
            assert json.loads((await ws.receive()).data)["type"] == "hello"
            await ws.send_json({"type": "subscribe", "topics": ["slow:7"]})
        await until(lambda: hub.subscriber_count("slow:7") == n and len(calls.started) == 1)
        waiting = census()
        calls.gates["7"].set()
        for ws in sockets:
            assert json.loads((await ws.receive(timeout=30)).data)["type"] == "snapshot"
        live = census()
        held = waiting - live  # what a waiting subscribe holds that a live one does not
        per_waiter = sum(held.values()) / n
        assert per_waiter <= 8, sorted(held.items(), key=lambda kv: -kv[1])[:12]
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_live_connection_holds_few_objects_of_the_library(aiohttp_client):
    """Every object a connection keeps is visited by each of CPython's full collections,
    which in a reconnect storm are a quarter of the server's CPU (docs/benchmarks.md). A
    live, subscribed connection keeps, of the library: its response, mask check,
    `Connection`, `ClientState`, `Subscription`, `ClientLimits` and writer - and no
    bound method of the library's (one each was a method object per connection)."""
    import collections
    import gc
    import types

    n = 100
    calls = Calls()
    app, _hub = app_with(calls, RealtimeSettings(max_connections_per_address=1000))
    client = await aiohttp_client(app)

    def census() -> collections.Counter[str]:
        gc.collect()
        found: collections.Counter[str] = collections.Counter()
        for o in gc.get_objects():
            if isinstance(o, types.MethodType):  # a method of the library's own
                if str(o.__func__.__module__).startswith("aiohttp_realtime"):
                    found[f"method {o.__func__.__qualname__}"] += 1
            elif str(type(o).__module__).startswith("aiohttp_realtime"):
                found[type(o).__qualname__] += 1
        return found

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        url = client.make_url("/api/realtime")
        before = census()
        sockets = await asyncio.gather(*(session.ws_connect(url) for _ in range(n)))
        for ws in sockets:
            assert json.loads((await ws.receive()).data)["type"] == "hello"
            await ws.send_json({"type": "subscribe", "topics": ["plain"]})
        for ws in sockets:
            assert json.loads((await ws.receive(timeout=30)).data)["type"] == "snapshot"
        held = census() - before
        per_connection = sum(held.values()) / n
        # 7 each, plus a few shared by all of them (the snapshot's frame, its cache entry)
        assert per_connection < 7.5, sorted(held.items(), key=lambda kv: -kv[1])
        assert not [k for k in held if k.startswith("method ")], held
        await asyncio.gather(*(ws.close() for ws in sockets))
