"""The broker contract, parametrized so that every implementation runs the same suite."""

from __future__ import annotations

import pytest

from aiohttp_realtime import MemoryBroker


@pytest.fixture(params=["memory"])
async def broker(request):
    implementations = {"memory": MemoryBroker}
    b = implementations[request.param]()
    delivered: list[tuple[str, int, bytes]] = []
    await b.start(lambda topic, seq, payload: delivered.append((topic, seq, payload)))
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
    assert delivered == [("t", i + 1, f'{{"i":{i}}}'.encode()) for i in range(5)]


async def test_an_unwatched_topic_keeps_no_state_and_delivers_nothing(broker):
    b, delivered = broker
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
