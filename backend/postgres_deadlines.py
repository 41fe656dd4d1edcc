"""How long anything may take against PostgreSQL, and what "the database is gone" is.

A database that stops answering (its host frozen, its network black-holed) sends no
error and no reset: every statement, every connect, every cleanup step waits. So
`PostgresStore` bounds them at both ends.

In PostgreSQL itself, per connection (`Deadlines.server_settings`):

- `statement_timeout` (`timeout_s`): a statement running longer is cancelled;
- `lock_timeout` (`lock_timeout_s`): a statement waiting longer for a lock - a topic's
  advisory lock that another node holds - fails (`LockNotAvailableError`);
- `idle_in_transaction_session_timeout` (`timeout_s`): a session that sends nothing
  for that long inside a transaction (its node stalled) is terminated, which ends the
  transaction and releases every lock the session holds;
- `idle_session_timeout` (`timeout_s`), only while a unit holds topic locks: the
  topic locks are session-level and taken *before* the unit's transaction, and held
  after its commit while its events are published, where the previous setting does
  not reach. The statement that takes the locks sets it and the one that releases
  them resets it (`postgres_sql.LOCK`, `UNLOCK`), so a node that stalls while holding
  a topic cannot block the topic's writers on other nodes for longer than that. Idle
  pooled connections hold nothing and have no such timeout.

A live unit is never idle that long: its own deadline (below) is the same `timeout_s`.

In the client:

- every read and every unit runs within `timeout_s`, from the pool's acquire to the
  connection's release (`connection`); past it the connection is terminated *before*
  the task is cancelled, so that no cleanup step - asyncpg's ROLLBACK, the unlock, the
  pool's reset - waits on a server that does not answer, and the caller gets
  `StoreUnavailable` at the deadline, not whenever the server comes back;
- asyncpg's `command_timeout` (`timeout_s`) bounds each statement, and the cancel
  requests and pool resets asyncpg runs on its own;
- connecting is bounded by `timeout_s`, a readiness probe by `probe_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from . import postgres_sql as sql
from .store import StoreUnavailable

if TYPE_CHECKING:  # generic in the stubs only
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]

#: Every read and every unit of work, start to end (and each statement in PostgreSQL).
TIMEOUT_S = 5.0
#: Waiting for a topic's lock (held by another unit, on this node or another).
LOCK_TIMEOUT_S = 2.0
#: A readiness probe (`PostgresStore.check`).
PROBE_TIMEOUT_S = 2.0


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


@dataclass(frozen=True)
class Deadlines:
    timeout_s: float = TIMEOUT_S
    lock_timeout_s: float = LOCK_TIMEOUT_S
    probe_timeout_s: float = PROBE_TIMEOUT_S

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.lock_timeout_s, self.probe_timeout_s) <= 0:
            raise ValueError("the store's timeouts must be positive")
        if self.lock_timeout_s > self.timeout_s:
            raise ValueError("lock_timeout_s must be at most timeout_s (a lock wait is part of a unit)")

    def server_settings(self) -> dict[str, str]:
        """PostgreSQL's own deadlines for every connection of the store (milliseconds)."""
        return {
            "statement_timeout": _ms(self.timeout_s),
            "lock_timeout": _ms(self.lock_timeout_s),
            "idle_in_transaction_session_timeout": _ms(self.timeout_s),
        }

    @property
    def idle_while_locked(self) -> str:
        """`idle_session_timeout` while a connection holds topic locks (milliseconds)."""
        return _ms(self.timeout_s)


#: What a database that went away, restarts, or does not answer in time raises through
#: asyncpg: all of it is "unavailable now, retry later" to the store's callers.
GONE = (
    OSError,
    TimeoutError,  # connect, acquire, a statement, or the store's own deadline
    asyncpg.InterfaceError,  # the connection is closed (or was terminated at the deadline)
    asyncpg.exceptions.InternalClientError,  # a connection whose protocol state broke mid-restart
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError, ...
    # Class 57: QueryCanceled (statement_timeout), AdminShutdown, CrashShutdown,
    # CannotConnectNow (starting up, shutting down, in recovery), IdleSessionTimeout.
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout: a topic is held too long
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.InvalidCatalogNameError,  # the database was dropped
)


@contextlib.asynccontextmanager
async def reachable() -> AsyncIterator[None]:
    """Turn "the database is gone" (`GONE`) into `StoreUnavailable` (the API's 503)."""
    try:
        yield
    except GONE as exc:
        raise StoreUnavailable(f"the database is unreachable: {exc!r}") from exc


def terminate(conn: Connection) -> None:
    """Close `conn` at once, without a word to the server (which then rolls its
    transaction back and releases its locks, when it notices)."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already released or closed
        conn.terminate()


def _terminate_all(held: list[Connection]) -> None:
    for conn in held:
        terminate(conn)


@contextlib.asynccontextmanager
async def connection(pool: Pool, timeout_s: float) -> AsyncIterator[Connection]:
    """A pooled connection for one read or unit, all of it within `timeout_s`; raises
    `StoreUnavailable` past it or when the database is gone (see the module docstring).

    At the deadline the connection is terminated, and the task cancelled if it is still
    in the body, both in the same loop turn, before the task wakes up to unwind: so its
    cleanup meets a closed connection and fails fast. The pool's release is not
    cancelled (asyncpg shields it, and would lose its outcome): a reset stuck on the
    server fails when the connection is terminated."""
    loop = asyncio.get_running_loop()
    when = loop.time() + timeout_s
    held: list[Connection] = []
    watchdog = loop.call_at(when, _terminate_all, held)
    try:
        async with reachable():
            async with pool.acquire(timeout=timeout_s) as conn:
                held.append(conn)
                async with asyncio.timeout_at(when):
                    yield conn
    finally:
        watchdog.cancel()


class Probe:
    """Readiness: `SELECT 1` within `probe_timeout_s`, on a connection of its own (a
    pool busy with writes does not make a node unready; a database that does not
    answer does), kept between probes and replaced when it fails."""

    def __init__(self, dsn: str, deadlines: Deadlines) -> None:
        self._dsn = dsn
        self._deadlines = deadlines
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Returns if the database answers; else raises `StoreUnavailable`, in time."""
        d = self._deadlines
        async with reachable(), asyncio.timeout(d.probe_timeout_s), self._lock:
            conn = self._conn
            try:
                if conn is None or conn.is_closed():
                    conn = self._conn = await asyncpg.connect(
                        self._dsn,
                        timeout=d.probe_timeout_s,
                        command_timeout=d.probe_timeout_s,
                        server_settings=d.server_settings(),
                    )
                await conn.fetchval(sql.PROBE)
            except BaseException:
                if conn is not None:
                    conn.terminate()  # cancelled mid-query: no cleanup to wait for, a new one next time
                self._conn = None
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
