"""RedisBroker against real Redis: a node never stays deaf to a topic - not after a
subscribe races the last unsubscribe, not on a silent (half-open) connection, not when
an event is numbered and never arrives - and a fenced late publish is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
import pytest
import redis.asyncio as aioredis

from aiohttp_realtime import BrokerUnavailable, Fence
from aiohttp_realtime.redis_broker import RedisBroker
from tests.redis_support import RedisServer, own_redis, redis_base_url, redis_prefix  # noqa: F401
from tests.support import until


def resyncs(reason: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "realtime_backplane_resyncs_total", {"reason": reason}
    )
    return value or 0.0


class Node:
    """A broker with what it delivered and what it reported lost."""

    def __init__(self, url: str, prefix: str, **options: Any) -> None:
        self.broker = RedisBroker(url, prefix=prefix, **options)
        self.events: dict[str, list[int]] = {}
        self.lost: list[str] = []
        self.arrived = asyncio.Event()

    def _deliver(self, topic: str, seq: int, _payload: bytes) -> None:
        self.events.setdefault(topic, []).append(seq)
        self.arrived.set()

    async def start(self) -> Node:
        await self.broker.start(self._deliver, self.lost.append)
        return self


@pytest.fixture
async def nodes(redis_base_url: str, redis_prefix: str) -> AsyncIterator[tuple[Node, Node]]:  # noqa: F811
    x = await Node(redis_base_url, redis_prefix).start()
    y = await Node(redis_base_url, redis_prefix).start()
    yield x, y
    await x.broker.stop()
    await y.broker.stop()


async def test_a_thousand_subscribes_racing_the_last_unsubscribe_leave_no_node_deaf(
    nodes: tuple[Node, Node],
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """What a UI does when it leaves a session and comes back: the last subscriber of a
    topic leaves (UNSUBSCRIBE) and a new one arrives (SUBSCRIBE) in the same moment.
    Each of 1,000 topics goes through it; then every one must hear an event published
    by another node, and Redis must count exactly one subscription of this node."""
    x, y = nodes
    topics = [f"race.{i}" for i in range(1000)]
    await asyncio.gather(*(x.broker.watch(t) for t in topics))

    async def race(topic: str) -> None:
        x.broker.unwatch(topic)  # the last subscriber leaves ...
        await x.broker.watch(topic)  # ... as the next arrives, before any answer came back

    await asyncio.gather(*(race(t) for t in topics))
    seqs = await asyncio.gather(*(y.broker.publish(t, b"{}") for t in topics))
    await until(lambda: len(x.events) == len(topics), timeout=20)
    deaf = [t for t, seq in zip(topics, seqs, strict=True) if x.events.get(t) != [seq]]
    assert deaf == []
    commands = aioredis.Redis.from_url(redis_base_url)
    try:
        counts = await commands.pubsub_numsub(*(f"{redis_prefix}ch:{t}" for t in topics))
    finally:
        await commands.aclose()
    assert {count for _channel, count in counts} == {1}  # x only (y watches nothing)
    assert x.lost == []


async def test_a_burst_of_subscribes_waits_for_pooled_connections_instead_of_failing(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """2,000 subscribes at once (a reconnect storm) on a healthy Redis, through a pool of
    8 connections: every seq read waits its turn; none answers unavailable."""
    node = await Node(redis_base_url, redis_prefix, max_connections=8, timeout_s=5.0).start()
    try:
        topics = [f"burst.{i}" for i in range(2000)]

        async def subscribe(topic: str) -> int:
            await node.broker.watch(topic)
            return await node.broker.last_seq(topic)

        assert await asyncio.gather(*(subscribe(t) for t in topics)) == [0] * len(topics)
    finally:
        await node.broker.stop()


async def test_a_silent_connection_is_detected_reported_lost_and_replaced(
    own_redis: RedisServer,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """A Redis that stops answering without closing anything (SIGSTOP: what a half-open
    cut looks like to the node): within ping_interval_s + timeout_s the node reports
    its topics lost, is not healthy, and its readiness probe fails in bounded time;
    once Redis answers again it reconnects and a new subscriber hears events."""
    node = await Node(
        own_redis.url, redis_prefix, ping_interval_s=0.3, timeout_s=0.5, reconnect_max_s=0.2
    ).start()
    assert own_redis.process is not None
    pid = own_redis.process.pid
    silent_before = resyncs("silent")
    try:
        await node.broker.watch("t")
        await node.broker.check()
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        await until(lambda: node.lost == ["t"], timeout=10)
        assert time.monotonic() - stopped_at < 0.3 + 0.5 + 0.5  # the bound, plus a ping period
        assert not node.broker.healthy
        assert resyncs("silent") == silent_before + 1
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await node.broker.check()
        assert time.monotonic() - started < 1.0
        os.kill(pid, signal.SIGCONT)
        await until(lambda: node.broker.healthy, timeout=10)
        await node.broker.watch("t")
        seq = await node.broker.publish("t", b"{}")
        await until(lambda: node.events.get("t") == [seq], timeout=5)
    finally:
        os.kill(pid, signal.SIGCONT)
        await node.broker.stop()


async def test_an_event_numbered_but_never_delivered_is_caught_by_the_audit(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    """The second line: a seq that grew without its message reaching the node (lost
    anywhere) is seen by the periodic audit, and the topic is resynced - reported lost
    and given up, so that the next subscriber subscribes anew and hears events."""
    node = await Node(redis_base_url, redis_prefix, audit_interval_s=0.2).start()
    commands = aioredis.Redis.from_url(redis_base_url)
    try:
        await node.broker.watch("t")
        assert await node.broker.last_seq("t") == 0  # as the hub does for the first subscriber
        first = await node.broker.publish("t", b"{}")
        await until(lambda: node.events.get("t") == [first], timeout=5)
        audit_before = resyncs("audit")
        await commands.incr(f"{redis_prefix}seq:t")  # numbered, never published: lost
        await until(lambda: node.lost == ["t"], timeout=5)
        assert resyncs("audit") == audit_before + 1
        assert len(node.broker) == 0  # given up: the next subscriber watches anew
        await node.broker.watch("t")
        seq = await node.broker.publish("t", b"{}")
        await until(lambda: node.events["t"][-1] == seq, timeout=5)
    finally:
        await commands.aclose()
        await node.broker.stop()


async def test_an_audit_of_a_quiet_or_healthy_topic_resyncs_nothing(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    node = await Node(redis_base_url, redis_prefix, audit_interval_s=0.05).start()
    try:
        await node.broker.watch("t")
        for _ in range(5):
            seq = await node.broker.publish("t", b"{}")
            await until(lambda seq=seq: node.events.get("t", [])[-1:] == [seq], timeout=5)
            await asyncio.sleep(0.12)  # let audits run between events: the audit has no event of its own
        assert node.lost == []
    finally:
        await node.broker.stop()


async def test_a_fenced_publish_not_above_the_last_fence_is_refused(nodes: tuple[Node, Node]) -> None:
    """A late publisher (timed out, or lost its database lock) cannot number an older
    change after a newer one, nor one change twice."""
    x, _ = nodes
    await x.broker.watch("t")
    assert await x.broker.publish("t", b'{"v":5}', fence=Fence("db", 5)) == 1
    assert await x.broker.publish("t", b'{"v":5}', fence=Fence("db", 5)) == 0  # the same change again
    assert await x.broker.publish("t", b'{"v":4}', fence=Fence("db", 4)) == 0  # an older one, late
    assert await x.broker.publish("t", b'{"v":7}', fence=Fence("db", 7)) == 2
    assert await x.broker.publish("t", b'{"free":1}') == 3  # unfenced: always numbered
    # Another scope (a database recreated or restored: its ids start again) is its own
    # numbering, never compared with the first's.
    assert await x.broker.publish("t", b'{"v":1}', fence=Fence("db2", 1)) == 4
    await until(lambda: x.events.get("t") == [1, 2, 3, 4], timeout=5)
