"""Resource hygiene: what a session leaves behind when it is deleted is nothing.

20,000 sessions are created and deleted (with messages, streams, terminals, and a
subscriber to some of their activity topics); then every per-topic and per-session
table is back to its size before. A leak of one entry per session would show as
thousands. The tables are read where they live, private ones included: a leak hides
exactly where public methods do not look (`store.sessions()` cannot show orphaned
message logs)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from aiohttp_realtime import HUB_KEY, MemoryBroker
from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.memory_store import MemoryStore, Undo
from tests.support import WsClient

SESSIONS = 20_000
BATCH = 100
#: Every WATCH_EVERY-th batch: 3 of its sessions get an activity subscriber, and 3 go
#: through the HTTP API. Few WebSocket frames: a connection's frame rate is limited.
WATCH_EVERY = 20


def tables(app: web.Application) -> dict[str, int]:
    service = app[SERVICE_KEY]
    hub = app[HUB_KEY]
    store = service.store
    assert isinstance(hub.broker, MemoryBroker) and isinstance(store, MemoryStore)
    return {
        "broker topics": len(hub.broker),
        "subscriptions": sum(len(conn.subscriptions) for conn in hub.connections),
        "store sessions": len(store._sessions),
        "store message logs": len(store._messages),
        "store messages": sum(len(log.entries) for log in store._messages.values()),
        "store title bytes": store._title_bytes,
        "store terminals": len(store._terminals),
        "coalescer pending": len(service._coalescer._pending),
    }


async def churn(client: Any, sessions: int, ws: WsClient | None) -> set[str]:
    """Create and delete `sessions` sessions, in batches, with everything a session can
    hold; returns the activity topics that were subscribed to."""
    service = client.app[SERVICE_KEY]
    topics: set[str] = set()
    for batch in range(sessions // BATCH):
        watched = batch % WATCH_EVERY == 0
        ids = [(await service.create_session(f"s{batch}.{i}")).id for i in range(BATCH - 3 * watched)]
        if watched:
            ids += [await http_session(client, f"http {batch}.{i}") for i in range(3)]
        for i, sid in enumerate(ids):
            if i % 2 == 0:
                await service.add_message(sid, "user", f"message {i}")
            if i % 10 == 0:
                reply = await service.add_message(sid, "assistant", "", streaming=True)
                assert reply is not None and await service.stream_text(sid, reply.id, "pending")
            if i % 20 == 0:
                await service.put_terminal("pytest", "running", session_id=sid)
        if watched and ws is not None:
            topics |= await watch_and_delete(client, ws, ids[-3:])
            ids = ids[:-3]
        for sid in ids:
            assert await service.delete_session(sid)
    return topics


async def http_session(client: Any, title: str) -> str:
    created = await client.post("/api/sessions", json={"title": title})
    assert created.status == 201
    sid: str = (await created.json())["id"]
    posted = await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "over HTTP"})
    assert posted.status == 201
    return sid


async def watch_and_delete(client: Any, ws: WsClient, ids: list[str]) -> set[str]:
    """Subscribe to the sessions' activity; unsubscribe the first before its session is
    deleted, the others after (deleted while subscribed). Deletes them over HTTP."""
    service = client.app[SERVICE_KEY]
    topics = [f"sessions.activity:{sid}" for sid in ids]
    await ws.subscribe(*topics)
    snapshots = [f for f in await ws.barrier() if f.get("topic") != "terminals.state"]
    assert sorted((f["type"], f["topic"]) for f in snapshots) == [("snapshot", t) for t in sorted(topics)]
    for sid in ids:
        await service.add_message(sid, "user", "watched")
    events = [f for f in await ws.barrier() if f.get("topic") != "terminals.state"]
    assert [(f["topic"], f["payload"]["message"]["text"]) for f in events] == [(t, "watched") for t in topics]
    await ws.unsubscribe(topics[0])
    for sid in ids:
        assert (await client.delete(f"/api/sessions/{sid}")).status == 204
    await ws.unsubscribe(*topics[1:])
    # Deleting a session publishes nothing on its activity topic.
    assert [f for f in await ws.barrier() if f.get("topic") != "terminals.state"] == []
    return set(topics)


async def test_creating_and_deleting_20000_sessions_leaves_no_trace(aiohttp_client):
    # The HTTP write limit (per address) is not what is tested here: unbounded, so the
    # test does not depend on how fast the machine churns (90 HTTP writes in seconds).
    unlimited = HttpLimits(writes_per_s=1e9, writes_burst=10**9)
    client = await aiohttp_client(build_app(Config(simulate=False, http=unlimited)))
    hub = client.app[HUB_KEY]
    ws = await WsClient.connect(client)
    await ws.subscribe("terminals.state")  # a topic that stays subscribed throughout
    await ws.barrier()
    before = tables(client.app)
    topics = await churn(client, SESSIONS, ws)
    await ws.barrier()  # the server has handled every unsubscribe
    assert len(topics) == 3 * SESSIONS // BATCH // WATCH_EVERY
    assert tables(client.app) == before
    assert [t for t in topics if hub.subscriber_count(t)] == []
    assert hub.subscriber_count("terminals.state") == 1
    # Nothing stayed that no table above would show: the store is as empty as it started.
    store = client.app[SERVICE_KEY].store
    assert await store.sessions() == [] and await store.terminals() == []


def forgets_messages(self: MemoryStore, session_id: str) -> tuple[list[str] | None, Undo]:
    """A session's deletion that forgets to drop its messages (and terminals)."""
    return ([] if self._sessions.pop(session_id, None) else None), lambda: None


def forgets_terminals(self: MemoryStore, session_id: str) -> tuple[list[str] | None, Undo]:
    """A session's deletion that forgets to drop its terminals."""
    self._messages.pop(session_id, None)
    return ([] if self._sessions.pop(session_id, None) else None), lambda: None


@pytest.mark.parametrize(
    ("owner", "name", "leak", "table"),
    [
        (MemoryStore, "_delete_session", forgets_messages, "store message logs"),
        (MemoryStore, "_delete_session", forgets_terminals, "store terminals"),
        (MemoryBroker, "unwatch", lambda self, topic: None, "broker topics"),
    ],
)
async def test_the_tables_show_a_leak(demo_client, monkeypatch, owner, name, leak, table):
    """The check above fails when deleting a session or unsubscribing leaves something."""
    monkeypatch.setattr(owner, name, leak)
    client = await demo_client()
    ws = await WsClient.connect(client)
    before = tables(client.app)
    await churn(client, BATCH, ws)
    await ws.barrier()
    after = tables(client.app)
    assert table in {name for name in before if after[name] != before[name]}
