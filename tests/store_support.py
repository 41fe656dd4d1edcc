"""Stores for the tests: each kind opened bound to a hub whose broker records what is
published, and the demo's models with fixed values."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp_realtime import Fence, Hub, MemoryBroker
from backend.memory_store import MemoryStore
from backend.models import Message, Session, Terminal
from backend.postgres_store import PostgresStore
from backend.store import Store
from backend.topics import ACTIVITY, SESSIONS, TERMINALS, build_registry

T0 = datetime(2026, 1, 1, 12, 34, 56, 123456, tzinfo=UTC)  # with microseconds: the longest


def session(n: int, title: str = "t") -> Session:
    return Session(id=f"s-{n:012d}", title=title, state="waiting", created_at=T0, updated_at=T0)


def message(sid: str, n: int, text: str, *, streaming: bool = False) -> Message:
    return Message(
        id=f"m-{n:012d}", session_id=sid, role="assistant", text=text, streaming=streaming, created_at=T0
    )


def terminal(n: int, session_id: str | None = None) -> Terminal:
    return Terminal(
        id=f"t-{n}", name="pytest", session_id=session_id, status="running", exit_code=None, updated_at=T0
    )


class RecordingBroker(MemoryBroker):
    """A MemoryBroker that numbers every topic (watched or not) and records each
    publish as (topic, payload); `before_publish` runs first (to look at the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, Any]] = []
        self.before_publish: Callable[[str, Any], Awaitable[None]] | None = None

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        if self.before_publish is not None:
            await self.before_publish(topic, json.loads(payload))
        self.published.append((topic, json.loads(payload)))
        await self.watch(topic)
        return await super().publish(topic, payload)


@dataclass
class Opened:
    store: Store
    broker: RecordingBroker
    hub: Hub = field(repr=False)


@contextlib.asynccontextmanager
async def opened(store: Store) -> AsyncIterator[Opened]:
    """`store` started, bound to a started hub with a RecordingBroker; closed on exit."""
    broker = RecordingBroker()
    hub = Hub(build_registry(store), broker=broker)
    await hub.start()
    store.bind(hub)
    await store.start()
    try:
        yield Opened(store, broker, hub)
    finally:
        await store.close()
        await hub.stop()


def make_store(kind: str, pg_url: str | None, **limits: Any) -> Store:
    if kind == "memory":
        return MemoryStore(**limits)
    assert pg_url is not None
    return PostgresStore(pg_url, **limits)


# ---------------------------------------------------------------- one change per unit


async def put_session(store: Store, s: Session) -> None:
    async with store.write([SESSIONS]) as tx:
        await tx.put_session(s)


async def delete_session(store: Store, session_id: str) -> list[str] | None:
    async with store.write([SESSIONS, TERMINALS, ACTIVITY.at(session_id=session_id)]) as tx:
        return await tx.delete_session(session_id)


async def put_message(store: Store, m: Message) -> bool:
    async with store.write([ACTIVITY.at(session_id=m.session_id)]) as tx:
        return await tx.put_message(m)


async def append_text(store: Store, sid: str, mid: str, text: str) -> bool:
    async with store.write([ACTIVITY.at(session_id=sid)]) as tx:
        return await tx.append_text(sid, mid, text)


async def put_terminal(store: Store, t: Terminal) -> bool:
    async with store.write([TERMINALS]) as tx:
        return await tx.put_terminal(t)


async def delete_terminal(store: Store, terminal_id: str) -> bool:
    async with store.write([TERMINALS]) as tx:
        return await tx.delete_terminal(terminal_id)


async def texts(store: Store, sid: str) -> list[str]:
    return [m.text for m in await store.messages(sid)]


async def dump(store: Store) -> dict[str, Any]:
    """Everything the store holds, as JSON-able values."""
    sessions = await store.sessions()
    return {
        "sessions": [s.model_dump(mode="json") for s in sessions],
        "messages": {s.id: [m.model_dump(mode="json") for m in await store.messages(s.id)] for s in sessions},
        "terminals": [t.model_dump(mode="json") for t in await store.terminals()],
    }
