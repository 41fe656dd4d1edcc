"""The demo's state in PostgreSQL, shared by every node (`python -m backend --database`).

A unit of work (`store.py` explains why units exist) is, on one pooled connection:

1. a session-level `pg_advisory_lock` per topic (the key `hashtextextended(topic, 0)`,
   the same on every node), taken in key order so that two units never wait for each
   other in a cycle;
2. the outbox's leftovers of those topics published and deleted (below);
3. a transaction in which the body's changes are made, and each queued event is
   INSERTed into `realtime_outbox`; then COMMIT;
4. the events published through the hub (which numbers them), then their outbox rows
   DELETEd;
5. the locks released (in a `finally`; a connection that dies releases them too).

The outbox makes a crash between 3 and 4 harmless. The events of a node that died
after committing are still in `realtime_outbox`, and every later unit on their topics
publishes them first, in id order, under the topics' locks: before any later change's
event, so the order holds. A topic nobody writes again is swept: every
`sweep_interval_s` a background task looks for rows older than `sweep_age_s` and, for
each of their topics whose lock is free, does the same (a taken lock means a live unit
holds the topic, and that unit published any leftovers before its own change).

Every publish is fenced by its outbox row id, which grows with each topic's commit
order (the rows are inserted under the topic's lock): the broker numbers an event only
if its fence is above the topic's last one (`Broker.publish`). So a unit whose publish
timed out but reaches Redis late, or a node that lost its database connection (and so
its locks) between commit and publish, is refused once a newer change of the topic
was published - no subscriber is left on an older state - and a leftover that its own
unit did publish after all is not delivered twice.

Reads are plain queries on any pooled connection, outside units.

Every read and unit fails within `timeout_s` (`StoreUnavailable`, the API's 503) when
the database does not answer, and a unit waits at most `lock_timeout_s` for a topic
that another unit holds; PostgreSQL ends the session of a node that stalls while it
holds a topic, releasing the topic for the others (`postgres_deadlines.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from aiohttp_realtime import Fence, Hub, TopicDef, TopicRef

from . import postgres_sql as sql
from .models import MAX_TEXT, Message, Session, Terminal
from .outcomes import KeyTaken, Remembered
from .postgres_deadlines import (
    LOCK_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    TIMEOUT_S,
    Deadlines,
    Probe,
    connection,
    terminate,
)
from .store import (
    KEPT_MESSAGES,
    MAX_SESSION_TEXT_BYTES,
    MAX_SESSIONS,
    MAX_TERMINALS,
    MAX_TITLE_BYTES,
    Events,
    QuotaExceeded,
    StoreUnavailable,
    Topic,
    Tx,
    check_limits,
    json_size,
)

log = logging.getLogger(__name__)

E = TypeVar("E")
if TYPE_CHECKING:  # generic in the stubs only
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_title_bytes: int = MAX_TITLE_BYTES,
        max_terminals: int = MAX_TERMINALS,
        kept_messages: int = KEPT_MESSAGES,
        max_session_text_bytes: int = MAX_SESSION_TEXT_BYTES,
        pool_size: int = 10,
        sweep_interval_s: float = 1.0,
        sweep_age_s: float = 1.0,
        timeout_s: float = TIMEOUT_S,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        check_limits(max_sessions, max_title_bytes, max_terminals, kept_messages, max_session_text_bytes)
        self.max_sessions = max_sessions
        self.max_title_bytes = max_title_bytes
        self.max_terminals = max_terminals
        self.kept_messages = kept_messages
        self.max_session_text_bytes = max_session_text_bytes
        self._dsn = dsn
        self._pool_size = pool_size
        self._sweep_interval_s = sweep_interval_s
        self._sweep_age_s = sweep_age_s
        self._deadlines = Deadlines(timeout_s, lock_timeout_s, probe_timeout_s)
        self._pool: Pool | None = None
        self._probe = Probe(dsn, self._deadlines)
        self._hub: Hub | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._healthy = False
        #: The scope of this database's publish fences (`sql.GENERATION`), read at start.
        self._fence_scope = ""

    # ------------------------------------------------------------ lifecycle

    def bind(self, hub: Hub) -> None:
        self._hub = hub

    async def start(self) -> None:
        """Connect, create the tables if missing, start the outbox sweeper."""
        d = self._deadlines
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=d.timeout_s,  # to connect
            command_timeout=d.timeout_s,
            server_settings=d.server_settings(),
        )
        async with self._pool.acquire() as conn:
            encoding = await conn.fetchval("SHOW server_encoding")
            if encoding != "UTF8":  # the text budgets count UTF-8 bytes (octet_length)
                raise RuntimeError(f"the database's encoding is {encoding}; the store needs UTF8")
            async with conn.transaction():
                await conn.execute(sql.SCHEMA_DEADLINES)
                # Nodes starting together create it once.
                await conn.execute(sql.SCHEMA_LOCK, timeout=sql.SCHEMA_TIMEOUT_S)
                await conn.execute(sql.SCHEMA, timeout=sql.SCHEMA_TIMEOUT_S)
                self._fence_scope = await conn.fetchval(sql.GENERATION, secrets.token_hex(8))
        self._healthy = True
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="outbox-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._probe.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(self._deadlines.timeout_s):
                    await pool.close()  # waits for the connections in use, and says goodbye
            except TimeoutError:  # a database that does not answer: just hang up
                pool.terminate()
        self._healthy = False

    @property
    def healthy(self) -> bool:
        """Started, and the sweeper's last look at the database succeeded."""
        return self._healthy

    async def check(self) -> None:
        """Readiness: `SELECT 1` within `probe_timeout_s`, on a connection of its own (a
        pool busy with writes does not make a node unready; a database that does not
        answer does). Raises `StoreUnavailable`."""
        if self._pool is None:
            raise StoreUnavailable("the store is not started")
        await self._probe.check()

    def _ready(self) -> tuple[Pool, Hub]:
        if self._pool is None or self._hub is None:
            raise RuntimeError("the store is not started, or not bound to a hub")
        return self._pool, self._hub

    # ------------------------------------------------------------ units

    @contextlib.asynccontextmanager
    async def write(self, topics: Iterable[Topic]) -> AsyncIterator[Tx]:
        async with self._unit(topics) as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def _unit(self, topics: Iterable[Topic]) -> AsyncIterator[Tx]:
        pool, hub = self._ready()
        events = Events(topics)
        async with connection(pool, self._deadlines.timeout_s) as conn:
            await conn.execute(sql.LOCK, events.topics, self._deadlines.idle_while_locked)
            try:
                await self._drain(conn, hub, events.topics)
                tx = _PostgresTx(self, conn, events)
                async with conn.transaction():
                    yield tx
                    ids = await self._to_outbox(conn, events)
                await events.publish_to(hub, fences=[Fence(self._fence_scope, i) for i in ids])
                if ids:
                    await conn.execute(sql.OUTBOX_DELETE, ids)
            finally:
                await _unlock(conn, events.topics)

    @staticmethod
    async def _to_outbox(conn: Connection, events: Events) -> list[int]:
        if not events.queued:
            return []
        topics = [ref.name for ref, _, _ in events.queued]
        payloads = [payload.decode() for _, _, payload in events.queued]
        return [row["id"] for row in await conn.fetch(sql.OUTBOX_INSERT, topics, payloads)]

    async def _drain(self, conn: Connection, hub: Hub, topics: Sequence[str]) -> int:
        """Publish (in id order) and delete the outbox rows of `topics`: what a unit that
        died after its commit left. The caller holds the topics' locks."""
        rows = await conn.fetch(sql.OUTBOX_LEFT, topics)
        for row in rows:
            # Fenced by its row id: refused if it was published already (by its unit,
            # late) or a newer change of the topic was - never delivered twice or stale.
            # Its JSON was validated and encoded when its unit queued it: not again.
            fence = Fence(self._fence_scope, row["id"])
            await hub.publish_encoded(row["topic"], row["payload"].encode(), fence=fence)
        if rows:
            log.warning("published %d event(s) a unit left in the outbox", len(rows))
            await conn.execute(sql.OUTBOX_DELETE, [row["id"] for row in rows])
        return len(rows)

    async def sweep(self) -> int:
        """One sweep (the background task runs it every `sweep_interval_s`): publish the
        outbox rows older than `sweep_age_s` of every topic whose lock is free. Returns
        how many were published."""
        pool, hub = self._ready()
        published = 0
        async with connection(pool, self._deadlines.timeout_s) as conn:
            for row in await conn.fetch(sql.OUTBOX_STALE_TOPICS, self._sweep_age_s):
                topic: str = row["topic"]
                if not await conn.fetchval(sql.TRY_LOCK_ONE, topic, self._deadlines.idle_while_locked):
                    continue  # a live unit holds it: it publishes the leftovers first
                try:
                    published += await self._drain(conn, hub, [topic])
                finally:
                    await _unlock(conn, [topic])
        return published

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)  # a period, not a synchronisation
            try:
                await self.sweep()
                self._healthy = True
            except (StoreUnavailable, asyncpg.PostgresError) as exc:
                self._healthy = False
                log.warning("outbox sweep failed: %s", exc)
            except Exception:  # e.g. the broker is down: the rows stay for the next sweep
                log.exception("outbox sweep failed")

    # ------------------------------------------------------------ reads

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool, _ = self._ready()
        async with connection(pool, self._deadlines.timeout_s) as conn:
            return await conn.fetch(query, *args)

    async def sessions(self) -> list[Session]:
        return [Session(**row) for row in await self._fetch(sql.SESSIONS)]

    async def session(self, session_id: str) -> Session | None:
        rows = await self._fetch(sql.SESSION, session_id)
        return Session(**rows[0]) if rows else None

    async def messages(self, session_id: str) -> list[Message]:
        return [Message(**row) for row in await self._fetch(sql.MESSAGES, session_id)]

    async def message(self, session_id: str, message_id: str) -> Message | None:
        rows = await self._fetch(sql.MESSAGE, session_id, message_id)
        return Message(**rows[0]) if rows else None

    async def terminals(self) -> list[Terminal]:
        return [Terminal(**row) for row in await self._fetch(sql.TERMINALS)]


async def _unlock(conn: Connection, topics: Sequence[str]) -> None:
    """Release the topics' locks (and their idle timeout). If that fails the connection
    is terminated, which releases them too: the unit's outcome stands (a change already
    committed and published is not reported as failed because its unlock was not heard)."""
    try:
        await conn.execute(sql.UNLOCK, topics)
    except BaseException as exc:
        terminate(conn)  # the server releases a closed session's locks
        if not isinstance(exc, Exception):
            raise
        log.warning("could not release %s (connection terminated instead): %r", list(topics), exc)


class _PostgresTx:
    """A `PostgresStore` unit: statements on the unit's connection, in its transaction."""

    def __init__(self, store: PostgresStore, conn: Connection, events: Events) -> None:
        self._store = store
        self._conn = conn
        self.events = events

    def publish(self, topic: TopicRef[Any, E] | TopicDef[Any, E], event: E) -> None:
        self.events.publish(topic, event)

    async def session(self, session_id: str) -> Session | None:
        row = await self._conn.fetchrow(sql.SESSION, session_id)
        return None if row is None else Session(**row)

    async def put_session(self, session: Session) -> None:
        store = self._store
        [(count, title_bytes, old_bytes)] = await self._conn.fetch(sql.SESSIONS_SIZE, session.id)
        if old_bytes is None and count >= store.max_sessions:
            raise QuotaExceeded("sessions", f"at most {store.max_sessions} sessions")
        size = json_size(session.title)
        if title_bytes + size - (old_bytes or 0) > store.max_title_bytes:
            limit = store.max_title_bytes
            raise QuotaExceeded("sessions", f"the sessions' titles may total at most {limit} bytes as JSON")
        s = session
        await self._conn.execute(sql.SESSION_PUT, s.id, s.title, size, s.state, s.created_at, s.updated_at)

    async def delete_session(self, session_id: str) -> list[str] | None:
        terminals = [row["id"] for row in await self._conn.fetch(sql.SESSION_TERMINALS_DELETE, session_id)]
        deleted = await self._conn.fetchval(sql.SESSION_DELETE, session_id)
        return terminals if deleted is not None else None

    async def message(self, session_id: str, message_id: str) -> Message | None:
        row = await self._conn.fetchrow(sql.MESSAGE, session_id, message_id)
        return None if row is None else Message(**row)

    async def put_message(self, message: Message) -> bool:
        m = message
        kept = await self._conn.fetchval(
            sql.MESSAGE_PUT, m.session_id, m.id, m.role, m.text, m.streaming, m.created_at
        )
        if kept is not None:
            await self._trim(m.session_id)
        return kept is not None

    async def append_text(self, session_id: str, message_id: str, text: str) -> bool:
        length = await self._conn.fetchval(sql.MESSAGE_APPEND, session_id, message_id, text, MAX_TEXT)
        if length is not None:
            await self._trim(session_id)
        return length is not None

    async def unpublished_text(self, session_id: str, message_id: str) -> tuple[int, str] | None:
        row = await self._conn.fetchrow(sql.MESSAGE_TAKE_UNPUBLISHED, session_id, message_id)
        return None if row is None else (row["offset"], row["text"])

    async def _trim(self, session_id: str) -> None:
        kept, budget = self._store.kept_messages, self._store.max_session_text_bytes
        await self._conn.execute(sql.MESSAGES_TRIM, session_id, kept, budget)

    async def put_terminal(self, terminal: Terminal) -> bool:
        t = terminal
        [(count, exists, session_known)] = await self._conn.fetch(sql.TERMINALS_SIZE, t.id, t.session_id)
        if not session_known:
            return False
        if not exists and count >= self._store.max_terminals:
            raise QuotaExceeded("terminals", f"at most {self._store.max_terminals} terminals")
        await self._conn.execute(
            sql.TERMINAL_PUT, t.id, t.name, t.session_id, t.status, t.exit_code, t.updated_at
        )
        return True

    async def delete_terminal(self, terminal_id: str) -> bool:
        return await self._conn.fetchval(sql.TERMINAL_DELETE, terminal_id) is not None

    async def recall(self, scope: str, key: str, now: datetime) -> Remembered | None:
        row = await self._conn.fetchrow(sql.IDEMPOTENCY_RECALL, scope, key, now)
        return None if row is None else Remembered(**row)

    async def remember(self, record: Remembered, now: datetime) -> None:
        """Expired outcomes are deleted here, a batch per kept one: the table holds
        about the window's worth."""
        r = record
        await self._conn.execute(sql.IDEMPOTENCY_PURGE, now, 100)
        kept = await self._conn.fetchval(
            sql.IDEMPOTENCY_REMEMBER, r.scope, r.key, r.operation, r.fingerprint, r.result, r.expires_at, now
        )
        if kept is None:
            raise KeyTaken(r.key)
