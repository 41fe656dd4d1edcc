"""What only PostgresStore has: its schema, its topic locks as the server sees them, and
the outbox sweeper. (The contract it shares with MemoryStore: test_store_contract.py;
several nodes on one database: test_convergence.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from backend.models import SessionUpsert
from backend.postgres_store import PostgresStore
from backend.topics import SESSIONS, TERMINALS
from tests.pg_support import new_database, pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.store_support import opened, put_session, session


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:  # noqa: F811
    """A connection of the test's own to the store's database (another node, say)."""
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


async def advisory_locks(conn: asyncpg.Connection[Any], *, granted: bool) -> int:
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = $1"
    count: int = await conn.fetchval(query, granted)
    return count


async def test_nodes_starting_together_create_the_schema_once(pg_url: str):  # noqa: F811
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(store.start() for store in stores))
    try:
        assert all(store.healthy for store in stores)
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert not stores[0].healthy
    async with opened(PostgresStore(pg_url)) as again:  # and once more on the existing tables
        assert await again.store.sessions() == []


async def test_a_database_not_in_utf8_is_refused(pg_admin_url: str):  # noqa: F811
    admin = await asyncpg.connect(pg_admin_url)
    name = "rt_test_ascii_" + str(id(admin))
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII'")
    try:
        store = PostgresStore(pg_admin_url.rsplit("/", 1)[0] + f"/{name}")
        with pytest.raises(RuntimeError, match="UTF8"):
            await store.start()
        await store.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def test_units_hold_their_topics_locks_and_release_them_even_when_they_fail(pg_url: str, admin):  # noqa: F811
    async with opened(PostgresStore(pg_url)) as o:
        async with o.store.write([SESSIONS, TERMINALS]):
            assert await advisory_locks(admin, granted=True) == 2
        with pytest.raises(ZeroDivisionError):
            async with o.store.write([SESSIONS]):
                assert await advisory_locks(admin, granted=True) == 1
                _ = 1 / 0
        assert await advisory_locks(admin, granted=True) == 0


async def test_a_unit_cancelled_while_it_waits_for_a_lock_leaves_nothing_held(pg_url: str, admin):  # noqa: F811
    async with opened(PostgresStore(pg_url)) as o:
        await admin.execute("SELECT pg_advisory_lock(hashtextextended('sessions.state', 0))")  # another node
        waiting = asyncio.create_task(put_session(o.store, session(1)))
        async with asyncio.timeout(10):
            while not await advisory_locks(admin, granted=False):  # noqa: ASYNC110 - no event to await
                await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await admin.execute("SELECT pg_advisory_unlock_all()")
        async with asyncio.timeout(10):
            await put_session(o.store, session(2))  # the topic is free again
        assert [s.id for s in await o.store.sessions()] == [session(2).id]
        assert await advisory_locks(admin, granted=True) == await advisory_locks(admin, granted=False) == 0


async def test_the_sweeper_publishes_old_rows_in_order_and_skips_a_topic_in_use(pg_url: str, admin):  # noqa: F811
    async with opened(PostgresStore(pg_url, sweep_interval_s=3600, sweep_age_s=1)) as o:
        store, broker = o.store, o.broker
        assert isinstance(store, PostgresStore)
        events = [SessionUpsert(op="upsert", session=session(n)).model_dump_json() for n in range(3)]
        insert = (
            "INSERT INTO realtime_outbox (topic, payload, created_at) VALUES ($1, $2, now() - $3::interval)"
        )
        for event in events:  # left by a node that died an hour ago
            await admin.execute(insert, "sessions.state", event, timedelta(hours=1))
        await admin.execute(insert, "sessions.state", events[0], timedelta(0))  # too young to sweep yet
        await admin.execute("SELECT pg_advisory_lock(hashtextextended('sessions.state', 0))")  # a live unit
        assert await store.sweep() == 0 and broker.published == []
        await admin.execute("SELECT pg_advisory_unlock_all()")
        assert await store.sweep() == 4  # the topic's rows, the young one too: one drain under its lock
        assert broker.published == [("sessions.state", json.loads(e)) for e in [*events, events[0]]]
        assert await admin.fetchval("SELECT count(*) FROM realtime_outbox") == 0
        assert await store.sweep() == 0
