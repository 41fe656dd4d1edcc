"""The demo HTTP API: changes are published; bad input is a JSON 4xx, never a 500."""

from __future__ import annotations

import pytest

from tests.support import WsClient


async def _json(resp, status):
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_crud_round_trip_publishes_each_change(demo_client):
    client = await demo_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state")
    await ws.barrier()

    created = await _json(await client.post("/api/sessions", json={"title": "  Deploy  "}), 201)
    assert created["title"] == "Deploy" and created["state"] == "idle"
    sid = created["id"]
    assert await _json(await client.get(f"/api/sessions/{sid}"), 200) == created
    assert await _json(await client.get("/api/sessions"), 200) == [created]

    patched = await _json(await client.patch(f"/api/sessions/{sid}", json={"state": "running"}), 200)
    assert patched["state"] == "running" and patched["title"] == "Deploy"
    assert patched["updated_at"] >= created["updated_at"]
    renamed = await _json(await client.patch(f"/api/sessions/{sid}", json={"title": "Ship"}), 200)
    assert renamed["title"] == "Ship" and renamed["state"] == "running"

    resp = await client.delete(f"/api/sessions/{sid}")
    assert resp.status == 204
    assert await _json(await client.get("/api/sessions"), 200) == []

    payloads = [f["payload"] for f in await ws.barrier()]
    assert payloads == [
        {"op": "upsert", "session": created},
        {"op": "upsert", "session": patched},
        {"op": "upsert", "session": renamed},
        {"op": "remove", "id": sid},
    ]


async def test_post_message_is_published_on_the_activity_topic(demo_client):
    client = await demo_client()
    sid = (await _json(await client.post("/api/sessions", json={"title": "t"}), 201))["id"]
    ws = await WsClient.connect(client)
    await ws.subscribe(f"sessions.activity:{sid}")
    [snapshot] = await ws.barrier()
    assert snapshot["payload"] == {"session_id": sid, "messages": []}
    message = await _json(
        await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "héllo"}), 201
    )
    assert message["text"] == "héllo" and message["session_id"] == sid and not message["streaming"]
    [event] = await ws.barrier()
    assert event["payload"] == {"op": "append", "message": message}


BAD_REQUESTS = [
    ("post", "/api/sessions", b"{oops", 400, "invalid_json"),
    ("post", "/api/sessions", b"", 400, "invalid_json"),
    ("post", "/api/sessions", b"{}", 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": ""}', 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": "   "}', 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": 5}', 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": "x", "admin": true}', 422, "invalid_body"),
    ("post", "/api/sessions", b'["title"]', 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": "' + b"x" * 201 + b'"}', 422, "invalid_body"),
    ("post", "/api/sessions", b'{"title": "a\\u0000b"}', 422, "invalid_body"),  # no store keeps NUL
    ("patch", "/api/sessions/{sid}", b'{"title": "\\u0000"}', 422, "invalid_body"),
    ("patch", "/api/sessions/{sid}", b"{}", 422, "invalid_body"),
    ("patch", "/api/sessions/{sid}", b'{"state": "sleeping"}', 422, "invalid_body"),
    ("patch", "/api/sessions/{sid}", b"nope", 400, "invalid_json"),
    ("post", "/api/sessions/{sid}/messages", b'{"role": "user"}', 422, "invalid_body"),
    ("post", "/api/sessions/{sid}/messages", b'{"role": "robot", "text": "x"}', 422, "invalid_body"),
    ("post", "/api/sessions/{sid}/messages", b'{"role": "user", "text": ""}', 422, "invalid_body"),
    ("get", "/api/sessions/missing", b"", 404, "not_found"),
    ("patch", "/api/sessions/missing", b'{"state": "done"}', 404, "not_found"),
    ("delete", "/api/sessions/missing", b"", 404, "not_found"),
    ("post", "/api/sessions/missing/messages", b'{"role": "user", "text": "x"}', 404, "not_found"),
    ("get", "/api/nothing-here", b"", 404, "not_found"),
    ("put", "/api/sessions", b"{}", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), BAD_REQUESTS)
async def test_bad_requests_are_json_4xx_and_change_nothing(demo_client, method, path, body, status, error):
    client = await demo_client()
    session = await _json(await client.post("/api/sessions", json={"title": "keep"}), 201)
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state")
    await ws.barrier()
    headers = {"Content-Type": "application/json"}  # a text/plain body is refused (415) first
    resp = await client.request(method, path.format(sid=session["id"]), data=body, headers=headers)
    data = await _json(resp, status)
    assert data["error"] == error
    assert isinstance(data["message"], str) and data["message"]
    assert await ws.barrier() == []  # nothing was published
    assert await _json(await client.get("/api/sessions"), 200) == [session]


async def test_message_text_limit_is_64_kib(demo_client):
    client = await demo_client()
    sid = (await _json(await client.post("/api/sessions", json={"title": "t"}), 201))["id"]
    ok = await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "x" * 65536})
    assert ok.status == 201
    too_long = await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "x" * 65537})
    assert (await _json(too_long, 422))["error"] == "invalid_body"


async def test_oversized_body_is_a_json_413(demo_client):
    client = await demo_client()
    headers = {"Content-Type": "application/json"}
    resp = await client.post("/api/sessions", data=b"x" * (2 * 1024 * 1024), headers=headers)
    assert (await _json(resp, 413))["error"] == "request_entity_too_large"
