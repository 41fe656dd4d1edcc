"""The demo store's bounds: every quota refuses with `QuotaExceeded` and changes nothing,
every per-session bound trims the oldest messages, and so the snapshots built from the
store stay under the realtime layer's 512 KiB snapshot limit in the worst case.

The text rule the byte bounds rest on (`models.MessageText`) is tested here too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic
import pytest
from pydantic import BaseModel, StringConstraints

from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.models import MAX_TEXT, Message, MessageText, Session, Terminal
from backend.store import (
    KEPT_MESSAGES,
    MAX_SESSION_TEXT_BYTES,
    MAX_SESSIONS,
    MAX_TERMINALS,
    MAX_TITLE_BYTES,
    MemoryStore,
    QuotaExceeded,
)
from backend.topics import build_registry
from tests.support import WsClient

T0 = datetime(2026, 1, 1, 12, 34, 56, 123456, tzinfo=UTC)  # with microseconds: the longest
SNAPSHOT_LIMIT = 512 * 1024


def session(n: int, title: str = "t") -> Session:
    return Session(id=f"s-{n:012d}", title=title, state="waiting", created_at=T0, updated_at=T0)


def message(sid: str, n: int, text: str) -> Message:
    return Message(
        id=f"m-{n:012d}", session_id=sid, role="assistant", text=text, streaming=False, created_at=T0
    )


def terminal(n: int) -> Terminal:
    return Terminal(
        id=f"t-{n}", name="pytest", session_id=None, status="running", exit_code=None, updated_at=T0
    )


def texts(store: MemoryStore, sid: str) -> list[str]:
    return [m.text for m in store.messages(sid)]


# ---------------------------------------------------------------- quotas


def test_sessions_quota_refuses_a_new_session_and_changes_nothing():
    store = MemoryStore(max_sessions=2)
    store.put_session(session(1))
    store.put_session(session(2))
    with pytest.raises(QuotaExceeded) as refused:
        store.put_session(session(3))
    assert refused.value.what == "sessions"
    assert "2 sessions" in refused.value.message and str(refused.value) == refused.value.message
    assert [s.id for s in store.sessions()] == [session(1).id, session(2).id]
    assert store.messages(session(3).id) == []
    store.put_session(session(2, title="renamed"))  # updating one at the limit is no new one
    assert store.delete_session(session(1).id)
    store.put_session(session(3))
    assert len(store.sessions()) == 2


def test_titles_quota_counts_bytes_as_json_and_renames_too():
    store = MemoryStore(max_title_bytes=10)
    store.put_session(session(1, title='ab"'))  # 4 bytes as JSON: a b \ "
    store.put_session(session(2, title="é" * 3))  # 6 bytes of UTF-8
    with pytest.raises(QuotaExceeded) as refused:
        store.put_session(session(3, title="x"))
    assert refused.value.what == "sessions" and "10 bytes" in refused.value.message
    with pytest.raises(QuotaExceeded):
        store.put_session(session(1, title="abcde"))  # a rename past the budget
    assert store.session(session(1).id) == session(1, title='ab"')
    store.put_session(session(1, title="a"))  # shrinking frees 3 bytes
    store.put_session(session(3, title="\n"))  # 2 bytes as JSON: 1 + 6 + 2 = 9
    with pytest.raises(QuotaExceeded):
        store.put_session(session(4, title="\x01"))  # 6 bytes as JSON
    assert store.delete_session(session(2).id)
    store.put_session(session(4, title="\x01"))


def test_terminals_quota_refuses_a_new_terminal_and_changes_nothing():
    store = MemoryStore(max_terminals=2)
    store.put_terminal(terminal(1))
    store.put_terminal(terminal(2))
    with pytest.raises(QuotaExceeded) as refused:
        store.put_terminal(terminal(3))
    assert refused.value.what == "terminals" and "2 terminals" in refused.value.message
    assert [t.id for t in store.terminals()] == ["t-1", "t-2"]
    store.put_terminal(terminal(2).model_copy(update={"status": "exited", "exit_code": 0}))
    assert store.delete_terminal("t-1")
    store.put_terminal(terminal(3))
    assert [t.id for t in store.terminals()] == ["t-2", "t-3"]


def test_default_quotas():
    assert (MAX_SESSIONS, MAX_TERMINALS, KEPT_MESSAGES) == (1000, 200, 200)
    assert (MAX_SESSION_TEXT_BYTES, MAX_TITLE_BYTES) == (192 * 1024, 320 * 1024)
    store = MemoryStore()
    for n in range(MAX_SESSIONS):
        store.put_session(session(n))
    with pytest.raises(QuotaExceeded):
        store.put_session(session(MAX_SESSIONS))
    for n in range(MAX_TERMINALS):
        store.put_terminal(terminal(n))
    with pytest.raises(QuotaExceeded):
        store.put_terminal(terminal(MAX_TERMINALS))


@pytest.mark.parametrize(
    "limit",
    ["max_sessions", "max_title_bytes", "max_terminals", "kept_messages", "max_session_text_bytes"],
)
def test_limits_must_be_positive(limit):
    with pytest.raises(ValueError, match="at least 1"):
        MemoryStore(**{limit: 0})


# ---------------------------------------------------------------- per-session bounds


def test_messages_past_the_count_drop_the_oldest():
    store = MemoryStore(kept_messages=3)
    sid = session(1).id
    store.put_session(session(1))
    for n in range(5):
        store.put_message(message(sid, n, f"m{n}"))
    assert texts(store, sid) == ["m2", "m3", "m4"]
    store.put_message(message(sid, 3, "m3 edited"))  # replaced in place, nothing dropped
    assert texts(store, sid) == ["m2", "m3 edited", "m4"]
    assert store.message(sid, message(sid, 1, "").id) is None


def test_text_past_the_byte_budget_drops_the_oldest_counting_utf8():
    store = MemoryStore(max_session_text_bytes=10)
    sid = session(1).id
    store.put_session(session(1))
    store.put_message(message(sid, 1, "aaaa"))
    store.put_message(message(sid, 2, "éé"))  # 4 bytes: 8 in all
    store.put_message(message(sid, 3, "cc"))  # 10: at the budget, kept
    assert texts(store, sid) == ["aaaa", "éé", "cc"]
    store.put_message(message(sid, 4, "d"))  # 11: the oldest goes
    assert texts(store, sid) == ["éé", "cc", "d"]
    store.put_message(message(sid, 3, "c" * 7))  # a message that grows (streaming): 12
    assert texts(store, sid) == ["c" * 7, "d"]


def test_the_newest_message_is_kept_alone_when_it_is_over_the_budget():
    store = MemoryStore(max_session_text_bytes=10)
    sid = session(1).id
    store.put_session(session(1))
    store.put_message(message(sid, 1, "a"))
    store.put_message(message(sid, 2, "b" * 11))
    assert texts(store, sid) == ["b" * 11]
    store.put_message(message(sid, 3, "c"))
    assert texts(store, sid) == ["c"]


def test_messages_of_an_unknown_session_are_not_kept():
    store = MemoryStore()
    store.put_message(message("s-gone", 1, "x"))
    assert store.messages("s-gone") == [] and store.message("s-gone", message("s-gone", 1, "").id) is None
    store.put_session(session(1))
    store.put_message(message(session(1).id, 1, "x"))
    assert store.delete_session(session(1).id)
    assert store.messages(session(1).id) == []
    assert not store.delete_session(session(1).id)


# ---------------------------------------------------------------- the snapshots' worst cases


async def snapshot_size(store: MemoryStore, topic: str) -> int:
    resolved = build_registry(store).resolve(topic)
    assert resolved is not None
    bound, params = resolved
    return len(await bound.snapshot_json(params, timeout=10))


async def test_worst_activity_snapshot_is_under_512_kib():
    # The most messages (200), the most text (192 KiB), all of it escaped to two bytes.
    store = MemoryStore()
    sid = session(1).id
    store.put_session(session(1))
    per_message = MAX_SESSION_TEXT_BYTES // KEPT_MESSAGES
    for n in range(2 * KEPT_MESSAGES):  # twice over: the store trims to its bounds
        store.put_message(message(sid, n, '"' * per_message))
    assert len(store.messages(sid)) == KEPT_MESSAGES
    size = await snapshot_size(store, f"sessions.activity:{sid}")
    assert 2 * MAX_SESSION_TEXT_BYTES * 0.99 < size < SNAPSHOT_LIMIT - 1024


async def test_one_message_over_the_text_budget_is_still_under_512_kib():
    store = MemoryStore()
    sid = session(1).id
    store.put_session(session(1))
    store.put_message(message(sid, 0, '"' * 1000))
    store.put_message(message(sid, 1, "🎉" * MAX_TEXT))  # 256 KiB of UTF-8, the largest message
    assert texts(store, sid) == ["🎉" * MAX_TEXT]
    assert await snapshot_size(store, f"sessions.activity:{sid}") < SNAPSHOT_LIMIT - 1024


async def test_worst_sessions_snapshot_is_under_512_kib():
    # The most sessions (1,000), their titles as long as the title budget allows, escaped.
    store = MemoryStore()
    per_title = MAX_TITLE_BYTES // MAX_SESSIONS // 2
    for n in range(MAX_SESSIONS):
        store.put_session(session(n, title='"' * per_title))
    size = await snapshot_size(store, "sessions.state")
    assert 0.99 * MAX_TITLE_BYTES < size < SNAPSHOT_LIMIT - 1024


def test_long_four_byte_titles_meet_the_title_budget_before_the_session_quota():
    store = MemoryStore()
    with pytest.raises(QuotaExceeded) as refused:
        for n in range(MAX_SESSIONS):
            store.put_session(session(n, title="🎉" * 200))  # 800 bytes each
    assert refused.value.what == "sessions" and "titles" in refused.value.message
    assert len(store.sessions()) == MAX_TITLE_BYTES // 800


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
    assert [s.id for s in store.sessions()] == [kept.id] and len(store.terminals()) == 1
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
        service.stream_text(sid, reply.id, "\x1b[0m")
    assert service.stream_text(sid, reply.id, "x" * MAX_TEXT)
    assert not service.stream_text(sid, reply.id, "y")  # full: nothing appended
    assert [m.text for m in service.store.messages(sid)] == ["x" * MAX_TEXT]


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
    assert {t.id for t in service.store.terminals()} == {t.id for t in stays if t is not None}
    removed = [f["payload"]["id"] for f in await ws.barrier() if f["payload"]["op"] == "remove"]
    assert removed == [t.id for t in gone if t is not None]
