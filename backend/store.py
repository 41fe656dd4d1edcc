"""Where the demo's state lives: a small store interface and its in-memory default.

The store is synchronous on purpose: `SessionService` changes state and publishes
the matching event without another change of the same entity in between, which
keeps clients' state equal to the server's. A database-backed store would keep
that by serialising writes per entity (the service's lock does it here).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Protocol

from .models import Message, Session, Terminal

#: Messages kept per session; snapshots carry the newest `SNAPSHOT_MESSAGES` of them.
KEPT_MESSAGES = 500
SNAPSHOT_MESSAGES = 200


class Store(Protocol):
    def sessions(self) -> list[Session]: ...
    def session(self, session_id: str) -> Session | None: ...
    def put_session(self, session: Session) -> None: ...
    def delete_session(self, session_id: str) -> bool: ...
    def messages(self, session_id: str, limit: int) -> list[Message]: ...
    def message(self, session_id: str, message_id: str) -> Message | None: ...
    def put_message(self, message: Message) -> None: ...
    def terminals(self) -> list[Terminal]: ...
    def put_terminal(self, terminal: Terminal) -> None: ...
    def delete_terminal(self, terminal_id: str) -> bool: ...


class MemoryStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._messages: dict[str, OrderedDict[str, Message]] = {}
        self._terminals: dict[str, Terminal] = {}

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def put_session(self, session: Session) -> None:
        self._sessions[session.id] = session
        self._messages.setdefault(session.id, OrderedDict())

    def delete_session(self, session_id: str) -> bool:
        self._messages.pop(session_id, None)
        return self._sessions.pop(session_id, None) is not None

    def messages(self, session_id: str, limit: int) -> list[Message]:
        kept = self._messages.get(session_id, OrderedDict())
        return list(deque(kept.values(), maxlen=limit))

    def message(self, session_id: str, message_id: str) -> Message | None:
        return self._messages.get(session_id, OrderedDict()).get(message_id)

    def put_message(self, message: Message) -> None:
        kept = self._messages.setdefault(message.session_id, OrderedDict())
        kept[message.id] = message
        while len(kept) > KEPT_MESSAGES:
            kept.popitem(last=False)

    def terminals(self) -> list[Terminal]:
        return list(self._terminals.values())

    def put_terminal(self, terminal: Terminal) -> None:
        self._terminals[terminal.id] = terminal

    def delete_terminal(self, terminal_id: str) -> bool:
        return self._terminals.pop(terminal_id, None) is not None
