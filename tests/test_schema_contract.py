"""The schema cannot lie: server frames are checked against the committed schemas/.

`tests/support.py` validates every frame any test receives (`SCHEMA_CONTRACT`);
these tests prove the check bites (an extra, missing or mistyped field fails,
in the envelope and in a topic's payload) and drive every frame type and every
demo topic over a real socket, so each is checked at least once.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import RECEIVED_FRAMES, SCHEMA_CONTRACT, WsClient

SESSION = {
    "id": "s-1",
    "title": "t",
    "state": "idle",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
VALID: list[dict[str, Any]] = [
    {
        "type": "hello",
        "connection_id": "c",
        "server_time": "2026-01-01T00:00:00Z",
        "protocol": 1,
        "heartbeat_s": 25,
        "max_queue_bytes": 1,
        "max_frame_bytes": 1,
        "max_topics": 1,
        "max_snapshot_bytes": 1,
        "frames_per_s": 50.0,
        "subscribes_per_s": 20.0,
        "auth": True,
        "max_requests_in_flight": 16,
        "request_timeout_s": 10.0,
        "principal": "alice",
    },
    {"type": "snapshot", "topic": "sessions.state", "seq": 0, "payload": {"sessions": [SESSION]}},
    {
        "type": "event",
        "topic": "sessions.activity:s-1",
        "seq": 3,
        "payload": {"op": "delta", "message_id": "m", "offset": 0, "text": "x"},
    },
    {"type": "error", "code": "unknown_topic", "message": "m", "topic": "x"},
    {"type": "pong"},
    {"type": "event", "topic": "items", "seq": 1, "payload": {"anything": "goes"}},  # unpublished topic
    {"type": "response", "id": "r1", "result": {"id": "s-1"}},
    {"type": "response", "id": "r2", "error": {"code": "not_found", "message": "m", "details": [1]}},
]


@pytest.mark.parametrize("frame", VALID, ids=lambda f: f"{f['type']}:{f.get('topic', '')}")
def test_valid_frames_pass(frame):
    SCHEMA_CONTRACT.check(frame)


def _with(frame: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    frame = copy.deepcopy(frame)
    *parents, last = path
    target = frame
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return frame


_DELETE = object()
BROKEN = {
    "envelope field added to the wire": (VALID[0], ("region",), "eu"),
    "envelope field missing from the wire": (VALID[1], ("seq",), _DELETE),
    "envelope field of the wrong type": (VALID[1], ("seq",), "0"),
    "optional field sent as null": (VALID[4], ("id",), None),
    "unknown error code": (VALID[3], ("code",), "teapot"),
    "unknown frame type": (VALID[4], ("type",), "pang"),
    "response error without a message": (VALID[7], ("error", "message"), _DELETE),
    "response result that is not an object": (VALID[6], ("result",), [1]),
    "payload field added": (VALID[1], ("payload", "sessions", 0, "owner"), "me"),
    "payload field missing": (VALID[1], ("payload", "sessions", 0, "title"), _DELETE),
    "payload of another topic": (VALID[1], ("payload",), {"terminals": []}),
    "event op unknown": (VALID[2], ("payload", "op"), "insert"),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_broken_frames_fail_naming_the_field(case):
    frame, path, value = BROKEN[case]
    with pytest.raises(AssertionError, match="breaks schemas/") as info:
        SCHEMA_CONTRACT.check(_with(frame, path, value))
    if isinstance(path[-1], str) and value is not _DELETE:
        assert str(path[-1]) in str(info.value)


async def test_every_frame_type_and_topic_over_a_socket_matches_the_schema(demo_client):
    """Each frame passes SCHEMA_CONTRACT inside `recv`; this asserts they all occurred."""
    client = await demo_client()
    start = len(RECEIVED_FRAMES)
    ws = await WsClient.connect(client)
    session = await (await client.post("/api/sessions", json={"title": "contract"})).json()
    activity = f"sessions.activity:{session['id']}"
    await ws.subscribe("sessions.state", "terminals.state", activity, "no.such.topic", id="s1")
    frames = await ws.barrier()
    await client.patch(f"/api/sessions/{session['id']}", json={"state": "running"})
    await client.post(f"/api/sessions/{session['id']}/messages", json={"role": "user", "text": "hi"})
    await ws.send({"type": "ping", "typo": 1})
    frames += await ws.barrier()
    await client.delete(f"/api/sessions/{session['id']}")
    frames += await ws.barrier()
    seen = {(f["type"], f.get("topic"), f.get("payload", {}).get("op")) for f in RECEIVED_FRAMES[start:]}
    for expected in [
        ("hello", None, None),
        ("snapshot", "sessions.state", None),
        ("snapshot", "terminals.state", None),
        ("snapshot", activity, None),
        ("error", "no.such.topic", None),
        ("event", "sessions.state", "upsert"),
        ("event", activity, "append"),
        ("event", "sessions.state", "remove"),
        ("error", None, None),
        ("pong", None, None),
    ]:
        assert expected in seen, (expected, seen)
    await ws.close()
