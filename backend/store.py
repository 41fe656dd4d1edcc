"""Where the demo's state lives: the store contract and its unit of work. The stores:
`memory_store.MemoryStore` (the default, one process) and `postgres_store.PostgresStore`
(shared by several processes).

Several writers, one order
--------------------------
Clients rebuild a topic's state from a snapshot plus events, so the topic's events
must be numbered in the order their changes were applied. Two systems are involved:
the store applies a change when it commits, the broker numbers its event when it is
published (`Hub.publish`; across nodes a RedisBroker numbers them in Redis). If writer
1 commits A, writer 2 commits B, and the broker numbers B before A (writer 1 was slower
to publish), every client ends with A while the store holds B: the dual-write trap.

So every write is a *unit of work on a set of topics*::

    async with store.write([SESSIONS]) as tx:
        session = await tx.session(session_id)
        await tx.put_session(renamed)
        tx.publish(SESSIONS, SessionUpsert(op="upsert", session=renamed))

1. takes each topic's lock, in one global order (two units never wait for each other
   in a cycle);
2. opens a transaction, in which the body reads and changes state through `tx` and
   queues events with `tx.publish` (validated there: a wrong payload fails the unit);

and when the block is left:

3. commits;
4. publishes the queued events in order through the hub, which numbers them;
5. releases the locks.

A topic's writers are serialised from before the state change until after its event
is numbered, so the broker numbers each topic's events in commit order, on one node
or many. An exception in the body commits nothing and publishes nothing.

What each store's lock and transaction are: `MemoryStore` has one process, so
one `asyncio.Lock` for every topic and direct changes that are undone on an exception.
`PostgresStore` takes PostgreSQL advisory locks (one per topic, visible to every node),
and keeps the events in an outbox table inside the transaction, so that those of a
node that died between its commit and its publish are still published, in order.

A unit names every topic it publishes on (`tx.publish` refuses others), and the
topics that order what it changes: sessions change under `sessions.state` (their
quotas are counted under it), a session's messages under `sessions.activity:<id>`,
terminals under `terminals.state`; deleting a session takes all three, so that nothing
is added to a session while it is being deleted.

Reads (snapshots, HTTP GETs) are plain reads outside units. A snapshot may reflect a
change whose event is delivered after it, as `aiohttp_realtime.SnapshotProvider`
allows: every event payload is idempotent.

Bounds: every table is bounded, so that neither memory nor a snapshot grows with
uptime or with what API clients send; the snapshots' byte bounds (see `topics.py`) rest
on these limits. Each is a store argument; the defaults are below. (PostgreSQL's table
of idempotency outcomes is bounded by their window, 24 h, times the write rate, on disk.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from aiohttp_realtime import Fence, Hub, TopicDef, TopicRef

from .models import Message, Session, Terminal
from .outcomes import Remembered

#: Sessions per store; one more is refused (`QuotaExceeded`).
MAX_SESSIONS = 1000
#: Bytes of all sessions' titles together, as JSON (escaped): with the count, bounds
#: `sessions.state` (titles are not checked for control characters, unlike messages).
MAX_TITLE_BYTES = 320 * 1024
#: Terminals per store; one more is refused (`QuotaExceeded`).
MAX_TERMINALS = 200
#: Messages kept per session, the newest; a session's snapshot carries all of them.
KEPT_MESSAGES = 200
#: UTF-8 bytes of message text kept per session. Older messages are dropped first;
#: the newest is always kept (one message is at most `models.MAX_TEXT` characters).
MAX_SESSION_TEXT_BYTES = 192 * 1024
#: Outcomes of idempotent writes (`idempotency.py`) the in-memory store keeps, and the
#: bytes of them (their results, keys and fingerprints); past either, the oldest are
#: forgotten before their window ends (a resend of one runs again). PostgreSQL keeps
#: every one for its window, deleting expired ones as new ones are kept.
MAX_IDEMPOTENCY_KEYS = 10_000
MAX_IDEMPOTENCY_BYTES = 32 * 1024 * 1024

Quota = Literal["sessions", "terminals"]
#: A topic a unit holds: a typed handle (`ACTIVITY.at(session_id=sid)`, `SESSIONS`).
Topic = TopicRef[Any, Any] | TopicDef[Any, Any]
E = TypeVar("E")


class StoreUnavailable(Exception):
    """The store's database cannot be reached now. Raised by a read, or by a unit
    before its commit (nothing changed) or after it (the change is saved and its
    events are in the outbox, published once the broker and the database answer)."""


class QuotaExceeded(Exception):
    """A change would take the store past one of its limits; nothing was changed.

    `what` names the table ("sessions" or "terminals"), `message` says which limit."""

    def __init__(self, what: Quota, message: str) -> None:
        super().__init__(message)
        self.what: Quota = what
        self.message = message


def utf8_size(text: str) -> int:
    # isascii() is O(1) in CPython, so streaming ASCII text does not re-encode it per token.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def json_size(text: str) -> int:
    """Bytes of `text` as a JSON string's contents (escaped, UTF-8), as snapshots carry it."""
    return utf8_size(json.dumps(text, ensure_ascii=False)) - 2


def check_limits(*limits: int) -> None:
    if min(limits) < 1:
        raise ValueError("every store limit must be at least 1")


class Events:
    """A unit's queued events, on the topics it holds, in the order they were queued.
    Each is validated when queued, with its JSON kept (the outbox stores it)."""

    def __init__(self, topics: Iterable[Topic]) -> None:
        refs = [t.ref() if isinstance(t, TopicDef) else t for t in topics]
        #: The topics' names, sorted: the order their locks are taken in.
        self.topics: list[str] = sorted({ref.name for ref in refs})
        #: (topic, event, its JSON as `encode_event` made it: published as it is).
        self.queued: list[tuple[TopicRef[Any, Any], Any, bytes]] = []

    def publish(self, topic: TopicRef[Any, E] | TopicDef[Any, E], event: E) -> None:
        ref = topic.ref() if isinstance(topic, TopicDef) else topic
        if ref.name not in self.topics:
            raise ValueError(f"this unit does not hold {ref.name!r}: publish only on the topics it locked")
        self.queued.append((ref, event, ref.topic.encode_event(event)))

    async def publish_to(self, hub: Hub, fences: Sequence[Fence] | None = None) -> None:
        """Publish the queued events in order; with `fences` (one per event: the outbox
        row ids, which grow with each topic's commit order), each is fenced, so that a
        publisher that reaches the broker late is refused rather than delivered after a
        newer change (`Broker.publish`)."""
        for i, (ref, _event, data) in enumerate(self.queued):  # validated and encoded once, when queued
            await hub.publish_encoded(ref, data, fence=None if fences is None else fences[i])


class Tx(Protocol):
    """A unit of work's view of the store (see the module docstring). Every change is
    applied when the unit commits, or not at all."""

    def publish(self, topic: TopicRef[Any, E] | TopicDef[Any, E], event: E) -> None:
        """Queue an event: published after the commit, in queuing order. Raises
        `pydantic.ValidationError` for a payload the topic refuses, ValueError for a
        topic the unit does not hold."""

    async def session(self, session_id: str) -> Session | None: ...

    async def put_session(self, session: Session) -> None:
        """Insert or replace. Raises `QuotaExceeded` (nothing changed) at the limits."""

    async def delete_session(self, session_id: str) -> list[str] | None:
        """Delete the session with its messages and terminals: the terminals' ids, oldest
        first; None if there is no such session."""

    async def message(self, session_id: str, message_id: str) -> Message | None: ...

    async def put_message(self, message: Message) -> bool:
        """Insert or replace (in place) a message, then drop the session's oldest ones
        past the count or the text budget. Its whole text counts as published (its event
        carries it). False, nothing kept, if the session is unknown (deleted)."""

    async def append_text(self, session_id: str, message_id: str, text: str) -> bool:
        """Append streamed text to a streaming message (then trim as `put_message`); the
        text is unpublished until `unpublished_text` takes it. False, nothing appended,
        if the message is gone, complete, or would pass `models.MAX_TEXT` characters."""

    async def unpublished_text(self, session_id: str, message_id: str) -> tuple[int, str] | None:
        """The message's text not yet published, from its offset, and count it as
        published now; None if there is none. Whichever node appended it, the text
        comes out contiguous and in order."""

    async def put_terminal(self, terminal: Terminal) -> bool:
        """Insert or replace. False, nothing kept, if `terminal.session_id` names no
        session. Raises `QuotaExceeded` (nothing changed) at the limit."""

    async def delete_terminal(self, terminal_id: str) -> bool: ...

    async def recall(self, scope: str, key: str, now: datetime) -> Remembered | None:
        """The outcome kept under (scope, key), unless it expired by `now`."""

    async def remember(self, record: Remembered, now: datetime) -> None:
        """Keep an idempotent write's outcome with the unit's changes (committed with
        them, or not at all), replacing one that expired by `now`. Raises
        `idempotency.KeyTaken` if a live outcome holds the key: one a concurrent unit
        committed (PostgreSQL); running the unit again finds it."""


class Store(Protocol):
    """The demo's state: reads, and units of work (`write`) for every change.

    Every implementation keeps the limits of this module (its own values of them): at
    most so many sessions (and bytes of titles) and terminals, refusing one more with
    `QuotaExceeded`; per session the newest messages within a count and a UTF-8 text
    budget, trimming the oldest. Lists are in insertion order (a replaced item keeps
    its place); `messages` returns all that is kept ([] for an unknown session)."""

    def bind(self, hub: Hub) -> None:
        """The hub units publish through; before `start`."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """Whether the store's background work last reached it (one input of readiness)."""

    async def check(self) -> None:
        """A bounded probe for readiness: returns if the store answers now, else raises
        `StoreUnavailable` (within the store's probe timeout, never hangs)."""

    def write(self, topics: Iterable[Topic]) -> AbstractAsyncContextManager[Tx]:
        """A unit of work holding `topics` (see the module docstring)."""

    async def sessions(self) -> list[Session]: ...
    async def session(self, session_id: str) -> Session | None: ...
    async def messages(self, session_id: str) -> list[Message]: ...
    async def message(self, session_id: str, message_id: str) -> Message | None: ...
    async def terminals(self) -> list[Terminal]: ...
