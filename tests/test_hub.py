from __future__ import annotations

import pydantic
import pytest

import aiohttp_realtime.core.router as router_module
import aiohttp_realtime.frames as frames_module
from tests.support import WsClient


async def test_publish_encodes_once_and_shares_the_bytes(lib_client, monkeypatch):
    client, hub, state, _ = await lib_client()
    clients = [await WsClient.connect(client) for _ in range(10)]
    for ws in clients:
        await ws.subscribe("items")
        await ws.barrier()
    envelopes: list[bytes] = []
    framings: list[bytes] = []

    def counted(real, calls):
        return lambda *args: calls.append(real(*args)) or calls[-1]

    monkeypatch.setattr(router_module, "event_frame", counted(router_module.event_frame, envelopes))
    monkeypatch.setattr(frames_module, "ws_text_frame", counted(frames_module.ws_text_frame, framings))
    await state.set(hub, "x", 1)
    # One JSON envelope and one WebSocket framing for ten subscribers.
    assert len(envelopes) == 1
    for ws in clients:
        assert [f["seq"] for f in await ws.barrier()] == [1]
    assert len([f for f in framings if f.endswith(envelopes[0])]) == 1


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
