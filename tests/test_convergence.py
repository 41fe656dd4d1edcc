"""Several nodes, one database, one order: two apps ("nodes") on one PostgreSQL database
(PostgresStore) and one Redis (RedisBroker), each with a WebSocket subscriber. Whatever
the nodes do concurrently, every subscriber's state rebuilt from its snapshot and
events equals the database's, and the subscribers of both nodes see the same seqs.

The trap this guards against: the database commits A then B, the broker numbers B
before A, and clients end with A. The units of work (backend/store.py) hold a topic's
lock from before the change until after its event is numbered; the outbox keeps a
committed event of a node that died before publishing it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest

from aiohttp_realtime import HUB_KEY, Fence, Hub
from aiohttp_realtime.redis_broker import RedisBroker
from backend import postgres_sql
from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.postgres_store import PostgresStore
from backend.service import SessionService
from tests.pg_support import pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401 - fixtures
from tests.support import WsClient, backend_process
from tests.test_demo_topics import apply_activity
from tests.test_simulator import apply_collection

UPDATES = 200
STATES = ["idle", "running", "waiting", "error", "done"]


@dataclass
class Node:
    client: Any
    hub: Hub
    service: SessionService
    store: PostgresStore


@dataclass
class Follower:
    """A WebSocket subscriber of one topic: its state rebuilt from snapshot + events."""

    ws: WsClient
    topic: str
    state: dict[str, Any] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)

    @classmethod
    async def open(cls, node: Node, topic: str) -> Follower:
        self = cls(await WsClient.connect(node.client), topic)
        await self.ws.subscribe(topic)
        await self.read_until(0)  # the snapshot
        return self

    async def read_until(self, seq: int) -> None:
        """Apply frames until the topic's `seq` (delivered by the broker: no sleeping)."""
        while not self.seqs or self.seqs[-1] < seq:
            frame = await self.ws.recv(timeout=10)
            assert frame["type"] in ("snapshot", "event") and frame["topic"] == self.topic, frame
            if frame["type"] == "event":
                assert frame["seq"] == self.seqs[-1] + 1, "a gap"
            self.seqs.append(frame["seq"])
            if self.topic == "sessions.state":
                apply_collection(self.state, frame, "sessions", "session")
            else:
                apply_activity(self.state, frame)


Nodes = Callable[..., Awaitable[list[Node]]]


@pytest.fixture
async def nodes(
    pg_url: str,  # noqa: F811 - before aiohttp_client: the apps close before it is dropped
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    aiohttp_client: Any,
) -> AsyncIterator[Nodes]:
    """`await nodes(n, **store_options)`: n demo apps sharing a database and a Redis."""

    async def make(n: int = 2, **store_options: Any) -> list[Node]:
        made = []
        for _ in range(n):
            store = PostgresStore(pg_url, **store_options)
            config = Config(simulate=False, http=HttpLimits(writes_per_s=1e6, writes_burst=10**6))
            app = build_app(config, store=store, broker=RedisBroker(redis_base_url, prefix=redis_prefix))
            client = await aiohttp_client(app)
            made.append(Node(client, app[HUB_KEY], app[SERVICE_KEY], store))
        return made

    yield make


async def last_seq(node: Node, topic: str) -> int:
    return await node.hub.broker.last_seq(topic)


async def assert_converged(followers: list[Follower], node: Node) -> None:
    """Every follower has read up to the topic's last seq, holds the database's state,
    and saw the same seqs as the others."""
    topic = followers[0].topic
    last = await last_seq(node, topic)
    for follower in followers:
        await follower.read_until(last)
    if topic == "sessions.state":
        truth = {s.id: s.model_dump(mode="json") for s in await node.store.sessions()}
    else:
        sid = topic.split(":", 1)[1]
        truth = {m.id: m.model_dump(mode="json") for m in await node.store.messages(sid)}
    for follower in followers:
        assert follower.state == truth
    assert all(f.seqs == followers[0].seqs for f in followers)


async def outbox_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        rows: int = await conn.fetchval("SELECT count(*) FROM realtime_outbox")
        return rows
    finally:
        await conn.close()


# ---------------------------------------------------------------- many writers, one session


def network_latency(node: Node, monkeypatch: Any, rng: random.Random) -> None:
    """0-10 ms between a node's commit and the broker numbering its event, as a network
    has (in one process the two would follow each other almost in lockstep)."""
    publish = node.hub.publish_encoded

    async def later(topic: Any, data: bytes, *, fence: Fence | None = None) -> int:
        await asyncio.sleep(rng.uniform(0, 0.01))
        return await publish(topic, data, fence=fence)

    monkeypatch.setattr(node.hub, "publish_encoded", later)


async def test_concurrent_updates_of_one_session_on_two_nodes_converge_exactly(nodes: Nodes, monkeypatch):
    # 200 writers queue on one topic's lock at once: the last waits for all the others,
    # longer than the default lock deadline (2 s, a 503 by design) on a loaded machine.
    # This test is about their order, so the deadlines are out of its way.
    a, b = await nodes(lock_timeout_s=60.0, timeout_s=60.0)
    rng = random.Random(7)
    for node in (a, b):
        network_latency(node, monkeypatch, rng)
    session = await a.service.create_session("contended")
    followers = [await Follower.open(node, "sessions.state") for node in (a, b)]
    first = followers[0].seqs[-1]
    patches = [
        (a, b)[i % 2].client.patch(
            f"/api/sessions/{session.id}", json={"title": f"update {i}", "state": STATES[i % len(STATES)]}
        )
        for i in range(UPDATES)
    ]
    responses = await asyncio.gather(*patches)
    assert [r.status for r in responses] == [200] * UPDATES
    await assert_converged(followers, a)
    assert followers[0].seqs[1:] == list(range(first + 1, first + UPDATES + 1))  # every update, once


@pytest.mark.parametrize("guards", ["locks and fences", "fences only", "neither"])
async def test_a_later_commit_never_overtakes_an_earlier_publish(nodes: Nodes, monkeypatch, guards):
    """Node A commits and is slow to publish; node B then changes the same session. With
    the topic's lock, B waits until A's event is numbered. Without it, B's event is
    numbered first, and A's late one is refused by its fence (its outbox id is below
    B's). With neither (to show that the check catches it), clients end with A's state
    while the database holds B's."""
    if guards != "locks and fences":
        monkeypatch.setattr(postgres_sql, "LOCK", "SELECT $1::text[], $2::text")
        monkeypatch.setattr(postgres_sql, "UNLOCK", "SELECT $1::text[]")
    a, b = await nodes()
    session = await a.service.create_session("s")
    followers = [await Follower.open(node, "sessions.state") for node in (a, b)]
    entered, gate = asyncio.Event(), asyncio.Event()
    publish = a.hub.publish_encoded

    async def slow_publish(topic: Any, data: bytes, *, fence: Fence | None = None) -> int:
        entered.set()
        await gate.wait()
        return await publish(topic, data, fence=None if guards == "neither" else fence)

    monkeypatch.setattr(a.hub, "publish_encoded", slow_publish)
    first = asyncio.create_task(a.service.update_session(session.id, title="A"))
    await asyncio.wait_for(entered.wait(), 10)  # A committed and is publishing
    second = asyncio.create_task(b.service.update_session(session.id, title="B"))
    async with asyncio.timeout(10):  # B finished, or is waiting for A's lock
        while not second.done() and not await waiting_for_a_lock(b.store):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the server's lock table has no event to await
    gate.set()
    await asyncio.gather(first, second)
    stored = await a.store.session(session.id)
    assert stored is not None and stored.title == "B"  # the database's order: A, then B
    if guards != "neither":
        await assert_converged(followers, a)
    else:
        with pytest.raises(AssertionError):
            await assert_converged(followers, a)
        assert followers[0].state[session.id]["title"] == "A"


async def waiting_for_a_lock(store: PostgresStore) -> bool:
    pool = store._pool
    assert pool is not None
    waiting: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return waiting > 0


# ---------------------------------------------------------------- a node dies between commit and publish


@contextlib.contextmanager
def dies_after_commit_once(node: Node, monkeypatch: Any) -> Any:
    """The node's next publish raises, as a node that died after its commit."""
    publish = node.hub.publish_encoded
    died = []

    async def die_once(topic: Any, data: bytes, *, fence: Fence | None = None) -> int:
        if not died:
            died.append(topic)
            raise RuntimeError("the node died")
        return await publish(topic, data, fence=fence)

    monkeypatch.setattr(node.hub, "publish_encoded", die_once)
    yield died
    monkeypatch.setattr(node.hub, "publish_encoded", publish)


async def test_the_next_unit_publishes_what_a_dead_node_left_first(nodes: Nodes, pg_url, monkeypatch):  # noqa: F811
    a, b = await nodes(sweep_interval_s=3600)  # no sweeping: the next unit must do it
    session = await a.service.create_session("s")
    followers = [await Follower.open(node, "sessions.state") for node in (a, b)]
    before = await last_seq(a, "sessions.state")
    with dies_after_commit_once(a, monkeypatch) as died, pytest.raises(RuntimeError, match="died"):
        await a.service.update_session(session.id, title="committed, not published")
    assert died and await outbox_rows(pg_url) == 1 and await last_seq(a, "sessions.state") == before
    await b.service.update_session(session.id, state="running")
    await assert_converged(followers, a)
    seen = followers[0].state[session.id]
    assert (seen["title"], seen["state"]) == ("committed, not published", "running")
    assert followers[0].seqs[-2:] == [before + 1, before + 2]  # the leftover, then B's
    assert await outbox_rows(pg_url) == 0


async def test_the_sweeper_publishes_what_a_dead_node_left(nodes: Nodes, pg_url, monkeypatch):  # noqa: F811
    a, b = await nodes(sweep_interval_s=0.1, sweep_age_s=0.2)
    session = await a.service.create_session("s")
    followers = [await Follower.open(node, "sessions.state") for node in (a, b)]
    before = await last_seq(a, "sessions.state")
    with dies_after_commit_once(a, monkeypatch), pytest.raises(RuntimeError, match="died"):
        await a.service.update_session(session.id, title="swept")
    for follower in followers:
        await follower.read_until(before + 1)  # nobody writes again: a sweeper publishes it
    assert followers[1].state[session.id]["title"] == "swept"
    # The sweeper deletes the row before it lets the topic go, so the next unit finds
    # nothing left to publish again: its own event is the only one after the swept one.
    await b.service.update_session(session.id, state="done")
    await assert_converged(followers, a)
    assert followers[0].seqs[-2:] == [before + 1, before + 2]
    assert await outbox_rows(pg_url) == 0


# ---------------------------------------------------------------- streaming across nodes


async def test_streams_on_two_nodes_and_a_stream_moving_between_them_converge(nodes: Nodes):
    a, b = await nodes()
    for node in (a, b):  # no flush by timer: the test orders the nodes' flushes itself
        node.service._coalescer.window_s = 60
    s1, s2 = await a.service.create_session("one"), await b.service.create_session("two")
    m1 = await a.service.add_message(s1.id, "assistant", "", streaming=True)
    m2 = await b.service.add_message(s2.id, "assistant", "Hi", streaming=True)
    assert m1 is not None and m2 is not None
    topics = [f"sessions.activity:{s1.id}", f"sessions.activity:{s2.id}"]
    followers = {t: [await Follower.open(node, t) for node in (a, b)] for t in topics}

    async def stream(node: Node, sid: str, mid: str, label: str, n: int) -> None:
        for i in range(n):
            assert await node.service.stream_text(sid, mid, f"{label}{i} ")

    await asyncio.gather(stream(a, s1.id, m1.id, "a", 30), stream(b, s2.id, m2.id, "b", 30))
    await stream(b, s1.id, m1.id, "moved", 20)  # m1's stream continues on node B
    # B's delta of m1 is flushed before A's: A's earlier text must not be skipped.
    await b.service.close()
    for topic in topics:
        await assert_converged(followers[topic], a)
    await a.service.close()  # nothing of m1 is left unpublished: this publishes nothing new
    for topic in topics:
        await assert_converged(followers[topic], a)
    expected = "".join(f"a{i} " for i in range(30)) + "".join(f"moved{i} " for i in range(20))
    assert followers[topics[0]][0].state[m1.id]["text"] == expected
    assert await b.service.end_message(s1.id, m1.id) and await a.service.end_message(s2.id, m2.id)
    for topic in topics:
        await assert_converged(followers[topic], b)


# ---------------------------------------------------------------- real processes


async def test_two_processes_with_database_and_broker_serve_one_state(
    pg_url: str,  # noqa: F811
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
):
    shared = ["--database", pg_url, "--broker", redis_base_url, "--redis-prefix", redis_prefix]
    async with backend_process(*shared) as (_, port_a), backend_process(*shared) as (_, port_b):
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{a}/api/sessions", json={"title": "shared"}) as resp:
                assert resp.status == 201
                created = await resp.json()
            ws = await WsClient.connect(http, f"{b}/api/realtime")
            await ws.subscribe("sessions.state")
            [snapshot] = await ws.barrier()
            assert snapshot["payload"]["sessions"] == [created]  # written by A, read by B
            async with http.patch(f"{a}/api/sessions/{created['id']}", json={"state": "done"}) as resp:
                assert resp.status == 200
                patched = await resp.json()
            event = await ws.recv()  # published by A, delivered by B
            assert event["seq"] == snapshot["seq"] + 1
            assert event["payload"] == {"op": "upsert", "session": patched}
            async with http.get(f"{b}/api/sessions/{created['id']}") as resp:
                assert await resp.json() == patched
            await ws.close()
