"""Idempotent writes' outcomes in the stores (backend/idempotency.py, `Tx.recall` and
`Tx.remember`), one suite for both: the window, kept with the unit or not at all, a
taken key; the in-memory store's bounds; PostgreSQL's purge, and two units that race
for one key on different topics."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import pytest

from backend.idempotency import Idempotency, KeyReused, fingerprint
from backend.memory_store import MemoryStore
from backend.outcomes import KeyTaken, Remembered
from backend.postgres_store import PostgresStore
from backend.service import SessionService
from backend.store import Store
from backend.topics import ACTIVITY, SESSIONS
from tests.pg_support import pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.store_support import T0, opened
from tests.test_store_contract import Open, open_store  # noqa: F401 - the parametrized fixture

ALICE = Idempotency("principal:alice", "k-1")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def service_with_clock(store: Store, window_s: float = 60) -> tuple[SessionService, Clock]:
    service = SessionService(store, idempotency_window_s=window_s)
    clock = Clock()
    service.once.clock = clock
    return service, clock


def record(key: str, result: str = "{}", *, at: datetime = T0, scope: str = "s") -> Remembered:
    return Remembered(scope, key, "op", fingerprint("op", {}), result, at + timedelta(seconds=60))


async def test_an_outcome_is_kept_for_the_window_then_the_key_is_free(open_store: Open):  # noqa: F811
    service, clock = service_with_clock((await open_store()).store, window_s=60)
    first = await service.create_session("windowed", key=ALICE)
    clock.now += timedelta(seconds=59)
    assert await service.create_session("windowed", key=ALICE) == first
    with pytest.raises(KeyReused):
        await service.create_session("another", key=ALICE)
    clock.now += timedelta(seconds=2)  # past the window: a new request under the old key
    again = await service.create_session("another", key=ALICE)
    assert again.id != first.id and again.title == "another"
    assert await service.create_session("another", key=ALICE) == again
    assert [s.id for s in await service.store.sessions()] == [first.id, again.id]
    await service.close()


async def test_an_outcome_is_kept_with_its_unit_or_not_at_all(open_store: Open):  # noqa: F811
    store = (await open_store()).store
    with pytest.raises(RuntimeError):
        async with store.write([SESSIONS]) as tx:
            await tx.remember(record("undone"), T0)
            raise RuntimeError("the body fails after keeping the outcome")
    async with store.write([SESSIONS]) as tx:
        assert await tx.recall("s", "undone", T0) is None
        await tx.remember(record("kept", '{"n":1}'), T0)
    async with store.write([SESSIONS]) as tx:
        assert await tx.recall("s", "kept", T0) == record("kept", '{"n":1}')
        assert await tx.recall("other scope", "kept", T0) is None
        assert await tx.recall("s", "kept", T0 + timedelta(seconds=60)) is None  # expired


async def test_a_live_key_is_taken_and_an_expired_one_replaced(open_store: Open):  # noqa: F811
    store = (await open_store()).store
    async with store.write([SESSIONS]) as tx:
        await tx.remember(record("k", '"first"'), T0)
    with pytest.raises(KeyTaken):
        async with store.write([SESSIONS]) as tx:
            await tx.remember(record("k", '"second"'), T0 + timedelta(seconds=59))
    later = T0 + timedelta(seconds=60)
    async with store.write([SESSIONS]) as tx:
        assert await tx.recall("s", "k", T0) == record("k", '"first"')
        await tx.remember(record("k", '"third"', at=later), later)
    async with store.write([SESSIONS]) as tx:
        assert await tx.recall("s", "k", later) == record("k", '"third"', at=later)


async def test_the_memory_store_forgets_the_oldest_outcomes_past_its_bounds():
    async with opened(MemoryStore(max_idempotency_keys=2)) as o:
        service, _ = service_with_clock(o.store)
        keys = [Idempotency("anonymous", f"k-{n}") for n in range(3)]
        made = [await service.create_session(f"t{n}", key=k) for n, k in enumerate(keys)]
        assert await service.create_session("t2", key=keys[2]) == made[2]
        assert await service.create_session("t1", key=keys[1]) == made[1]
        forgotten = await service.create_session("t0", key=keys[0])  # the oldest: run again
        assert forgotten.id != made[0].id
        await service.close()
    size = 1000 + len("s") + len("k-0") + len("op") + 64  # the outcome's strings, in bytes
    async with opened(MemoryStore(max_idempotency_bytes=2 * size)) as o:
        for n in range(3):
            async with o.store.write([SESSIONS]) as tx:
                await tx.remember(record(f"k-{n}", "x" * 1000), T0)
        async with o.store.write([SESSIONS]) as tx:
            assert [await tx.recall("s", f"k-{n}", T0) is not None for n in range(3)] == [False, True, True]


async def test_postgres_deletes_expired_outcomes_as_it_keeps_new_ones(pg_url):  # noqa: F811
    async with opened(PostgresStore(pg_url)) as o:
        service, clock = service_with_clock(o.store, window_s=60)
        for n in range(3):
            await service.create_session(f"t{n}", key=Idempotency("anonymous", f"old-{n}"))
        clock.now += timedelta(seconds=61)
        await service.create_session("new", key=Idempotency("anonymous", "new"))
        conn = await asyncpg.connect(pg_url)
        try:
            assert [r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")] == ["new"]
        finally:
            await conn.close()
        await service.close()


@pytest.mark.parametrize("same_request", [True, False])
async def test_postgres_a_unit_that_loses_the_race_for_a_key_runs_again_and_finds_the_winner(
    pg_url,  # noqa: F811
    same_request,
):
    """Two requests under one key on different topics (so no topic lock orders them): the
    second's insert waits for the first's commit, fails, and its unit runs again."""
    async with opened(PostgresStore(pg_url)) as o:
        service, _ = service_with_clock(o.store)
        one, two = [await service.create_session(t) for t in ("one", "two")]
        winner = await service.add_message(one.id, "user", "first")
        assert winner is not None
        sent_to = two.id if same_request else one.id
        arguments = {"session_id": sent_to, "role": "user", "text": "first", "streaming": False}
        won = Remembered(
            ALICE.scope, ALICE.key, "messages.send", fingerprint("messages.send", arguments),
            winner.model_dump_json(), T0 + timedelta(seconds=60),
        )  # fmt: skip
        watcher = await asyncpg.connect(pg_url)
        try:
            async with o.store.write([ACTIVITY.at(session_id=f"s-elsewhere{same_request}")]) as tx:
                await tx.remember(won, T0)  # not committed yet
                loser = asyncio.create_task(service.add_message(two.id, "user", "first", key=ALICE))
                await _waits_for_a_row_lock(watcher)
            if same_request:
                assert await loser == winner  # the winner's outcome, nothing written
            else:
                with pytest.raises(KeyReused):
                    await loser
        finally:
            await watcher.close()
        assert [m.text for m in await o.store.messages(two.id)] == []
        await service.close()


async def _waits_for_a_row_lock(watcher: asyncpg.Connection) -> None:
    """Until another session of this database waits on a lock (the loser's insert)."""
    query = """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""
    async with asyncio.timeout(10):
        while not await watcher.fetchval(query):
            pass
