"""A reconnect storm on the demo with its state in PostgreSQL (issue 19): the snapshot
provider is a query, and a storm of subscribers to one topic version runs it once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from aiohttp_realtime import RealtimeSettings
from backend.app import Config, build_app
from backend.postgres_store import PostgresStore
from tests.pg_support import pg_admin_url, pg_url  # noqa: F401 - fixtures


async def test_a_storm_on_one_topic_version_is_one_query(
    aiohttp_client: Any,
    pg_url: str,  # noqa: F811 - the fixture
    monkeypatch: Any,
) -> None:
    queries = 0
    real = PostgresStore.sessions

    async def counted(self: PostgresStore) -> Any:
        nonlocal queries
        queries += 1
        return await real(self)

    monkeypatch.setattr(PostgresStore, "sessions", counted)
    settings = RealtimeSettings(max_connections_per_address=1000)
    client = await aiohttp_client(build_app(Config(simulate=False, database=pg_url, realtime=settings)))
    created = await client.post("/api/sessions", json={"title": "storm"})
    assert created.status == 201, await created.text()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        url = client.make_url("/api/realtime")
        sockets = await asyncio.gather(*(session.ws_connect(url) for _ in range(300)))
        for ws in sockets:
            await ws.receive()  # hello
        await asyncio.gather(
            *(ws.send_json({"type": "subscribe", "topics": ["sessions.state"]}) for ws in sockets)
        )
        snapshots = [json.loads((await ws.receive(timeout=30)).data) for ws in sockets]
        assert {(s["type"], s["seq"]) for s in snapshots} == {("snapshot", snapshots[0]["seq"])}
        assert [s["title"] for s in snapshots[0]["payload"]["sessions"]] == ["storm"]
        assert queries == 1  # 300 subscribers, one topic version: one query
        # The topic's next event makes a new version: the next subscriber's is a new query.
        assert (await client.post("/api/sessions", json={"title": "after"})).status == 201
        for ws in sockets[:1]:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "event"
        late = await session.ws_connect(url)
        await late.receive()
        await late.send_json({"type": "subscribe", "topics": ["sessions.state"]})
        snapshot = json.loads((await late.receive(timeout=10)).data)
        assert len(snapshot["payload"]["sessions"]) == 2
        assert queries == 2
        await asyncio.gather(*(ws.close() for ws in [*sockets, late]))
