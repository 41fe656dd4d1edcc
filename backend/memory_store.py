"""The in-memory store: the default, for one process (`store.py` has the contract)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp_realtime import Hub, TopicDef, TopicRef

from .models import MAX_TEXT, Message, Session, Terminal
from .outcomes import KeyTaken, Remembered
from .store import (
    KEPT_MESSAGES,
    MAX_IDEMPOTENCY_BYTES,
    MAX_IDEMPOTENCY_KEYS,
    MAX_SESSION_TEXT_BYTES,
    MAX_SESSIONS,
    MAX_TERMINALS,
    MAX_TITLE_BYTES,
    Events,
    QuotaExceeded,
    Topic,
    Tx,
    check_limits,
    json_size,
    utf8_size,
)

E = TypeVar("E")


class _Log:
    """One session's kept messages, oldest first, each with its text's UTF-8 size, and
    the offsets where messages' unpublished text starts."""

    __slots__ = ("entries", "text_bytes", "unpublished")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[Message, int]] = OrderedDict()
        self.text_bytes = 0
        self.unpublished: dict[str, int] = {}

    def copy(self) -> _Log:
        log = _Log()
        log.entries, log.text_bytes = self.entries.copy(), self.text_bytes
        log.unpublished = dict(self.unpublished)
        return log


Undo = Callable[[], None]


def _size(record: Remembered) -> int:
    """The UTF-8 bytes of a kept outcome's strings (what `max_idempotency_bytes` counts)."""
    r = record
    return sum(map(utf8_size, (r.scope, r.key, r.operation, r.fingerprint, r.result)))


class _Remembered:
    """Idempotent writes' outcomes, oldest first (with one window for all, also the
    first to expire), bounded in count and bytes: past a bound the oldest go first."""

    __slots__ = ("bytes", "records")

    def __init__(self) -> None:
        self.records: OrderedDict[tuple[str, str], Remembered] = OrderedDict()
        self.bytes = 0

    def recall(self, scope: str, key: str, now: datetime) -> Remembered | None:
        record = self.records.get((scope, key))
        return record if record is not None and record.expires_at > now else None

    def purge(self, now: datetime) -> None:
        """Drop the expired ones at the front (forgotten for good: no undo needed)."""
        while self.records:
            record = next(iter(self.records.values()))
            if record.expires_at > now:
                return
            self._drop(record)

    def add(self, record: Remembered, max_count: int, max_bytes: int) -> Undo:
        expired = self.records.get((record.scope, record.key))  # not yet purged
        if expired is not None:
            self._drop(expired)  # forgotten for good, as `purge` does
        self.records[(record.scope, record.key)] = record
        self.bytes += _size(record)
        evicted = []
        while len(self.records) > 1 and (len(self.records) > max_count or self.bytes > max_bytes):
            evicted.append(next(iter(self.records.values())))
            self._drop(evicted[-1])

        def undo() -> None:
            self._drop(record)
            for gone in reversed(evicted):  # back at the front, in their order
                self.records[(gone.scope, gone.key)] = gone
                self.records.move_to_end((gone.scope, gone.key), last=False)
                self.bytes += _size(gone)

        return undo

    def _drop(self, record: Remembered) -> None:
        del self.records[(record.scope, record.key)]
        self.bytes -= _size(record)


class MemoryStore:
    """One process's state in dicts. Its units hold one `asyncio.Lock` (every topic at
    once: a unit is a few dict operations and an in-process publish); a unit's changes
    are applied directly and undone if its body raises. Nothing survives the process,
    and there is no outbox: an event whose publish fails after the commit (a network
    broker that is down) is not published again."""

    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_title_bytes: int = MAX_TITLE_BYTES,
        max_terminals: int = MAX_TERMINALS,
        kept_messages: int = KEPT_MESSAGES,
        max_session_text_bytes: int = MAX_SESSION_TEXT_BYTES,
        max_idempotency_keys: int = MAX_IDEMPOTENCY_KEYS,
        max_idempotency_bytes: int = MAX_IDEMPOTENCY_BYTES,
    ) -> None:
        check_limits(
            max_sessions,
            max_title_bytes,
            max_terminals,
            kept_messages,
            max_session_text_bytes,
            max_idempotency_keys,
            max_idempotency_bytes,
        )
        self.max_sessions = max_sessions
        self.max_title_bytes = max_title_bytes
        self.max_terminals = max_terminals
        self.kept_messages = kept_messages
        self.max_session_text_bytes = max_session_text_bytes
        self.max_idempotency_keys = max_idempotency_keys
        self.max_idempotency_bytes = max_idempotency_bytes
        self._sessions: dict[str, Session] = {}
        self._title_bytes = 0
        self._messages: dict[str, _Log] = {}
        self._terminals: dict[str, Terminal] = {}
        self._remembered = _Remembered()
        self._lock = asyncio.Lock()
        self._hub: Hub | None = None

    def bind(self, hub: Hub) -> None:
        self._hub = hub

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    @property
    def healthy(self) -> bool:
        return True

    async def check(self) -> None:
        return None  # in this process: it answers whenever the process does

    @contextlib.asynccontextmanager
    async def write(self, topics: Iterable[Topic]) -> AsyncIterator[Tx]:
        if self._hub is None:
            raise RuntimeError("bind the store to a hub before writing")
        async with self._lock:
            tx = _MemoryTx(self, Events(topics))
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise
            await tx.events.publish_to(self._hub)

    # ------------------------------------------------------------ reads

    async def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    async def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def messages(self, session_id: str) -> list[Message]:
        log = self._messages.get(session_id)
        return [] if log is None else [message for message, _ in log.entries.values()]

    async def message(self, session_id: str, message_id: str) -> Message | None:
        return self._message(session_id, message_id)

    async def terminals(self) -> list[Terminal]:
        return list(self._terminals.values())

    def _message(self, session_id: str, message_id: str) -> Message | None:
        log = self._messages.get(session_id)
        entry = None if log is None else log.entries.get(message_id)
        return None if entry is None else entry[0]

    # ------------------------------------------------------------ changes (each returns its undo)

    def _put_session(self, session: Session) -> Undo:
        old = self._sessions.get(session.id)
        if old is None and len(self._sessions) >= self.max_sessions:
            raise QuotaExceeded("sessions", f"at most {self.max_sessions} sessions")
        before = self._title_bytes
        title_bytes = before + json_size(session.title) - (0 if old is None else json_size(old.title))
        if title_bytes > self.max_title_bytes:
            limit = self.max_title_bytes
            raise QuotaExceeded("sessions", f"the sessions' titles may total at most {limit} bytes as JSON")
        self._sessions[session.id] = session
        self._title_bytes = title_bytes
        if old is None:
            self._messages[session.id] = _Log()

        def undo() -> None:
            self._title_bytes = before
            if old is None:
                del self._sessions[session.id], self._messages[session.id]
            else:
                self._sessions[session.id] = old

        return undo

    def _delete_session(self, session_id: str) -> tuple[list[str] | None, Undo]:
        if session_id not in self._sessions:
            return None, lambda: None
        saved = (dict(self._sessions), self._title_bytes, self._messages[session_id], dict(self._terminals))
        session = self._sessions.pop(session_id)
        del self._messages[session_id]
        self._title_bytes -= json_size(session.title)
        gone = [t.id for t in self._terminals.values() if t.session_id == session_id]
        for terminal_id in gone:
            del self._terminals[terminal_id]

        def undo() -> None:
            self._sessions, self._title_bytes, self._messages[session_id], self._terminals = saved

        return gone, undo

    def _change_log(self, session_id: str, change: Callable[[_Log], bool]) -> tuple[bool, Undo]:
        """Apply `change` to the session's log, then trim it; undone as a whole."""
        log = self._messages.get(session_id)
        if log is None:
            return False, lambda: None
        saved = log.copy()
        if not change(log):
            return False, lambda: None
        self._trim(log)

        def undo() -> None:
            self._messages[session_id] = saved

        return True, undo

    def _put_message(self, message: Message) -> Callable[[_Log], bool]:
        def change(log: _Log) -> bool:
            size = utf8_size(message.text)
            old = log.entries.get(message.id)
            log.text_bytes += size - (0 if old is None else old[1])
            log.entries[message.id] = (message, size)
            log.unpublished.pop(message.id, None)
            return True

        return change

    def _append_text(self, message_id: str, text: str) -> Callable[[_Log], bool]:
        def change(log: _Log) -> bool:
            entry = log.entries.get(message_id)
            if entry is None or not entry[0].streaming or len(entry[0].text) + len(text) > MAX_TEXT:
                return False
            message, size = entry
            added = utf8_size(text)
            log.unpublished.setdefault(message_id, len(message.text))
            log.entries[message_id] = (message.model_copy(update={"text": message.text + text}), size + added)
            log.text_bytes += added
            return True

        return change

    def _trim(self, log: _Log) -> None:
        while len(log.entries) > self.kept_messages or (
            log.text_bytes > self.max_session_text_bytes and len(log.entries) > 1
        ):
            dropped_id, (_, dropped) = log.entries.popitem(last=False)
            log.text_bytes -= dropped
            log.unpublished.pop(dropped_id, None)

    def _put_terminal(self, terminal: Terminal) -> tuple[bool, Undo]:
        if terminal.session_id is not None and terminal.session_id not in self._sessions:
            return False, lambda: None
        old = self._terminals.get(terminal.id)
        if old is None and len(self._terminals) >= self.max_terminals:
            raise QuotaExceeded("terminals", f"at most {self.max_terminals} terminals")
        self._terminals[terminal.id] = terminal

        def undo() -> None:
            if old is None:
                del self._terminals[terminal.id]
            else:
                self._terminals[terminal.id] = old

        return True, undo

    def _remember(self, record: Remembered, now: datetime) -> Undo:
        kept = self._remembered
        kept.purge(now)
        if kept.recall(record.scope, record.key, now) is not None:
            raise KeyTaken(record.key)
        return kept.add(record, self.max_idempotency_keys, self.max_idempotency_bytes)

    def _delete_terminal(self, terminal_id: str) -> tuple[bool, Undo]:
        if terminal_id not in self._terminals:
            return False, lambda: None
        saved = dict(self._terminals)
        del self._terminals[terminal_id]

        def undo() -> None:
            self._terminals = saved

        return True, undo


class _MemoryTx:
    """A `MemoryStore` unit: changes applied at once, each recording its undo."""

    def __init__(self, store: MemoryStore, events: Events) -> None:
        self._store = store
        self.events = events
        self._undo: list[Undo] = []

    def publish(self, topic: TopicRef[Any, E] | TopicDef[Any, E], event: E) -> None:
        self.events.publish(topic, event)

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()

    async def session(self, session_id: str) -> Session | None:
        return self._store._sessions.get(session_id)

    async def put_session(self, session: Session) -> None:
        self._undo.append(self._store._put_session(session))

    async def delete_session(self, session_id: str) -> list[str] | None:
        gone, undo = self._store._delete_session(session_id)
        self._undo.append(undo)
        return gone

    async def message(self, session_id: str, message_id: str) -> Message | None:
        return self._store._message(session_id, message_id)

    async def put_message(self, message: Message) -> bool:
        return self._log(message.session_id, self._store._put_message(message))

    async def append_text(self, session_id: str, message_id: str, text: str) -> bool:
        return self._log(session_id, self._store._append_text(message_id, text))

    async def unpublished_text(self, session_id: str, message_id: str) -> tuple[int, str] | None:
        taken: list[tuple[int, str]] = []

        def take(log: _Log) -> bool:
            offset = log.unpublished.pop(message_id, None)
            if offset is None:
                return False
            text = log.entries[message_id][0].text
            if len(text) > offset:
                taken.append((offset, text[offset:]))
            return True

        self._log(session_id, take)
        return taken[0] if taken else None

    async def put_terminal(self, terminal: Terminal) -> bool:
        kept, undo = self._store._put_terminal(terminal)
        self._undo.append(undo)
        return kept

    async def delete_terminal(self, terminal_id: str) -> bool:
        deleted, undo = self._store._delete_terminal(terminal_id)
        self._undo.append(undo)
        return deleted

    async def recall(self, scope: str, key: str, now: datetime) -> Remembered | None:
        return self._store._remembered.recall(scope, key, now)

    async def remember(self, record: Remembered, now: datetime) -> None:
        self._undo.append(self._store._remember(record, now))

    def _log(self, session_id: str, change: Callable[[_Log], bool]) -> bool:
        changed, undo = self._store._change_log(session_id, change)
        self._undo.append(undo)
        return changed
