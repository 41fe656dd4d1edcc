"""Where the demo's state lives: a small store interface and its in-memory default.

The store is synchronous on purpose: `SessionService` changes state and publishes
the matching event without another change of the same entity in between, which
keeps clients' state equal to the server's. A database-backed store would keep
that by serialising writes per entity (the service's lock does it here).

Every table is bounded, so that neither memory nor a snapshot grows with uptime or
with what API clients send; the snapshots' byte bounds (see `topics.py`) rest on
these limits. Each is a `MemoryStore` argument; the defaults are below.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Literal, Protocol

from .models import Message, Session, Terminal

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

Quota = Literal["sessions", "terminals"]


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


class Store(Protocol):
    """The demo's state. Every implementation keeps the limits of this module (its own
    values of them): at most so many sessions (and bytes of titles) and terminals, refusing
    one more with `QuotaExceeded`; per session the newest messages within a count and a
    UTF-8 text budget, trimming the oldest. `messages` returns all that is kept."""

    def sessions(self) -> list[Session]: ...
    def session(self, session_id: str) -> Session | None: ...
    def put_session(self, session: Session) -> None: ...
    def delete_session(self, session_id: str) -> bool: ...
    def messages(self, session_id: str) -> list[Message]: ...
    def message(self, session_id: str, message_id: str) -> Message | None: ...
    def put_message(self, message: Message) -> None: ...
    def terminals(self) -> list[Terminal]: ...
    def put_terminal(self, terminal: Terminal) -> None: ...
    def delete_terminal(self, terminal_id: str) -> bool: ...


class _Log:
    """One session's kept messages, oldest first, each with its text's UTF-8 size."""

    __slots__ = ("entries", "text_bytes")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[Message, int]] = OrderedDict()
        self.text_bytes = 0


class MemoryStore:
    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_title_bytes: int = MAX_TITLE_BYTES,
        max_terminals: int = MAX_TERMINALS,
        kept_messages: int = KEPT_MESSAGES,
        max_session_text_bytes: int = MAX_SESSION_TEXT_BYTES,
    ) -> None:
        limits = (max_sessions, max_title_bytes, max_terminals, kept_messages, max_session_text_bytes)
        if min(limits) < 1:
            raise ValueError("every store limit must be at least 1")
        self.max_sessions = max_sessions
        self.max_title_bytes = max_title_bytes
        self.max_terminals = max_terminals
        self.kept_messages = kept_messages
        self.max_session_text_bytes = max_session_text_bytes
        self._sessions: dict[str, Session] = {}
        self._title_bytes = 0
        self._messages: dict[str, _Log] = {}
        self._terminals: dict[str, Terminal] = {}

    # ------------------------------------------------------------ sessions

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def put_session(self, session: Session) -> None:
        old = self._sessions.get(session.id)
        if old is None and len(self._sessions) >= self.max_sessions:
            raise QuotaExceeded("sessions", f"at most {self.max_sessions} sessions")
        title_bytes = (
            self._title_bytes + json_size(session.title) - (0 if old is None else json_size(old.title))
        )
        if title_bytes > self.max_title_bytes:
            limit = self.max_title_bytes
            raise QuotaExceeded("sessions", f"the sessions' titles may total at most {limit} bytes as JSON")
        self._sessions[session.id] = session
        self._title_bytes = title_bytes
        if old is None:
            self._messages[session.id] = _Log()

    def delete_session(self, session_id: str) -> bool:
        self._messages.pop(session_id, None)
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self._title_bytes -= json_size(session.title)
        return True

    # ------------------------------------------------------------ messages

    def messages(self, session_id: str) -> list[Message]:
        log = self._messages.get(session_id)
        return [] if log is None else [message for message, _ in log.entries.values()]

    def message(self, session_id: str, message_id: str) -> Message | None:
        log = self._messages.get(session_id)
        entry = None if log is None else log.entries.get(message_id)
        return None if entry is None else entry[0]

    def put_message(self, message: Message) -> None:
        """Insert or replace (in place) a message, then drop the oldest ones past the
        count or the text budget. A message of an unknown session is not kept: it was
        deleted, and keeping its messages would leak them."""
        log = self._messages.get(message.session_id)
        if log is None:
            return
        size = utf8_size(message.text)
        old = log.entries.get(message.id)
        log.text_bytes += size - (0 if old is None else old[1])
        log.entries[message.id] = (message, size)
        while len(log.entries) > self.kept_messages or (
            log.text_bytes > self.max_session_text_bytes and len(log.entries) > 1
        ):
            _, (_, dropped) = log.entries.popitem(last=False)
            log.text_bytes -= dropped

    # ------------------------------------------------------------ terminals

    def terminals(self) -> list[Terminal]:
        return list(self._terminals.values())

    def put_terminal(self, terminal: Terminal) -> None:
        if terminal.id not in self._terminals and len(self._terminals) >= self.max_terminals:
            raise QuotaExceeded("terminals", f"at most {self.max_terminals} terminals")
        self._terminals[terminal.id] = terminal

    def delete_terminal(self, terminal_id: str) -> bool:
        return self._terminals.pop(terminal_id, None) is not None
