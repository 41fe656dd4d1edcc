"""The demo's topics: snapshots, idempotent events and coalesced text streams."""

from __future__ import annotations

import asyncio

from backend.api import SERVICE_KEY
from tests.support import WsClient


def apply_activity(state: dict, frame: dict) -> None:
    """What a client does with sessions.activity frames (as the browser client does)."""
    payload = frame["payload"]
    if frame["type"] == "snapshot":
        state.clear()
        state.update({m["id"]: dict(m) for m in payload["messages"]})
    elif payload["op"] == "append":
        state[payload["message"]["id"]] = dict(payload["message"])
    elif payload["op"] == "delta":
        message = state.get(payload["message_id"])
        if message is not None and payload["offset"] + len(payload["text"]) > len(message["text"]):
            message["text"] = message["text"][: payload["offset"]] + payload["text"]
    elif payload["op"] == "end":
        message = state.get(payload["message_id"])
        if message is not None:
            message.update(text=payload["text"], streaming=False)


async def test_unknown_session_activity_is_unknown_topic(demo_client):
    client = await demo_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.activity:s-nope", "sessions.activity:bad/chars", "terminals.state")
    frames = await ws.barrier()
    assert [(f["type"], f.get("code"), f["topic"]) for f in frames] == [
        ("error", "unknown_topic", "sessions.activity:s-nope"),
        ("error", "unknown_topic", "sessions.activity:bad/chars"),
        ("snapshot", None, "terminals.state"),
    ]


async def test_text_stream_is_coalesced_and_reconstructs_exactly(demo_client):
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    session = await service.create_session("stream")
    reply = await service.add_message(session.id, "assistant", "", streaming=True)
    topic = f"sessions.activity:{session.id}"
    early = await WsClient.connect(client)
    await early.subscribe(topic)
    [early_snapshot] = await early.barrier()

    tokens = [f"tok{i} " for i in range(100)] + ["ünïcödé 🎉 ", "end."]
    for token in tokens[:50]:
        assert await service.stream_text(session.id, reply.id, token)
    # A client that subscribes now, before the coalesced delta is published, is at the
    # topic's seq of the early one: it shares the early one's snapshot (one snapshot
    # per topic version, core.snapshots), whose text the delta then completes.
    late = await WsClient.connect(client)
    await late.subscribe(topic)
    late_frames = await late.barrier()
    late_snapshot = late_frames[0]
    text = late_snapshot["payload"]["messages"][0]["text"]
    if late_snapshot["seq"] == early_snapshot["seq"]:
        assert text == ""  # the early one's snapshot, shared
    else:  # the coalescing window published a delta meanwhile: a new version, built anew
        assert text == "".join(tokens[:50])
    for token in tokens[50:]:
        assert await service.stream_text(session.id, reply.id, token)
    await service.end_message(session.id, reply.id)

    expected = "".join(tokens)
    early_frames = await early.barrier()
    late_frames += await late.barrier()
    # 102 tokens with no pause: one coalesced delta, then the end.
    assert [f["payload"]["op"] for f in early_frames] == ["delta", "end"]
    for frames in (early_frames, late_frames):
        state: dict = {}
        if frames is early_frames:
            state[reply.id] = {"id": reply.id, "text": "", "streaming": True}
        for frame in frames:
            apply_activity(state, frame)
            if frame["payload"].get("op") == "delta":
                assert state[reply.id]["text"] == expected  # before `end` carries the text
        assert state[reply.id]["text"] == expected
        assert state[reply.id]["streaming"] is False


async def test_coalescing_window_flushes_without_an_end(demo_client):
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    session = await service.create_session("stream")
    reply = await service.add_message(session.id, "assistant", "Hi", streaming=True)
    ws = await WsClient.connect(client)
    await ws.subscribe(f"sessions.activity:{session.id}")
    await ws.barrier()
    await service.stream_text(session.id, reply.id, " there")
    await service.stream_text(session.id, reply.id, "!")
    frame = await asyncio.wait_for(ws.recv(), 5)  # published by the window timer
    assert frame["payload"] == {"op": "delta", "message_id": reply.id, "offset": 2, "text": " there!"}


async def test_session_events_are_idempotent_upserts(demo_client):
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state")
    await ws.barrier()
    a = await service.create_session("a")
    await service.update_session(a.id, state="running")
    await service.create_session("b")
    await service.delete_session(a.id)
    sessions: dict = {}
    for frame in await ws.barrier():
        p = frame["payload"]
        for _ in range(2):  # applying any event twice changes nothing
            if p["op"] == "upsert":
                sessions[p["session"]["id"]] = p["session"]
            else:
                sessions.pop(p["id"], None)
    server = {s.id: s.model_dump(mode="json") for s in await service.store.sessions()}
    assert sessions == server


async def test_terminals_topic(demo_client):
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    t = await service.put_terminal("pytest", "starting")
    ws = await WsClient.connect(client)
    await ws.subscribe("terminals.state")
    [snap] = await ws.barrier()
    assert [x["id"] for x in snap["payload"]["terminals"]] == [t.id]
    await service.put_terminal("pytest", "exited", terminal_id=t.id, exit_code=1)
    await service.remove_terminal(t.id)
    ops = [(f["payload"]["op"], f["payload"].get("terminal", {}).get("status")) for f in await ws.barrier()]
    assert ops == [("upsert", "exited"), ("remove", None)]
