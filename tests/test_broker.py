"""The broker contract, parametrized so that every implementation runs the same suite."""

from __future__ import annotations

import asyncio

import pytest

from aiohttp_realtime import MemoryBroker
from aiohttp_realtime.redis_broker import RedisBroker
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401 - fixtures


class Delivered(list[tuple[str, int, bytes]]):
    """What a broker delivered, with an event per delivery (Redis delivers later)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, topic: str, seq: int, payload: bytes) -> None:
        self.append((topic, seq, payload))
        self.changed.set()

    async def settle(self, n: int) -> list[tuple[str, int, bytes]]:
        """Once `n` deliveries arrived (at once for the memory broker)."""
        async with asyncio.timeout(5):
            while len(self) < n:
                self.changed.clear()
                await self.changed.wait()
        return list(self)


@pytest.fixture(params=["memory", "redis"])
async def broker(request, redis_base_url, redis_prefix):  # noqa: F811
    if request.param == "memory":
        b = MemoryBroker()
    else:
        b = RedisBroker(redis_base_url, prefix=redis_prefix)
    delivered = Delivered()
    await b.start(delivered)
    yield b, delivered
    await b.stop()


async def test_seq_starts_at_one_and_grows_by_one_per_topic(broker):
    b, _delivered = broker
    await b.watch("t")
    await b.watch("u")
    assert await b.last_seq("t") == 0
    assert [await b.publish("t", b"{}") for _ in range(3)] == [1, 2, 3]
    assert await b.publish("u", b"{}") == 1
    assert await b.last_seq("t") == 3


async def test_delivers_every_event_in_order_once(broker):
    b, delivered = broker
    await b.watch("t")
    for i in range(5):
        await b.publish("t", f'{{"i":{i}}}'.encode())
    assert await delivered.settle(5) == [("t", i + 1, f'{{"i":{i}}}'.encode()) for i in range(5)]


async def test_the_memory_broker_keeps_no_state_for_unwatched_topics_and_delivers_nothing():
    b, delivered = MemoryBroker(), Delivered()
    await b.start(delivered)
    await b.watch("t")
    assert await b.publish("t", b"{}") == 1
    b.unwatch("t")
    assert await b.publish("t", b"{}") == 0  # nobody holds a seq of it: nothing numbered
    assert await b.publish("never", b"{}") == 0
    assert delivered == [("t", 1, b"{}")]
    assert len(b) == 0
    await b.watch("t")  # numbering restarts: no subscriber holds an older seq
    assert await b.last_seq("t") == 0
    assert await b.publish("t", b"{}") == 1


async def test_redis_nodes_share_one_numbering_and_get_only_watched_topics(redis_base_url, redis_prefix):  # noqa: F811
    nodes = [RedisBroker(redis_base_url, prefix=redis_prefix) for _ in range(3)]
    got = [Delivered() for _ in nodes]
    for node, delivered in zip(nodes, got, strict=True):
        await node.start(delivered)
    try:
        a, b, c = nodes
        await a.watch("t")
        await b.watch("t")
        seqs = [await (a, b, c)[i % 3].publish("t", f'{{"i":{i}}}'.encode()) for i in range(9)]
        assert seqs == list(range(1, 10))  # one numbering, whichever node publishes
        expected = [("t", i + 1, f'{{"i":{i}}}'.encode()) for i in range(9)]
        assert await got[0].settle(9) == expected
        assert await got[1].settle(9) == expected
        await c.publish("other", b"{}")  # a topic nobody watches reaches nobody
        await a.watch("u")
        await c.publish("u", b"{}")
        assert (await got[0].settle(10))[-1] == ("u", 1, b"{}")
        assert got[2] == [] and [d for d in got[1] if d[0] != "t"] == []
        assert await c.last_seq("t") == 9 and len(c) == 0
    finally:
        for node in nodes:
            await node.stop()
