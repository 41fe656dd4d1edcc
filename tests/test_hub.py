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
    for ws in clients:
        assert [f["seq"] for f in await ws.barrier()] == [1]
    # One JSON envelope and one WebSocket framing for ten subscribers.
    assert len(envelopes) == 1
    assert len([f for f in framings if f.endswith(envelopes[0])]) == 1


async def test_publish_without_subscribers_numbers_nothing_and_keeps_no_state(lib_client):
    client, hub, state, broker = await lib_client()
    assert await state.set(hub, "x", 1) == 0  # nobody watches: not numbered, not kept
    assert await broker.last_seq("items") == 0
    assert len(broker) == 0
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    [snap] = await ws.barrier()
    assert (snap["seq"], snap["payload"]) == (0, {"items": {"x": 1}})  # the state is in it
    assert await state.set(hub, "y", 2) == 1
    assert [f["seq"] for f in await ws.barrier()] == [1]
    await ws.unsubscribe("items")
    await ws.barrier()
    assert len(broker) == 0  # the last subscriber left: the topic's counter is dropped


async def test_publishing_to_an_unregistered_topic_or_a_bad_payload_raises(lib_client):
    _client, hub, *_ = await lib_client()
    with pytest.raises(LookupError):
        await hub.publish("nope", {"op": "set", "key": "x", "value": 1})
    with pytest.raises(pydantic.ValidationError):
        await hub.publish("items", {"op": "set", "key": "x"})


async def test_subscribers_of_one_topic_version_share_one_provider_call_and_one_frame(lib_client):
    """A reconnect storm's subscribes of one topic, with no event meanwhile: the provider
    runs once (single flight) and every subscriber gets the same snapshot; the topic's
    next event makes the next subscriber's snapshot a new build."""
    from tests.support import until

    client, hub, state, _broker = await lib_client()
    state.gate.armed = True  # the first build is held until every subscribe waits on it
    sockets = [await WsClient.connect(client) for _ in range(90)]  # the test client pools 100
    for ws in sockets:
        await ws.subscribe("items")
    await until(lambda: hub.subscriber_count("items") == 90)
    state.gate.release()
    snapshots = [(await ws.barrier())[0] for ws in sockets]
    assert state.builds == 1
    assert {(s["type"], s["seq"], str(s["payload"])) for s in snapshots} == {("snapshot", 0, "{'items': {}}")}
    await state.set(hub, "x", 1)
    late = await WsClient.connect(client)
    await late.subscribe("items")
    [snap] = await late.barrier()
    assert (snap["seq"], snap["payload"], state.builds) == (1, {"items": {"x": 1}}, 2)
