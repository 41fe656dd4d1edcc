"""A PostgreSQL that stops answering (every process of it SIGSTOPped: connections and
new connects hang, as a black-holed host's do), restarts, or has a node stall while
holding a topic: every HTTP and socket answer comes within the stated timeouts, as
503 / `unavailable`, never a hang and never a 500; `/readyz` says so within seconds
and recovers; a stalled holder of a topic does not block the other nodes' writers
for longer than the store's timeout. On a throwaway cluster of this module's own
(never the shared server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from aiohttp_realtime import RealtimeSettings
from backend import postgres_sql as sql
from backend.app import Config, build_app
from backend.postgres_deadlines import LOCK_TIMEOUT_S, TIMEOUT_S, Deadlines
from backend.postgres_store import PostgresStore
from backend.probes import PROBE_TIMEOUT_S
from backend.store import StoreUnavailable
from tests.pg_support import Cluster, new_database, own_cluster
from tests.store_support import opened
from tests.support import WsClient

T = TypeVar("T")
#: Scheduling slack on top of a stated timeout.
SLACK_S = 1.5
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with own_cluster() as own:
        yield own


@pytest.fixture
async def db(cluster: Cluster) -> AsyncIterator[str]:
    async with new_database(cluster.url) as url:
        yield url


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result; fails the test if it takes longer than `seconds`."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def status_of(client: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body)
    return resp.status, await resp.json()


async def poll_readyz(client: Any, until_status: int) -> dict[str, Any]:
    while (resp := await client.get("/readyz")).status != until_status:  # noqa: ASYNC110 - each poll probes anew
        await asyncio.sleep(0.1)
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_frozen_database_is_a_503_within_the_timeout_and_readyz_tells(aiohttp_client, cluster, db):
    client = await aiohttp_client(build_app(Config(simulate=False, database=db)))  # the defaults
    status, created = await status_of(client, "POST", "/api/sessions", {"title": "before"})
    assert status == 201
    assert (await client.get("/readyz")).status == 200
    with cluster.frozen():
        requests = (
            ("POST", "/api/sessions", {"title": "during"}),
            ("PATCH", f"/api/sessions/{created['id']}", {"state": "running"}),
            ("GET", "/api/sessions", None),
            ("GET", f"/api/sessions/{created['id']}", None),
        )
        answers = [status_of(client, m, p, b) for m, p, b in requests]
        # The probes answer well before the writes give up: readyz is 503 within ~2 s.
        readyz = await within(PROBE_TIMEOUT_S + SLACK_S, poll_readyz(client, 503))
        assert readyz["checks"] == {"broker": True, "store": False, "serving": True}
        for status, body in await within(TIMEOUT_S + SLACK_S, asyncio.gather(*answers)):
            assert (status, body["error"]) == (503, "unavailable")
        assert (await client.get("/healthz")).status == 200
    await within(10, poll_readyz(client, 200))
    assert (await status_of(client, "POST", "/api/sessions", {"title": "after"}))[0] == 201


async def test_socket_calls_and_snapshots_on_a_frozen_database_are_answered_in_time(
    aiohttp_client, cluster, db
):
    client = await aiohttp_client(build_app(Config(simulate=False, database=db)))
    ws = await WsClient.connect(client)
    with cluster.frozen():
        await ws.send({"type": "request", "id": "w", "method": "sessions.create", "params": {"title": "x"}})
        await ws.subscribe("sessions.state", id="s")
        frames = [await within(TIMEOUT_S + SLACK_S, ws.recv()) for _ in range(2)]
    by_kind = {f["type"]: f for f in frames}
    assert by_kind["response"]["error"]["code"] == "unavailable"  # the store's 5 s, within the call's 10 s
    assert by_kind["error"]["code"] == "snapshot_failed"  # within the snapshot's 10 s too
    await ws.close()


async def test_a_call_stuck_on_a_frozen_database_is_answered_at_request_timeout_s(
    aiohttp_client, cluster, db
):
    """The call's deadline (1.5 s) comes before the store's (5 s): the handler is still
    inside asyncpg when it is cancelled, and the answer must not wait for it to unwind."""
    config = Config(simulate=False, database=db, realtime=RealtimeSettings(request_timeout_s=1.5))
    client = await aiohttp_client(build_app(config))
    ws = await WsClient.connect(client)
    loop = asyncio.get_running_loop()
    with cluster.frozen():
        started = loop.time()
        await ws.send({"type": "request", "id": "w", "method": "sessions.create", "params": {"title": "x"}})
        response = await within(1.5 + SLACK_S, ws.recv())
        assert response["error"]["code"] == "timeout" and loop.time() - started < 1.5 + 0.5
    await ws.close()


async def test_the_store_probe_fails_within_its_timeout_on_a_frozen_database(cluster, db):
    async with opened(PostgresStore(db)) as o:
        await o.store.check()
        with cluster.frozen():
            with pytest.raises(StoreUnavailable):
                await within(PROBE_TIMEOUT_S + SLACK_S, o.store.check())
        await within(PROBE_TIMEOUT_S + SLACK_S, o.store.check())  # a new connection, once it answers


async def test_a_restarting_database_is_a_503_never_a_500(aiohttp_client, cluster, db):
    client = await aiohttp_client(build_app(Config(simulate=False, database=db)))
    statuses: Counter[tuple[str, int]] = Counter()
    restarted = threading.Event()

    async def load() -> None:  # reads and writes in flight while the server goes down and up
        n = 0
        while not restarted.is_set():
            n += 1
            method, path, body = (
                ("POST", "/api/sessions", {"title": f"t{n}"})
                if n % 8 == 0
                else (
                    "GET",
                    "/api/sessions",
                    None,
                )
            )
            status, _ = await within(TIMEOUT_S + SLACK_S, status_of(client, method, path, body))
            statuses[(method, status)] += 1

    def restart() -> None:
        try:
            cluster.stop("fast")  # backends end with AdminShutdown, mid-query
            cluster.start()
        finally:
            restarted.set()

    workers = [asyncio.create_task(load()) for _ in range(6)]
    await asyncio.to_thread(restart)
    await asyncio.gather(*workers)
    assert not [key for key in statuses if key[1] >= 500 and key[1] != 503], statuses
    async with asyncio.timeout(10):
        while (await status_of(client, "GET", "/api/sessions"))[0] != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the pool replaces its dead connections as they are used
    assert (await status_of(client, "POST", "/api/sessions", {"title": "after"}))[0] == 201
    async with asyncio.timeout(10):  # down while it was stopped: 503 then, whatever the timing
        cluster.stop("fast")
        try:
            assert (await status_of(client, "GET", "/api/sessions"))[0] == 503
            assert (await status_of(client, "POST", "/api/sessions", {"title": "x"}))[0] == 503
        finally:
            cluster.start()


async def wait_for_a_write(client: Any) -> float:
    """Seconds until a write of `sessions.state` succeeds, every 503 in between answered
    within the lock timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        write = status_of(client, "POST", "/api/sessions", {"title": "w"})
        status, body = await within(LOCK_TIMEOUT_S + SLACK_S, write)
        if status == 201:
            return loop.time() - started
        assert (status, body["error"]) == (503, "unavailable")


async def test_a_silent_holder_of_a_topic_loses_it_after_the_timeout(aiohttp_client, db):
    client = await aiohttp_client(build_app(Config(simulate=False, database=db)))
    holder = await asyncpg.connect(db)  # another node's connection, taking the lock as a unit does
    try:
        await holder.fetch(sql.LOCK, ["sessions.state"], Deadlines().idle_while_locked)
        # ... then goes silent: no statement, no unlock, the connection left open.
        waited = await within(TIMEOUT_S + LOCK_TIMEOUT_S + 2 * SLACK_S, wait_for_a_write(client))
        assert waited >= LOCK_TIMEOUT_S - 0.5  # the first attempts met the lock: 503s
        assert holder.is_closed() or await _closed_by_server(holder)
    finally:
        holder.terminate()


async def _closed_by_server(conn: asyncpg.Connection[Any]) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
        return True
    return False


#: A node that freezes (SIGSTOP) in the middle of a unit: committed, its events not yet
#: published, so holding the topic's session-level lock outside any transaction.
STALLING_NODE = """
import asyncio, os, signal, sys
from aiohttp_realtime import Hub, MemoryBroker
from backend.postgres_store import PostgresStore
from backend.service import SessionService
from backend.topics import build_registry

class Stalls(MemoryBroker):
    async def publish(self, topic, payload, fence=None):
        print("holding", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        return await super().publish(topic, payload, fence)

async def main():
    store = PostgresStore(sys.argv[1])
    hub = Hub(build_registry(store), broker=Stalls())
    await hub.start()
    store.bind(hub)
    await store.start()
    await SessionService(store).create_session("stalls")

asyncio.run(main())
"""


async def test_a_node_frozen_while_holding_a_topic_blocks_the_others_only_until_the_timeout(
    aiohttp_client, db
):
    client = await aiohttp_client(build_app(Config(simulate=False, database=db)))
    assert (await status_of(client, "POST", "/api/sessions", {"title": "w"}))[0] == 201  # pool ready
    node = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STALLING_NODE, db, cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert node.stdout is not None
        assert await within(30, node.stdout.readline()) == b"holding\n"
        waited = await within(TIMEOUT_S + LOCK_TIMEOUT_S + 2 * SLACK_S, wait_for_a_write(client))
        assert waited >= LOCK_TIMEOUT_S - 0.5  # it did hold the topic, then PostgreSQL let it go
    finally:
        node.kill()  # SIGKILL ends a stopped process too
        await node.wait()
