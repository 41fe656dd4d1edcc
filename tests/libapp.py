"""A minimal app built on the realtime library alone, with hooks to force races.

Topic `items` holds a dict of counters; its events are idempotent `set`s. The
snapshot provider and the broker's `last_seq` can be held at a gate, so a test
can publish exactly while a subscribe is between its steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import (
    HUB_KEY,
    Hub,
    MemoryBroker,
    RealtimeSettings,
    TopicDef,
    TopicRegistry,
    UnknownTopic,
    setup_realtime,
)


class Items(BaseModel):
    items: dict[str, int]


class ItemSet(BaseModel):
    op: Literal["set"]
    key: str
    value: int


ITEMS = TopicDef("items", Items, ItemSet)
ITEMS_GROUP = TopicDef("items.{group}", Items, ItemSet)


class Gate:
    """Holds a coroutine until released; `reached` tells the test it is held."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()
        self.armed = False

    async def pass_(self) -> None:
        if self.armed:
            self.reached.set()
            await self._open.wait()

    def release(self) -> None:
        self.armed = False
        self._open.set()


class GatedBroker(MemoryBroker):
    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()
        self.watch_gate = Gate()
        self.watches: list[str] = []
        self.seq_reads: list[str] = []

    async def watch(self, topic: str) -> None:
        self.watches.append(topic)
        await self.watch_gate.pass_()  # a network broker confirms a subscription later
        await super().watch(topic)

    async def last_seq(self, topic: str) -> int:
        self.seq_reads.append(topic)
        await self.gate.pass_()
        return await super().last_seq(topic)


class ItemsState:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, int]] = {"a": {}, "b": {}}
        self.gate = Gate()
        self.fail = False
        self.provider_yields = False
        #: CPU seconds each snapshot build burns without yielding (an expensive query).
        self.cost_s = 0.0
        self.builds = 0

    async def provider(self, params: Mapping[str, str]) -> Items:
        await self.gate.pass_()
        if self.provider_yields:
            await asyncio.sleep(0)  # let publishers interleave, as a database read would
        if self.fail:
            raise RuntimeError("provider exploded")
        self.builds += 1
        if self.cost_s:
            until = time.perf_counter() + self.cost_s
            while time.perf_counter() < until:
                pass
        group = params.get("group", "a")
        if group not in self.items:
            raise UnknownTopic(group)
        return Items(items=dict(self.items[group]))

    async def set(self, hub: Hub, key: str, value: int, group: str = "a") -> int:
        self.items[group][key] = value
        topic = ITEMS.ref() if group == "a" else ITEMS_GROUP.at(group=group)
        return await hub.publish(topic, ItemSet(op="set", key=key, value=value))


def build_lib_app(
    settings: RealtimeSettings | None = None,
) -> tuple[web.Application, Hub, ItemsState, GatedBroker]:
    state = ItemsState()
    broker = GatedBroker()
    registry = TopicRegistry()
    registry.add(ITEMS, state.provider)
    registry.add(ITEMS_GROUP, state.provider)
    app = web.Application()
    hub = setup_realtime(app, registry, broker=broker, settings=settings)
    assert app[HUB_KEY] is hub
    return app, hub, state, broker


def apply(state: dict[str, int], frame: dict[str, Any]) -> None:
    """Client side: a snapshot replaces, an event sets."""
    if frame["type"] == "snapshot":
        state.clear()
        state.update(frame["payload"]["items"])
    else:
        state[frame["payload"]["key"]] = frame["payload"]["value"]
