"""The library's own deadlines hold whatever the app's code does when it is cancelled:
no request is answered later than `request_timeout_s`, and no subscribe waits for its
snapshot longer than `snapshot_timeout_s` - even when the handler or the provider
takes long to unwind (a read stuck on a database that does not answer awaits its
cleanup: a ROLLBACK, an unlock, the pool's reset, none of which the server answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import (
    Caller,
    MemoryBroker,
    MethodDef,
    MethodRegistry,
    RealtimeSettings,
    TopicRegistry,
    setup_realtime,
)
from tests.libapp import ITEMS, Items, ItemSet
from tests.support import WsClient, until


class Empty(BaseModel):
    pass


class Unwinding:
    """A coroutine that waits forever and, once cancelled, does not end until released."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.ended = False

    async def hang(self) -> None:
        try:
            await asyncio.Event().wait()  # a statement the server never answers
        finally:
            self.cancelled.set()
            await self.release.wait()  # its cleanup waits on the same server
            self.ended = True


def request(id: str, method: str) -> dict[str, Any]:
    return {"type": "request", "id": id, "method": method, "params": {}}


async def test_a_timed_out_call_is_answered_at_its_deadline_not_when_it_has_unwound(aiohttp_client):
    stuck = Unwinding()

    async def handler(_params: Empty, _caller: Caller) -> Empty:
        await stuck.hang()
        return Empty()

    methods = MethodRegistry()
    methods.add(MethodDef("db.write", Empty, Empty), handler)
    app = web.Application()
    hub = setup_realtime(
        app, TopicRegistry(), methods=methods, settings=RealtimeSettings(request_timeout_s=0.3)
    )
    ws = await WsClient.connect(await aiohttp_client(app))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.send(request("r", "db.write"))
    response = await ws.recv(timeout=2)  # without the fix: nothing until the handler has ended
    assert response["id"] == "r" and response["error"]["code"] == "timeout"
    assert loop.time() - started < 0.3 + 0.5
    assert stuck.cancelled.is_set() and not stuck.ended
    (conn,) = hub.connections
    assert conn.requests == 1  # it keeps its in-flight slot until it has really ended
    stuck.release.set()
    await until(lambda: conn.requests == 0)
    assert await ws.barrier() == []  # answered once: nothing more when it ends


class NeverDelivers(MemoryBroker):
    """Numbers events and never delivers them here (a backplane that lost them)."""

    async def publish(self, topic: str, payload: bytes, fence: int | None = None) -> int:
        deliver, self._deliver = self._deliver, None
        try:
            return await super().publish(topic, payload)
        finally:
            self._deliver = deliver


async def test_the_wait_for_a_calls_events_ends_at_the_calls_deadline(aiohttp_client):
    async def handler(_params: Empty, _caller: Caller) -> Empty:
        await hub.publish(ITEMS.ref(), ItemSet(op="set", key="k", value=1))
        await asyncio.sleep(0.2)  # most of its time, before the wait for delivery
        return Empty()

    async def items(_params: Mapping[str, str]) -> Items:
        return Items(items={})

    registry = TopicRegistry()
    registry.add(ITEMS, items)
    methods = MethodRegistry()
    methods.add(MethodDef("items.touch", Empty, Empty), handler)
    app = web.Application()
    settings = RealtimeSettings(request_timeout_s=0.3)
    hub = setup_realtime(app, registry, broker=NeverDelivers(), methods=methods, settings=settings)
    ws = await WsClient.connect(await aiohttp_client(app))
    await ws.subscribe("items")
    assert (await ws.recv())["type"] == "snapshot"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.send(request("r", "items.touch"))
    response = await ws.recv()
    # Its event never arrives; the response goes at the request's deadline (0.3 s), not
    # one more request_timeout_s after the handler returned (0.5 s).
    assert "result" in response and loop.time() - started < 0.45


async def test_a_snapshot_is_given_up_at_its_deadline_not_when_the_provider_has_unwound(aiohttp_client):
    stuck = Unwinding()

    async def items(_params: Mapping[str, str]) -> Items:
        await stuck.hang()
        return Items(items={})

    registry = TopicRegistry()
    registry.add(ITEMS, items)
    app = web.Application()
    setup_realtime(app, registry, settings=RealtimeSettings(snapshot_timeout_s=0.3))
    ws = await WsClient.connect(await aiohttp_client(app))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.subscribe("items", id="s")
    frame = await ws.recv(timeout=2)  # without the fix: nothing until the provider has ended
    assert (frame["type"], frame["code"], frame["topic"]) == ("error", "snapshot_failed", "items")
    assert loop.time() - started < 0.3 + 0.5
    assert stuck.cancelled.is_set() and not stuck.ended
    stuck.release.set()
    await until(lambda: stuck.ended)
