"""The demo store's bounds: the default limits, the snapshots built from a store at
its limits stay under the realtime layer's 512 KiB snapshot limit in the worst case, and
the service lets the store's refusals through. (How every store keeps its limits is
tests/test_store_contract.py's.)

The text rule the byte bounds rest on (`models.MessageText`) is tested here too."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
import pytest
from pydantic import BaseModel, StringConstraints

from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.memory_store import MemoryStore
from backend.models import MAX_TEXT, MessageText
from backend.postgres_store import PostgresStore
from backend.store import (
    KEPT_MESSAGES,
    MAX_SESSION_TEXT_BYTES,
    MAX_SESSIONS,
    MAX_TERMINALS,
    MAX_TITLE_BYTES,
    QuotaExceeded,
    Store,
)
from backend.topics import build_registry
from tests.store_support import (
    message,
    opened,
    put_message,
    put_session,
    put_terminal,
    session,
    terminal,
    texts,
)
from tests.support import WsClient

SNAPSHOT_LIMIT = 512 * 1024


# ---------------------------------------------------------------- the defaults
# (every store's behaviour at its limits is tests/test_store_contract.py's)


async def test_default_quotas():
    assert (MAX_SESSIONS, MAX_TERMINALS, KEPT_MESSAGES) == (1000, 200, 200)
    assert (MAX_SESSION_TEXT_BYTES, MAX_TITLE_BYTES) == (192 * 1024, 320 * 1024)
    async with opened(MemoryStore()) as o:
        store = o.store
        for n in range(MAX_SESSIONS):
            await put_session(store, session(n))
        with pytest.raises(QuotaExceeded):
            await put_session(store, session(MAX_SESSIONS))
        for n in range(MAX_TERMINALS):
            await put_terminal(store, terminal(n))
        with pytest.raises(QuotaExceeded):
            await put_terminal(store, terminal(MAX_TERMINALS))


@pytest.mark.parametrize("kind", [MemoryStore, PostgresStore])
@pytest.mark.parametrize(
    "limit",
    ["max_sessions", "max_title_bytes", "max_terminals", "kept_messages", "max_session_text_bytes"],
)
def test_limits_must_be_positive(kind, limit):
    args = () if kind is MemoryStore else ("postgresql://nowhere/db",)
    with pytest.raises(ValueError, match="at least 1"):
        kind(*args, **{limit: 0})


# ---------------------------------------------------------------- the snapshots' worst cases


async def snapshot_size(store: Store, topic: str) -> int:
    resolved = build_registry(store).resolve(topic)
    assert resolved is not None
    bound, params = resolved
    return len(await bound.snapshot_json(params, timeout=10))


async def test_worst_activity_snapshot_is_under_512_kib():
    # The most messages (200), the most text (192 KiB), all of it escaped to two bytes.
    async with opened(MemoryStore()) as o:
        store = o.store
        sid = session(1).id
        await put_session(store, session(1))
        per_message = MAX_SESSION_TEXT_BYTES // KEPT_MESSAGES
        for n in range(2 * KEPT_MESSAGES):  # twice over: the store trims to its bounds
            await put_message(store, message(sid, n, '"' * per_message))
        assert len(await store.messages(sid)) == KEPT_MESSAGES
        size = await snapshot_size(store, f"sessions.activity:{sid}")
        assert 2 * MAX_SESSION_TEXT_BYTES * 0.99 < size < SNAPSHOT_LIMIT - 1024


async def test_one_message_over_the_text_budget_is_still_under_512_kib():
    async with opened(MemoryStore()) as o:
        store = o.store
        sid = session(1).id
        await put_session(store, session(1))
        await put_message(store, message(sid, 0, '"' * 1000))
        await put_message(store, message(sid, 1, "🎉" * MAX_TEXT))  # 256 KiB of UTF-8, the largest message
        assert await texts(store, sid) == ["🎉" * MAX_TEXT]
        assert await snapshot_size(store, f"sessions.activity:{sid}") < SNAPSHOT_LIMIT - 1024


async def test_worst_sessions_snapshot_is_under_512_kib():
    # The most sessions (1,000), their titles as long as the title budget allows, escaped.
    async with opened(MemoryStore()) as o:
        per_title = MAX_TITLE_BYTES // MAX_SESSIONS // 2
        for n in range(MAX_SESSIONS):
            await put_session(o.store, session(n, title='"' * per_title))
        size = await snapshot_size(o.store, "sessions.state")
        assert 0.99 * MAX_TITLE_BYTES < size < SNAPSHOT_LIMIT - 1024


async def test_long_four_byte_titles_meet_the_title_budget_before_the_session_quota():
    async with opened(MemoryStore()) as o:
        with pytest.raises(QuotaExceeded) as refused:
            for n in range(MAX_SESSIONS):
                await put_session(o.store, session(n, title="🎉" * 200))  # 800 bytes each
        assert refused.value.what == "sessions" and "titles" in refused.value.message
        assert len(await o.store.sessions()) == MAX_TITLE_BYTES // 800


# ---------------------------------------------------------------- through the service


async def test_service_lets_quota_exceeded_propagate_and_publishes_nothing(aiohttp_client: Any):
    store = MemoryStore(max_sessions=1, max_terminals=1)
    client = await aiohttp_client(build_app(Config(simulate=False), store=store))
    service = client.app[SERVICE_KEY]
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state", "terminals.state")
    await ws.barrier()
    kept = await service.create_session("kept")
    await service.put_terminal("pytest", "running")
    with pytest.raises(QuotaExceeded) as sessions_full:
        await service.create_session("refused")
    with pytest.raises(QuotaExceeded) as terminals_full:
        await service.put_terminal("make", "running")
    assert (sessions_full.value.what, terminals_full.value.what) == ("sessions", "terminals")
    frames = await ws.barrier()
    assert [(f["topic"], f["payload"]["op"]) for f in frames] == [
        ("sessions.state", "upsert"),
        ("terminals.state", "upsert"),
    ]
    assert [s.id for s in await store.sessions()] == [kept.id] and len(await store.terminals()) == 1
    assert await service.delete_session(kept.id)
    assert (await service.create_session("after")).title == "after"  # room again


# ---------------------------------------------------------------- message text


MESSAGE_TEXT = pydantic.TypeAdapter(MessageText)


@pytest.mark.parametrize(
    "text", ["", "plain", "tab\there\r\nand newline", "é🎉 ünïcödé", "\x7f\x85", "x" * MAX_TEXT]
)
def test_message_text_accepts(text):
    assert MESSAGE_TEXT.validate_python(text) == text


@pytest.mark.parametrize(
    "text", ["\x00", "colour \x1b[31m", "bell\x07", "\x0b\x0c", "\x1f", "\ud800", "x" * (MAX_TEXT + 1)]
)
def test_message_text_refuses(text):
    with pytest.raises(pydantic.ValidationError):
        MESSAGE_TEXT.validate_python(text)
    with pytest.raises(pydantic.ValidationError):
        message("s-1", 1, text)


def test_message_text_in_an_api_body_with_min_length():
    # The composition backend/api.py's PostMessage uses: MessageText, and not empty.
    class Body(BaseModel):
        text: Annotated[MessageText, StringConstraints(min_length=1)]

    assert Body(text="x").text == "x"
    for bad in ["", "a\x01", "x" * (MAX_TEXT + 1)]:
        with pytest.raises(pydantic.ValidationError):
            Body(text=bad)


async def test_service_refuses_control_characters_in_messages_and_streams(aiohttp_client: Any):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    service = client.app[SERVICE_KEY]
    sid = (await service.create_session("s")).id
    with pytest.raises(pydantic.ValidationError):
        await service.add_message(sid, "user", "a\x01b")
    reply = await service.add_message(sid, "assistant", "", streaming=True)
    assert reply is not None
    with pytest.raises(ValueError, match="U\\+001B"):
        await service.stream_text(sid, reply.id, "\x1b[0m")
    assert await service.stream_text(sid, reply.id, "x" * MAX_TEXT)
    assert not await service.stream_text(sid, reply.id, "y")  # full: nothing appended
    assert [m.text for m in await service.store.messages(sid)] == ["x" * MAX_TEXT]


async def test_deleting_a_session_removes_its_terminals_and_publishes_it(aiohttp_client: Any):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    service = client.app[SERVICE_KEY]
    doomed, kept = (await service.create_session("doomed")).id, (await service.create_session("kept")).id
    ws = await WsClient.connect(client)
    await ws.subscribe("terminals.state")
    await ws.barrier()
    gone = [await service.put_terminal(name, "running", session_id=doomed) for name in ("a", "b")]
    stays = [
        await service.put_terminal("c", "running", session_id=kept),
        await service.put_terminal("d", "exited"),
    ]
    assert await service.delete_session(doomed)
    assert await service.put_terminal("late", "starting", session_id=doomed) is None  # would be orphaned
    assert {t.id for t in await service.store.terminals()} == {t.id for t in stays if t is not None}
    removed = [f["payload"]["id"] for f in await ws.barrier() if f["payload"]["op"] == "remove"]
    assert removed == [t.id for t in gone if t is not None]
