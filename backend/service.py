"""The demo's use cases: change state in the store, then publish the matching event.

One lock orders every change with its event: without it, two changes of one
session could publish their events in the other order than they were applied
(once publishing awaits a network broker), leaving clients with stale state.
It is held for the store write and `hub.publish`, which serialises the event once
and appends it to each subscriber's outbox; the socket writes happen after, in the
hub's per-tick flush, outside the lock (a publish to 2,000 subscribers holds it for
well under a millisecond, not for 2,000 sends).

A change the store refuses (`store.QuotaExceeded`) propagates to the caller before
anything is published: the HTTP API answers it with 409.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from aiohttp_realtime import Hub

from .models import (
    MAX_TEXT,
    Message,
    MessageAppend,
    MessageEnd,
    Role,
    Session,
    SessionRemove,
    SessionState,
    SessionUpsert,
    Terminal,
    TerminalRemove,
    TerminalStatus,
    TerminalUpsert,
    TextDelta,
    no_control_characters,
)
from .store import Store
from .streaming import TextCoalescer
from .topics import ACTIVITY, SESSIONS, TERMINALS


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def now() -> datetime:
    return datetime.now(UTC)


class SessionService:
    def __init__(self, store: Store, hub: Hub, *, coalesce_window_s: float = 0.05) -> None:
        self.store = store
        self._hub = hub
        self._lock = asyncio.Lock()
        self._coalescer = TextCoalescer(self._publish_delta, coalesce_window_s)

    async def close(self) -> None:
        await self._coalescer.close()

    # ------------------------------------------------------------ sessions

    async def create_session(self, title: str) -> Session:
        """Raises `QuotaExceeded` at the store's limits."""
        t = now()
        session = Session(id=new_id("s"), title=title, state="idle", created_at=t, updated_at=t)
        async with self._lock:
            self.store.put_session(session)
            await self._hub.publish(SESSIONS, SessionUpsert(op="upsert", session=session))
        return session

    async def update_session(
        self, session_id: str, *, title: str | None = None, state: SessionState | None = None
    ) -> Session | None:
        async with self._lock:
            session = self.store.session(session_id)
            if session is None:
                return None
            changes = {k: v for k, v in (("title", title), ("state", state)) if v is not None}
            session = session.model_copy(update={**changes, "updated_at": now()})
            self.store.put_session(session)
            await self._hub.publish(SESSIONS, SessionUpsert(op="upsert", session=session))
        return session

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session, its messages, its pending text and its terminals."""
        async with self._lock:
            if not self.store.delete_session(session_id):
                return False
            self._coalescer.drop(session_id)
            await self._hub.publish(SESSIONS, SessionRemove(op="remove", id=session_id))
            for terminal in self.store.terminals():
                if terminal.session_id == session_id and self.store.delete_terminal(terminal.id):
                    await self._hub.publish(TERMINALS, TerminalRemove(op="remove", id=terminal.id))
        return True

    # ------------------------------------------------------------ messages

    async def add_message(
        self, session_id: str, role: Role, text: str, *, streaming: bool = False
    ) -> Message | None:
        """None if the session is unknown. Raises `pydantic.ValidationError` for text that
        `models.MessageText` refuses (the API validates it first)."""
        message = Message(
            id=new_id("m"),
            session_id=session_id,
            role=role,
            text=text,
            streaming=streaming,
            created_at=now(),
        )
        async with self._lock:
            if self.store.session(session_id) is None:
                return None
            self.store.put_message(message)
            await self._hub.publish(
                ACTIVITY.at(session_id=session_id), MessageAppend(op="append", message=message)
            )
        return message

    def stream_text(self, session_id: str, message_id: str, text: str) -> bool:
        """Append streamed text now; its event is coalesced. False if the message is gone,
        complete, or would grow past `MAX_TEXT` (then nothing is appended: end it).
        Raises ValueError for text that `models.MessageText` refuses."""
        no_control_characters(text)
        message = self.store.message(session_id, message_id)
        if message is None or not message.streaming or len(message.text) + len(text) > MAX_TEXT:
            return False
        self.store.put_message(message.model_copy(update={"text": message.text + text}))
        self._coalescer.add((session_id, message_id), len(message.text), text)
        return True

    async def end_message(self, session_id: str, message_id: str) -> bool:
        await self._coalescer.flush((session_id, message_id))
        async with self._lock:
            message = self.store.message(session_id, message_id)
            if message is None:
                return False
            self.store.put_message(message.model_copy(update={"streaming": False}))
            await self._hub.publish(
                ACTIVITY.at(session_id=session_id),
                MessageEnd(op="end", message_id=message_id, text=message.text),
            )
        return True

    async def _publish_delta(self, session_id: str, message_id: str, offset: int, text: str) -> None:
        async with self._lock:
            if self.store.session(session_id) is not None:
                delta = TextDelta(op="delta", message_id=message_id, offset=offset, text=text)
                await self._hub.publish(ACTIVITY.at(session_id=session_id), delta)

    # ------------------------------------------------------------ terminals

    async def put_terminal(
        self,
        name: str,
        status: TerminalStatus,
        *,
        terminal_id: str | None = None,
        session_id: str | None = None,
        exit_code: int | None = None,
    ) -> Terminal | None:
        """Insert or replace a terminal. None if `session_id` names no session (deleted:
        the terminal would outlive it). Raises `QuotaExceeded` at the store's limit."""
        terminal = Terminal(
            id=terminal_id or new_id("t"),
            name=name,
            session_id=session_id,
            status=status,
            exit_code=exit_code,
            updated_at=now(),
        )
        async with self._lock:
            if session_id is not None and self.store.session(session_id) is None:
                return None
            self.store.put_terminal(terminal)
            await self._hub.publish(TERMINALS, TerminalUpsert(op="upsert", terminal=terminal))
        return terminal

    async def remove_terminal(self, terminal_id: str) -> bool:
        async with self._lock:
            if not self.store.delete_terminal(terminal_id):
                return False
            await self._hub.publish(TERMINALS, TerminalRemove(op="remove", id=terminal_id))
        return True
