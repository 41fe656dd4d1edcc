"""The store contract (backend/store.py), one suite for every store: reads and changes,
quotas that refuse and change nothing, per-session message bounds, a session's cascade,
and units of work that publish after their commit, in order, or not at all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pydantic
import pytest

from aiohttp_realtime import TopicDef
from backend.models import MAX_TEXT, SessionRemove, SessionUpsert, TerminalUpsert, TextDelta
from backend.store import QuotaExceeded
from backend.topics import ACTIVITY, SESSIONS, TERMINALS
from tests.pg_support import new_database, pg_admin_url  # noqa: F401 - fixtures
from tests.store_support import (
    Opened,
    append_text,
    delete_session,
    delete_terminal,
    dump,
    make_store,
    message,
    opened,
    put_message,
    put_session,
    put_terminal,
    session,
    terminal,
    texts,
)

Open = Callable[..., Awaitable[Opened]]


@pytest.fixture(params=["memory", "postgres"])
async def open_store(request: Any, pg_admin_url: str) -> AsyncIterator[Open]:  # noqa: F811
    """`await open_store(**limits)`: a started store of the parameter's kind (each call
    on a database of its own), bound to a hub that records what is published."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_(**limits: Any) -> Opened:
            url = None
            if request.param == "postgres":
                url = await stack.enter_async_context(new_database(pg_admin_url))
            return await stack.enter_async_context(opened(make_store(request.param, url, **limits)))

        yield open_


# ---------------------------------------------------------------- reads and changes


async def test_sessions_are_kept_in_insertion_order_and_replaced_in_place(open_store: Open):
    store = (await open_store()).store
    for n in (3, 1, 2):
        await put_session(store, session(n))
    await put_session(store, session(1, title="renamed"))
    assert [s.id for s in await store.sessions()] == [session(n).id for n in (3, 1, 2)]
    assert await store.session(session(1).id) == session(1, title="renamed")
    assert await store.session("s-nope") is None
    assert await delete_session(store, session(3).id) == []
    assert await delete_session(store, session(3).id) is None
    assert [s.id for s in await store.sessions()] == [session(1).id, session(2).id]


async def test_messages_and_terminals_round_trip(open_store: Open):
    store = (await open_store()).store
    sid = session(1).id
    await put_session(store, session(1))
    assert await put_message(store, message(sid, 1, "héllo 🎉"))
    assert await put_message(store, message(sid, 2, "second", streaming=True))
    assert await put_message(store, message(sid, 1, "edited"))  # in place
    assert await store.messages(sid) == [message(sid, 1, "edited"), message(sid, 2, "second", streaming=True)]
    assert await store.message(sid, message(sid, 2, "").id) == message(sid, 2, "second", streaming=True)
    assert await store.message(sid, "m-nope") is None and await store.messages("s-nope") == []
    assert await put_terminal(store, terminal(1, sid)) and await put_terminal(store, terminal(2))
    exited = terminal(1, sid).model_copy(update={"status": "exited", "exit_code": 3})
    assert await put_terminal(store, exited)
    assert await store.terminals() == [exited, terminal(2)]
    assert await delete_terminal(store, "t-2") and not await delete_terminal(store, "t-2")
    assert await store.terminals() == [exited]


async def test_a_message_or_terminal_of_an_unknown_session_is_not_kept(open_store: Open):
    store = (await open_store()).store
    assert not await put_message(store, message("s-gone", 1, "x"))
    assert await store.messages("s-gone") == []
    assert not await put_terminal(store, terminal(1, "s-gone"))
    assert await store.terminals() == []


async def test_deleting_a_session_cascades_to_its_messages_and_terminals(open_store: Open):
    store = (await open_store()).store
    doomed, kept = session(1).id, session(2).id
    for n in (1, 2):
        await put_session(store, session(n))
    for n, sid in enumerate([doomed, kept, doomed, None, doomed]):
        await put_terminal(store, terminal(n, sid))
    await put_message(store, message(doomed, 1, "gone"))
    await put_message(store, message(kept, 1, "stays"))
    assert await delete_session(store, doomed) == ["t-0", "t-2", "t-4"]  # oldest first
    assert [t.id for t in await store.terminals()] == ["t-1", "t-3"]
    assert await store.messages(doomed) == [] and await texts(store, kept) == ["stays"]
    await put_session(store, session(1))  # the same id again starts empty
    assert await store.messages(doomed) == []


# ---------------------------------------------------------------- quotas


async def test_sessions_quota_refuses_a_new_session_and_changes_nothing(open_store: Open):
    store = (await open_store(max_sessions=2)).store
    await put_session(store, session(1))
    await put_session(store, session(2))
    with pytest.raises(QuotaExceeded) as refused:
        await put_session(store, session(3))
    assert refused.value.what == "sessions"
    assert "2 sessions" in refused.value.message and str(refused.value) == refused.value.message
    assert [s.id for s in await store.sessions()] == [session(1).id, session(2).id]
    await put_session(store, session(2, title="renamed"))  # updating one at the limit is no new one
    assert await delete_session(store, session(1).id) == []
    await put_session(store, session(3))
    assert len(await store.sessions()) == 2


async def test_titles_quota_counts_bytes_as_json_and_renames_too(open_store: Open):
    store = (await open_store(max_title_bytes=10)).store
    await put_session(store, session(1, title='ab"'))  # 4 bytes as JSON: a b \ "
    await put_session(store, session(2, title="é" * 3))  # 6 bytes of UTF-8
    with pytest.raises(QuotaExceeded) as refused:
        await put_session(store, session(3, title="x"))
    assert refused.value.what == "sessions" and "10 bytes" in refused.value.message
    with pytest.raises(QuotaExceeded):
        await put_session(store, session(1, title="abcde"))  # a rename past the budget
    assert await store.session(session(1).id) == session(1, title='ab"')
    await put_session(store, session(1, title="a"))  # shrinking frees 3 bytes
    await put_session(store, session(3, title="\n"))  # 2 bytes as JSON: 1 + 6 + 2 = 9
    with pytest.raises(QuotaExceeded):
        await put_session(store, session(4, title="\x01"))  # 6 bytes as JSON
    assert await delete_session(store, session(2).id) == []
    await put_session(store, session(4, title="\x01"))
    assert (await store.session(session(4).id)) == session(4, title="\x01")


async def test_terminals_quota_refuses_a_new_terminal_and_changes_nothing(open_store: Open):
    store = (await open_store(max_terminals=2)).store
    await put_terminal(store, terminal(1))
    await put_terminal(store, terminal(2))
    with pytest.raises(QuotaExceeded) as refused:
        await put_terminal(store, terminal(3))
    assert refused.value.what == "terminals" and "2 terminals" in refused.value.message
    assert [t.id for t in await store.terminals()] == ["t-1", "t-2"]
    await put_terminal(store, terminal(2).model_copy(update={"status": "exited", "exit_code": 0}))
    assert await delete_terminal(store, "t-1")
    await put_terminal(store, terminal(3))
    assert [t.id for t in await store.terminals()] == ["t-2", "t-3"]


# ---------------------------------------------------------------- per-session bounds


async def test_messages_past_the_count_drop_the_oldest(open_store: Open):
    store = (await open_store(kept_messages=3)).store
    sid = session(1).id
    await put_session(store, session(1))
    for n in range(5):
        await put_message(store, message(sid, n, f"m{n}"))
    assert await texts(store, sid) == ["m2", "m3", "m4"]
    await put_message(store, message(sid, 3, "m3 edited"))  # replaced in place, nothing dropped
    assert await texts(store, sid) == ["m2", "m3 edited", "m4"]
    assert await store.message(sid, message(sid, 1, "").id) is None


async def test_text_past_the_byte_budget_drops_the_oldest_counting_utf8(open_store: Open):
    store = (await open_store(max_session_text_bytes=10)).store
    sid = session(1).id
    await put_session(store, session(1))
    await put_message(store, message(sid, 1, "aaaa"))
    await put_message(store, message(sid, 2, "éé"))  # 4 bytes: 8 in all
    await put_message(store, message(sid, 3, "cc"))  # 10: at the budget, kept
    assert await texts(store, sid) == ["aaaa", "éé", "cc"]
    await put_message(store, message(sid, 4, "d"))  # 11: the oldest goes
    assert await texts(store, sid) == ["éé", "cc", "d"]
    await put_message(store, message(sid, 3, "c" * 7))  # a message that grows: 12
    assert await texts(store, sid) == ["c" * 7, "d"]


async def test_the_newest_message_is_kept_alone_when_it_is_over_the_budget(open_store: Open):
    store = (await open_store(max_session_text_bytes=10)).store
    sid = session(1).id
    await put_session(store, session(1))
    await put_message(store, message(sid, 1, "a"))
    await put_message(store, message(sid, 2, "b" * 11))
    assert await texts(store, sid) == ["b" * 11]
    await put_message(store, message(sid, 3, "c"))
    assert await texts(store, sid) == ["c"]


async def test_streamed_text_is_appended_within_bounds_and_taken_once_in_order(open_store: Open):
    store = (await open_store(max_session_text_bytes=12)).store
    sid, mid = session(1).id, message(session(1).id, 2, "").id
    await put_session(store, session(1))
    await put_message(store, message(sid, 1, "old"))
    await put_message(store, message(sid, 2, "Hi", streaming=True))
    assert await append_text(store, sid, mid, " thé")
    assert await append_text(store, sid, mid, "re")  # 3 + 9 bytes: at the budget
    assert await texts(store, sid) == ["old", "Hi thére"]
    assert await append_text(store, sid, mid, "!")  # 13: the oldest goes
    assert await texts(store, sid) == ["Hi thére!"]
    async with store.write([ACTIVITY.at(session_id=sid)]) as tx:
        assert await tx.unpublished_text(sid, mid) == (2, " thére!")
        assert await tx.unpublished_text(sid, mid) is None  # taken
    assert not await append_text(store, sid, "m-nope", "x")
    assert not await append_text(store, sid, mid, "x" * (MAX_TEXT - len("Hi thére!") + 1))
    assert await append_text(store, sid, mid, "x" * (MAX_TEXT - len("Hi thére!")))  # exactly full
    async with store.write([ACTIVITY.at(session_id=sid)]) as tx:
        done = await tx.message(sid, mid)
        assert done is not None and len(done.text) == MAX_TEXT
        await tx.put_message(done.model_copy(update={"streaming": False}))  # all of it published
        assert await tx.unpublished_text(sid, mid) is None
    await put_message(store, message(sid, 3, "", streaming=True))
    assert await append_text(store, sid, message(sid, 3, "").id, "y")
    ended = message(sid, 3, "y")  # complete: nothing more is appended
    assert await put_message(store, ended) and not await append_text(store, sid, ended.id, "z")


# ---------------------------------------------------------------- units of work


async def test_a_unit_publishes_after_its_commit_in_the_order_queued(open_store: Open):
    opened_ = await open_store()
    store, broker = opened_.store, opened_.broker
    seen: list[tuple[str, list[str], list[str]]] = []

    async def look(topic: str, _payload: Any) -> None:  # from outside the unit
        seen.append((topic, [s.id for s in await store.sessions()], [t.id for t in await store.terminals()]))

    broker.before_publish = look
    a, b = session(1), session(2)
    async with store.write([SESSIONS, TERMINALS]) as tx:
        await tx.put_session(a)
        tx.publish(SESSIONS, SessionUpsert(op="upsert", session=a))
        await tx.put_terminal(terminal(1))
        tx.publish(TERMINALS, TerminalUpsert(op="upsert", terminal=terminal(1)))
        await tx.put_session(b)
        tx.publish(SESSIONS, SessionUpsert(op="upsert", session=b))
        assert broker.published == []  # nothing before the commit
    everything = ([a.id, b.id], ["t-1"])
    topics = ["sessions.state", "terminals.state", "sessions.state"]
    assert seen == [(topic, *everything) for topic in topics]
    assert [(topic, p.get("session", p.get("terminal"))["id"]) for topic, p in broker.published] == [
        ("sessions.state", a.id),
        ("terminals.state", "t-1"),
        ("sessions.state", b.id),
    ]


async def test_a_failing_unit_commits_nothing_and_publishes_nothing(open_store: Open):
    opened_ = await open_store()
    store, broker = opened_.store, opened_.broker
    sid = session(1).id
    await put_session(store, session(1))
    await put_session(store, session(2))
    await put_message(store, message(sid, 1, "kept"))
    await put_message(store, message(sid, 2, "streaming", streaming=True))
    await append_text(store, sid, message(sid, 2, "").id, " on")
    await put_terminal(store, terminal(1, sid))
    await put_terminal(store, terminal(2))
    before, published = await dump(store), list(broker.published)
    activity = ACTIVITY.at(session_id=sid)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.write([SESSIONS, TERMINALS, activity]) as tx:
            assert await tx.unpublished_text(sid, message(sid, 2, "").id) == (9, " on")
            await tx.put_session(session(1, title="renamed"))
            await tx.put_session(session(3))
            await tx.put_message(message(sid, 3, "new"))
            await tx.append_text(sid, message(sid, 2, "").id, " and on")
            await tx.put_terminal(terminal(3))
            await tx.delete_terminal("t-2")
            assert await tx.delete_session(sid) == ["t-1"]
            tx.publish(SESSIONS, SessionRemove(op="remove", id=sid))
            raise Boom
    assert await dump(store) == before and broker.published == published
    async with store.write([activity]) as tx:  # the unpublished text was not taken either
        assert await tx.unpublished_text(sid, message(sid, 2, "").id) == (9, " on")


async def test_a_refused_change_or_event_fails_the_unit(open_store: Open):
    opened_ = await open_store(max_sessions=1)
    store, broker = opened_.store, opened_.broker
    with pytest.raises(QuotaExceeded):
        async with store.write([SESSIONS]) as tx:
            await tx.put_session(session(1))
            tx.publish(SESSIONS, SessionUpsert(op="upsert", session=session(1)))
            await tx.put_session(session(2))
    with pytest.raises(ValueError, match=r"does not hold 'terminals\.state'"):
        async with store.write([SESSIONS]) as tx:
            await tx.put_session(session(1))
            tx.publish(TERMINALS, TerminalUpsert(op="upsert", terminal=terminal(1)))
    with pytest.raises(pydantic.ValidationError):
        async with store.write([SESSIONS]) as tx:
            await tx.put_session(session(1))
            tx.publish(SESSIONS, TextDelta(op="delta", message_id="m", offset=0, text="x"))  # type: ignore[arg-type]
    assert await store.sessions() == [] and broker.published == []


async def test_units_of_one_topic_run_one_at_a_time_and_publish_in_their_order(open_store: Open):
    """Each unit's body yields to the loop between its read and its write; yet no two
    units of a topic overlap, and each one's event is published before the next starts."""
    opened_ = await open_store()
    store, broker = opened_.store, opened_.broker
    await put_session(store, session(1))
    log: list[str] = []

    async def record(_topic: str, payload: Any) -> None:
        log.append(f"published {payload['session']['title']}")

    broker.before_publish = record

    async def rename(title: str) -> None:
        async with store.write([SESSIONS]) as tx:
            log.append(f"enter {title}")
            current = await tx.session(session(1).id)
            await asyncio.sleep(0)
            assert current is not None
            renamed = current.model_copy(update={"title": title})
            await tx.put_session(renamed)
            tx.publish(SESSIONS, SessionUpsert(op="upsert", session=renamed))
            log.append(f"exit {title}")

    titles = [f"r{i}" for i in range(20)]
    await asyncio.gather(*(rename(t) for t in titles))
    order = [entry.split()[1] for entry in log[::3]]
    assert sorted(order) == sorted(titles)
    assert log == [f"{step} {t}" for t in order for step in ("enter", "exit", "published")]
    final = await store.session(session(1).id)
    assert final is not None and final.title == order[-1]


async def test_units_holding_the_same_topics_in_any_order_never_deadlock(open_store: Open):
    store = (await open_store()).store
    a, b = ACTIVITY.at(session_id="s-a"), ACTIVITY.at(session_id="s-b")
    orders = [[SESSIONS, TERMINALS, a], [a, TERMINALS, SESSIONS], [b, a], [a, b, SESSIONS], [TERMINALS, b]]
    done = 0

    async def unit(topics: list[Any]) -> None:
        nonlocal done
        async with store.write(topics) as tx:
            await tx.session("s-a")
            await asyncio.sleep(0)
            await tx.session("s-b")
        done += 1

    async with asyncio.timeout(20):
        await asyncio.gather(*(unit(orders[i % len(orders)]) for i in range(60)))
    assert done == 60


async def test_an_event_is_validated_and_encoded_once_from_the_unit_to_the_broker(
    open_store: Open, monkeypatch: pytest.MonkeyPatch
):
    """The unit validates and encodes each event when it is queued (its outbox keeps that
    JSON); the hub publishes those bytes as they are, not validated and encoded again."""
    opened = await open_store()
    encoded: list[str] = []
    encode_event = TopicDef.encode_event

    def counting(self: TopicDef[Any, Any], payload: Any) -> bytes:
        encoded.append(self.pattern)
        return encode_event(self, payload)

    monkeypatch.setattr(TopicDef, "encode_event", counting)
    s = session(1)
    async with opened.store.write([SESSIONS]) as tx:
        await tx.put_session(s)
        tx.publish(SESSIONS, SessionUpsert(op="upsert", session=s))
    assert encoded == ["sessions.state"]
    assert opened.broker.published[-1] == (
        "sessions.state",
        SessionUpsert(op="upsert", session=s).model_dump(mode="json"),
    )
