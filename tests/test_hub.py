from __future__ import annotations

import pydantic
import pytest

import aiohttp_realtime.hub as hub_module
from tests.support import WsClient


async def test_publish_encodes_once_and_shares_the_bytes(lib_client, monkeypatch):
    client, hub, state, _ = await lib_client()
    clients = [await WsClient.connect(client) for _ in range(10)]
    for ws in clients:
        await ws.subscribe("items")
        await ws.barrier()
    frames: list[bytes] = []
    real = hub_module.event_frame
    monkeypatch.setattr(hub_module, "event_frame", lambda *a: frames.append(real(*a)) or frames[-1])
    delivered: list[bytes] = []
    for conn in hub.connections:

        def spy(sub, seq, frame, _original=conn.deliver):
            delivered.append(frame)
            _original(sub, seq, frame)

        monkeypatch.setattr(conn, "deliver", spy)
    await state.set(hub, "x", 1)
    assert len(frames) == 1
    assert len(delivered) == 10
    assert all(f is delivered[0] for f in delivered) and delivered[0].text is frames[0]
    # The WebSocket framing is built once too, and reused by every direct write.
    assert delivered[0].wire is delivered[0].wire
    for ws in clients:
        assert [f["seq"] for f in await ws.barrier()] == [1]


async def test_publish_without_subscribers_still_advances_seq(lib_client):
    client, hub, state, broker = await lib_client()
    assert await state.set(hub, "x", 1) == 1
    assert await broker.last_seq("items") == 1
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    [snap] = await ws.barrier()
    assert (snap["seq"], snap["payload"]) == (1, {"items": {"x": 1}})


async def test_publishing_to_an_unregistered_topic_or_a_bad_payload_raises(lib_client):
    _client, hub, *_ = await lib_client()
    with pytest.raises(LookupError):
        await hub.publish("nope", {"op": "set", "key": "x", "value": 1})
    with pytest.raises(pydantic.ValidationError):
        await hub.publish("items", {"op": "set", "key": "x"})
