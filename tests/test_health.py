"""/healthz and /readyz, and choosing the broker."""

from __future__ import annotations

import asyncio

import pytest

from aiohttp_realtime import HUB_KEY
from backend.__main__ import parse_args
from backend.app import Config, build_app
from tests.redis_support import RedisServer, own_redis, redis_prefix  # noqa: F401
from tests.support import until


async def test_health_and_readiness_answer_on_any_host_without_a_token(aiohttp_client):
    from aiohttp_realtime import BearerTokens, Principal

    tokens = BearerTokens({"t" * 20: Principal("a", frozenset({"read"}))})
    client = await aiohttp_client(build_app(Config(simulate=False, tokens=tokens)))
    for path in ("/healthz", "/readyz"):
        resp = await client.get(path, headers={"Host": "10.0.0.7:8080"})
        assert resp.status == 200, path
    assert await (await client.get("/readyz")).json() == {
        "ready": True,
        "checks": {"broker": True, "store": True, "serving": True},
    }
    assert (await client.get("/api/sessions")).status == 401  # the rest still needs a token


async def test_readyz_is_false_while_redis_is_down_and_recovers(aiohttp_client, own_redis, redis_prefix):  # noqa: F811
    config = Config(simulate=False, broker_url=own_redis.url, redis_prefix=redis_prefix)
    app = build_app(config)
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    own_redis.stop()
    hub = app[HUB_KEY]
    await until(lambda: not hub.broker.healthy)
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["checks"]["broker"] is False
    assert (await client.get("/healthz")).status == 200  # alive, just not ready
    own_redis.start()
    await until(lambda: hub.broker.healthy)
    # The probe asks Redis itself: the first command on a connection from before the
    # restart may fail, and the next probe (a balancer's next poll) then passes.
    async with asyncio.timeout(10):
        while (await client.get("/readyz")).status != 200:  # noqa: ASYNC110 - each poll is a new probe
            await asyncio.sleep(0.05)


async def test_readyz_is_false_during_shutdown(aiohttp_client):
    app = build_app(Config(simulate=False))
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/api/realtime")
    await ws.receive()  # hello
    for hook in app.on_shutdown:
        if getattr(hook, "__name__", "") == "shutting_down":
            await hook(app)
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["checks"]["serving"] is False
    await ws.close()


def test_broker_flag_and_workers_need_shared_state(capsys):
    assert parse_args([]).broker_url is None
    assert parse_args(["--broker", "redis://127.0.0.1:6379/0"]).broker_url == "redis://127.0.0.1:6379/0"
    for bad, says in (
        (["--broker", "kafka://x"], "expected memory or redis"),
        (["--workers", "2"], "in-memory broker"),
        (["--workers", "2", "--broker", "redis://127.0.0.1:6379/0"], "--database"),
        (["--workers", "0"], "greater than or equal to 1"),
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert says in capsys.readouterr().err


async def test_a_subscribe_through_the_demo_on_redis_gets_a_snapshot(aiohttp_client, own_redis, redis_prefix):  # noqa: F811
    client = await aiohttp_client(
        build_app(Config(simulate=False, broker_url=own_redis.url, redis_prefix=redis_prefix))
    )
    ws = await client.ws_connect("/api/realtime")
    await ws.receive()
    await ws.send_json({"type": "subscribe", "topics": ["sessions.state"]})
    snapshot = await ws.receive_json()
    assert snapshot["type"] == "snapshot"
    created = await client.post("/api/sessions", json={"title": "via redis"})
    assert created.status == 201
    event = await ws.receive_json()
    assert (event["type"], event["seq"]) == ("event", snapshot["seq"] + 1)
    await ws.close()
