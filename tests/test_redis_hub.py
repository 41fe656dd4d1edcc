"""Several hubs on one Redis: one topic space, one numbering, and never a silent gap
when Redis goes away."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from aiohttp_realtime import CloseCode, RealtimeSettings, setup_realtime
from aiohttp_realtime.redis_broker import RedisBroker
from tests.libapp import ITEMS, ITEMS_GROUP, ItemsState
from tests.redis_support import RedisServer, own_redis, redis_base_url, redis_prefix  # noqa: F401
from tests.support import WsClient, until


async def _node(aiohttp_client: Any, url: str, prefix: str, state: ItemsState) -> tuple[Any, Any]:
    from aiohttp_realtime import TopicRegistry

    registry = TopicRegistry()
    registry.add(ITEMS, state.provider)
    registry.add(ITEMS_GROUP, state.provider)
    app = web.Application()
    broker = RedisBroker(url, prefix=prefix, timeout_s=1.0, reconnect_max_s=0.2)
    hub = setup_realtime(app, registry, broker=broker, settings=RealtimeSettings())
    return await aiohttp_client(app), hub


async def test_an_event_published_on_one_node_reaches_subscribers_on_another(
    aiohttp_client,
    redis_base_url,  # noqa: F811
    redis_prefix,  # noqa: F811
):
    state = ItemsState()  # the shared store both nodes read
    client_a, hub_a = await _node(aiohttp_client, redis_base_url, redis_prefix, state)
    client_b, hub_b = await _node(aiohttp_client, redis_base_url, redis_prefix, state)
    await state.set(hub_b, "x", 1)  # before anyone subscribed: numbered all the same
    on_a, on_b = await WsClient.connect(client_a), await WsClient.connect(client_b)
    await on_a.subscribe("items")
    await on_b.subscribe("items")
    [snap_a], [snap_b] = await on_a.barrier(), await on_b.barrier()
    assert snap_a["seq"] == snap_b["seq"] == 1 and snap_a["payload"] == {"items": {"x": 1}}
    for i in range(10):
        await state.set((hub_a, hub_b)[i % 2], "x", i)
    for ws in (on_a, on_b):
        seen: list[dict[str, Any]] = []
        async with __import__("asyncio").timeout(5):
            while len(seen) < 10:
                seen.append(await ws.recv())
        assert [f["seq"] for f in seen] == list(range(2, 12))  # the same seqs on every node


async def test_losing_redis_closes_subscribers_with_1013_refuses_subscribes_and_recovers(
    aiohttp_client,
    own_redis: RedisServer,  # noqa: F811
    redis_prefix,  # noqa: F811
):
    state = ItemsState()
    client, hub = await _node(aiohttp_client, own_redis.url, redis_prefix, state)
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    own_redis.stop()
    msg = await ws.ws.receive(timeout=10)
    assert (msg.type, ws.ws.close_code) == (aiohttp.WSMsgType.CLOSE, CloseCode.TRY_AGAIN_LATER)
    assert not hub.broker.healthy
    late = await WsClient.connect(client)
    await late.subscribe("items")
    [error] = await late.barrier()  # at once, not a hang
    assert (error["code"], error["topic"]) == ("unavailable", "items")
    own_redis.start()  # back, on the same port: the broker reconnects by itself
    await until(lambda: hub.broker.healthy, timeout=10)
    await late.subscribe("items")
    [snap] = await late.barrier()
    assert snap["type"] == "snapshot"
    await state.set(hub, "y", 2)
    event = await late.recv()
    assert (event["type"], event["seq"]) == ("event", snap["seq"] + 1)
