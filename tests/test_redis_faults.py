"""Faults around the Redis backplane that once broke a promise, each kept by a test: a
Unix-socket URL, a fence left by an earlier database, a subscription connection whose
writes block, a failed audit read, the command pool's sockets, an audit read across a
re-subscribe, fenced publishes on stale pooled connections after a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from aiohttp_realtime import HUB_KEY, Fence
from aiohttp_realtime.redis_broker import RedisBroker
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.postgres_store import PostgresStore
from tests.pg_support import new_database, pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.redis_support import RedisServer, own_redis, redis_base_url, redis_prefix  # noqa: F401
from tests.support import WsClient, until
from tests.test_redis_liveness import Node

# ---------------------------------------------------------------- 1. unix:// broker URLs


@contextlib.contextmanager
def unix_redis() -> Any:
    binary = shutil.which("redis-server")
    assert binary is not None
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "redis.sock")
        argv = [binary, "--port", "0", "--unixsocket", path, "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(
            [*argv, "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                if os.path.exists(path):
                    break
                time.sleep(0.02)
            yield f"unix://{path}"
        finally:
            proc.kill()
            proc.wait()


async def test_a_unix_socket_broker_url_can_subscribe() -> None:
    """`--broker unix://...` is accepted (`__main__`, `app.make_broker`), but the new
    subscription client passes `socket_keepalive`/`socket_keepalive_options`, which
    redis-py's UnixDomainSocketConnection does not take: every connect raises
    TypeError, the subscription never comes up, every subscribe is `unavailable`."""
    with unix_redis() as url:
        node = await Node(url, "rt-review:", timeout_s=1.0).start()
        try:
            await node.broker.watch("t")
            seq = await node.broker.publish("t", b"{}")
            await until(lambda: node.events.get("t") == [seq], timeout=5)
        finally:
            await node.broker.stop()


# ---------------------------------------------------------------- 2. fence above the database's ids


async def test_a_fence_left_in_redis_above_the_outbox_ids_silences_every_event(
    pg_url: str,  # noqa: F811
    pg_admin_url: str,  # noqa: F811
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    aiohttp_client: Any,
) -> None:
    """A fence outlives the database whose outbox ids it compares with (the database
    recreated or restored while Redis keeps its keys). Fences are scoped by the
    database's generation, so the new database's lower ids are never compared with the
    old ones: its changes are numbered and delivered (else: 201, and silence)."""
    config = Config(simulate=False, http=HttpLimits(writes_per_s=1e6, writes_burst=10**6))
    broker = RedisBroker(redis_base_url, prefix=redis_prefix)
    before = build_app(config, store=PostgresStore(pg_url), broker=broker)
    old = await aiohttp_client(before)
    for i in range(5):  # the old database's life: outbox ids 1..5 fenced in Redis
        assert (await old.post("/api/sessions", json={"title": f"old {i}"})).status == 201
    await old.close()

    async with new_database(pg_admin_url) as fresh:  # the same deployment, its database anew
        after = build_app(
            config, store=PostgresStore(fresh), broker=RedisBroker(redis_base_url, prefix=redis_prefix)
        )
        client = await aiohttp_client(after)
        try:
            ws = await WsClient.connect(client)
            await ws.subscribe("sessions.state")
            snapshot = await ws.recv()
            assert snapshot["type"] == "snapshot"
            response = await client.post("/api/sessions", json={"title": "new"})
            assert response.status == 201
            seq = await after[HUB_KEY].broker.last_seq("sessions.state")
            assert seq > snapshot["seq"], "the committed change was never numbered (fence refused it)"
            frame = await ws.recv(timeout=3)
            assert frame["type"] == "event"
            await ws.close()
        finally:
            await client.close()


# ---------------------------------------------------------------- 3. a wedged subscription connection


async def test_a_subscription_whose_writes_block_is_still_declared_silent(
    own_redis: RedisServer,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis frozen (or a half-open cut) while the node has subscribes to send: once the
    socket's buffers are full, a write blocks in drain(). Every write of the
    subscription connection (SUBSCRIBE, UNSUBSCRIBE, PING) is bounded by `timeout_s`, so
    the silence is still declared within ping_interval_s + timeout_s (+ a ping period);
    unbounded, it never would be (zero-window probes are answered forever, and TCP
    keepalive does not run with data outstanding). The audit is off here, to show the
    keepalive alone."""
    from aiohttp_realtime.redis_subscription import Subscription

    make_client = Subscription._client

    def client_of_redis_py_7(self: Subscription) -> Any:
        # redis-py < 8 (allowed: `redis>=5.2,<9`) has no default socket_timeout; 8.x's
        # implicit 5 s write timeout would otherwise be the only bound.
        made = make_client(self)
        made.connection_pool.connection_kwargs["socket_timeout"] = None
        return made

    monkeypatch.setattr(Subscription, "_client", client_of_redis_py_7)
    options = {"ping_interval_s": 0.3, "timeout_s": 0.5, "reconnect_max_s": 0.2, "audit_interval_s": 3600}
    node = await Node(own_redis.url, redis_prefix, **options).start()
    assert own_redis.process is not None
    pid = own_redis.process.pid
    try:
        await node.broker.watch("t")
        os.kill(pid, signal.SIGSTOP)
        # A reconnect storm's subscribes: ~20 MB of SUBSCRIBE, more than the buffers hold.
        name = "x" * 10_000
        storm = [asyncio.ensure_future(node.broker.watch(f"{name}.{i}")) for i in range(2000)]
        await asyncio.gather(*storm, return_exceptions=True)
        await until(lambda: "t" in node.lost, timeout=8)
    finally:
        os.kill(pid, signal.SIGCONT)
        await node.broker.stop()


# ---------------------------------------------------------------- 4. the audit's command failure


async def test_an_audit_that_waits_too_long_for_a_pooled_connection_does_not_resync_every_topic(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """The audit's MGET goes through the shared command pool, with the subscription's
    `timeout_s`; any failure of it (the pool busy past the timeout, a slow command, a
    stale pooled connection - the error `last_seq` and `check` retry) escapes `_audit`,
    ends `_serve`, and is taken for a dead subscription connection: every topic of the
    node is reported lost (1013 to every subscriber), counted as `lost`."""
    options = {"max_connections": 1, "timeout_s": 0.5, "audit_interval_s": 0.2}
    node = await Node(redis_base_url, redis_prefix, **options).start()
    try:
        for topic in ("a", "b"):
            await node.broker.watch(topic)
            await node.broker.last_seq(topic)  # ready and audited, as for a first subscriber
        # The pool's one connection busy for 1 s (a burst of commands would do the same).
        await node.broker._commands.blpop([f"{redis_prefix}nothing"], timeout=1)
        await asyncio.sleep(0.5)
        assert node.lost == []
    finally:
        await node.broker.stop()


# ---------------------------------------------------------------- 5. the command pool is never closed


async def test_stop_closes_the_command_pool(redis_base_url: str, redis_prefix: str) -> None:  # noqa: F811
    """`Redis(connection_pool=...)` does not own the pool it is given
    (auto_close_connection_pool is False), so `RedisBroker.stop()`'s
    `self._commands.aclose()` leaves every pooled connection open."""
    node = await Node(redis_base_url, redis_prefix).start()
    await asyncio.gather(*(node.broker.publish(f"t{i}", b"{}") for i in range(8)))
    pool = node.broker._commands.connection_pool
    await node.broker.stop()
    still_open = [c for c in pool._available_connections if c.is_connected]  # type: ignore[attr-defined]
    assert still_open == []
    await pool.aclose()


# ---------------------------------------------------------------- 6. an audit seeded from a stale read


async def test_an_audit_read_from_before_a_resubscribe_does_not_report_a_false_loss(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """`_check` seeds a topic it has no audit entry for with the seq its MGET read - a
    read that may predate the channel's (re)confirmation. Interleaving: the audit's MGET
    reads seq s; meanwhile the last subscriber leaves and a new one arrives (UNSUBSCRIBE,
    an event s+1 numbered while unsubscribed, SUBSCRIBE confirmed); the MGET's answer is
    checked before the new subscriber's `last_seq` (s+1) is recorded, which is then
    ignored. Two audits later `heard` (s) < owed (s+1): the topic is resynced although
    its snapshot (at s+1) reflects everything."""
    node = await Node(redis_base_url, redis_prefix, audit_interval_s=0.1).start()
    other = aioredis.Redis.from_url(redis_base_url)
    broker = node.broker
    subscription = broker._subscription
    real_mget = broker._commands.mget
    gate, read = asyncio.Event(), asyncio.Event()
    gated = {"on": False}

    async def mget(keys: Any) -> Any:
        values = await real_mget(keys)
        if gated["on"]:
            gated["on"] = False
            read.set()
            await gate.wait()
        return values

    broker._commands.mget = mget  # type: ignore[method-assign]
    try:
        await broker.watch("t")
        await broker.last_seq("t")
        gated["on"] = True
        await asyncio.wait_for(read.wait(), 5)  # the audit read seq 0 and waits
        broker.unwatch("t")
        await until(lambda: not subscription._interest._channels, timeout=5)  # UNSUBSCRIBE answered
        publisher = Node(redis_base_url, redis_prefix)
        await publisher.broker.publish("t", b"{}")  # seq 1, while this node is unsubscribed
        await publisher.broker.stop()
        await broker.watch("t")  # a new first subscriber: confirmed
        gate.set()  # the stale audit answer is checked first ...
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert await broker.last_seq("t") == 1  # ... then the subscriber reads seq 1 (snapshot at 1)
        await asyncio.sleep(0.5)  # several audits; nothing was lost
        assert node.lost == []
    finally:
        await other.aclose()
        await broker.stop()


# ---------------------------------------------------------------- 7. publish after a Redis restart


async def test_fenced_publishes_right_after_a_redis_restart_do_not_fail(
    own_redis: RedisServer,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """A pooled connection left from before a Redis restart fails its first use. A fenced
    publish is tried again on a fresh one (a repeat cannot number twice: the fence
    refuses it), so once Redis answers and readiness is back, writes do not answer 503."""
    node = await Node(own_redis.url, redis_prefix, reconnect_max_s=0.2).start()
    try:
        await asyncio.gather(*(node.broker.publish(f"t{i}", b"{}", fence=Fence("db", 1)) for i in range(16)))
        own_redis.stop()
        own_redis.start()
        await until(lambda: node.broker.healthy, timeout=10)  # the subscription reconnected
        await node.broker.check()  # readiness: ready
        results = await asyncio.gather(
            *(node.broker.publish(f"t{i}", b"{}", fence=Fence("db", 2)) for i in range(16)),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed == []
    finally:
        await node.broker.stop()
