"""The demo's use cases: each one is a unit of work of the store (`store.py`).

A use case names the topics it changes, reads and changes state through the unit's
`tx`, and queues the matching events; the store commits, then publishes them, holding
the topics' locks throughout. So two changes of one topic - on this node or another -
are numbered in the order they were applied, and clients' state stays equal to the
store's. There is no lock here: the store's units are the only serialisation.

A change the store refuses (`store.QuotaExceeded`) propagates to the caller before
anything is published: the HTTP API answers it with 409.

The writes a client calls (create, update, delete a session; add a message) take an
optional `Idempotency` key: under one, the use case runs at most once and every resend
gets its first outcome (`idempotency.Once`, shared by the HTTP API and the methods).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from aiohttp_realtime import TopicRef

from .idempotency import WINDOW_S, Idempotency, Once, utcnow
from .inputs import SessionRemoved
from .models import (
    ActivityEvent,
    ActivitySnapshot,
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
from .store import Store, Topic, Tx
from .streaming import TextCoalescer
from .topics import ACTIVITY, SESSIONS, TERMINALS


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def now() -> datetime:
    return datetime.now(UTC)


def activity(session_id: str) -> TopicRef[ActivitySnapshot, ActivityEvent] | None:
    """The session's activity topic; None for an id no topic (and no session) can have."""
    try:
        return ACTIVITY.at(session_id=session_id)
    except ValueError:
        return None


class SessionService:
    def __init__(
        self, store: Store, *, coalesce_window_s: float = 0.05, idempotency_window_s: float = WINDOW_S
    ) -> None:
        self.store = store
        #: Runs the idempotent writes (its `clock` is replaceable in tests).
        self.once = Once(store, window_s=idempotency_window_s, clock=utcnow)
        self._coalescer = TextCoalescer(self._publish_delta, coalesce_window_s)

    async def close(self) -> None:
        await self._coalescer.close()

    # ------------------------------------------------------------ sessions

    async def create_session(self, title: str, *, key: Idempotency | None = None) -> Session:
        """Raises `QuotaExceeded` at the store's limits, `KeyReused` for a key of another
        request."""

        async def create(tx: Tx) -> Session:
            t = now()
            session = Session(id=new_id("s"), title=title, state="idle", created_at=t, updated_at=t)
            await tx.put_session(session)
            tx.publish(SESSIONS, SessionUpsert(op="upsert", session=session))
            return session

        created = await self.once.run(key, "sessions.create", {"title": title}, [SESSIONS], Session, create)
        assert created is not None
        return created

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        state: SessionState | None = None,
        key: Idempotency | None = None,
    ) -> Session | None:
        async def update(tx: Tx) -> Session | None:
            session = await tx.session(session_id)
            if session is None:
                return None
            changes = {k: v for k, v in (("title", title), ("state", state)) if v is not None}
            session = session.model_copy(update={**changes, "updated_at": now()})
            await tx.put_session(session)
            tx.publish(SESSIONS, SessionUpsert(op="upsert", session=session))
            return session

        arguments = {"id": session_id, "title": title, "state": state}
        return await self.once.run(key, "sessions.update", arguments, [SESSIONS], Session, update)

    async def delete_session(self, session_id: str, *, key: Idempotency | None = None) -> bool:
        """Delete the session, its messages, its pending text and its terminals."""
        topic = activity(session_id)
        if topic is None:
            return False

        async def delete(tx: Tx) -> SessionRemoved | None:
            terminals = await tx.delete_session(session_id)
            if terminals is None:
                return None
            tx.publish(SESSIONS, SessionRemove(op="remove", id=session_id))
            for terminal_id in terminals:
                tx.publish(TERMINALS, TerminalRemove(op="remove", id=terminal_id))
            return SessionRemoved(id=session_id)

        topics: list[Topic] = [SESSIONS, TERMINALS, topic]
        removed = await self.once.run(
            key, "sessions.remove", {"id": session_id}, topics, SessionRemoved, delete
        )
        if removed is None:
            return False
        self._coalescer.drop(session_id)
        return True

    # ------------------------------------------------------------ messages

    async def add_message(
        self,
        session_id: str,
        role: Role,
        text: str,
        *,
        streaming: bool = False,
        key: Idempotency | None = None,
    ) -> Message | None:
        """None if the session is unknown. Raises `pydantic.ValidationError` for text that
        `models.MessageText` refuses (the API validates it first)."""
        topic = activity(session_id)
        if topic is None:
            return None

        async def add(tx: Tx) -> Message | None:
            message = Message(
                id=new_id("m"),
                session_id=session_id,
                role=role,
                text=text,
                streaming=streaming,
                created_at=now(),
            )
            if not await tx.put_message(message):
                return None
            tx.publish(topic, MessageAppend(op="append", message=message))
            return message

        arguments = {"session_id": session_id, "role": role, "text": text, "streaming": streaming}
        return await self.once.run(key, "messages.send", arguments, [topic], Message, add)

    async def stream_text(self, session_id: str, message_id: str, text: str) -> bool:
        """Append streamed text now; its event is coalesced. False if the message is gone,
        complete, or would grow past `MAX_TEXT` (then nothing is appended: end it).
        Raises ValueError for text that `models.MessageText` refuses."""
        no_control_characters(text)
        topic = activity(session_id)
        if topic is None:
            return False
        async with self.store.write([topic]) as tx:
            appended = await tx.append_text(session_id, message_id, text)
        if appended:
            self._coalescer.add((session_id, message_id))
        return appended

    async def end_message(self, session_id: str, message_id: str) -> bool:
        await self._coalescer.flush((session_id, message_id))
        topic = activity(session_id)
        if topic is None:
            return False
        async with self.store.write([topic]) as tx:
            message = await tx.message(session_id, message_id)
            if message is None:
                return False
            await tx.put_message(message.model_copy(update={"streaming": False}))
            tx.publish(topic, MessageEnd(op="end", message_id=message_id, text=message.text))
        return True

    async def _publish_delta(self, session_id: str, message_id: str) -> None:
        topic = activity(session_id)
        if topic is None:
            return
        async with self.store.write([topic]) as tx:
            unpublished = await tx.unpublished_text(session_id, message_id)
            if unpublished is not None:
                offset, text = unpublished
                tx.publish(topic, TextDelta(op="delta", message_id=message_id, offset=offset, text=text))

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
        async with self.store.write([TERMINALS]) as tx:
            if not await tx.put_terminal(terminal):
                return None
            tx.publish(TERMINALS, TerminalUpsert(op="upsert", terminal=terminal))
        return terminal

    async def remove_terminal(self, terminal_id: str) -> bool:
        async with self.store.write([TERMINALS]) as tx:
            if not await tx.delete_terminal(terminal_id):
                return False
            tx.publish(TERMINALS, TerminalRemove(op="remove", id=terminal_id))
        return True
