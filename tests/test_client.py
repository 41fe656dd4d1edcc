"""The typed Python client and `python -m backend tail`, built on the generated models only."""

from __future__ import annotations

import asyncio
import io
import json
import sys

from aiohttp_realtime.client import ErrorFrame, EventFrame, HelloFrame, SnapshotFrame, TopicPayloads, connect
from aiohttp_realtime.generated.server_message import ErrorCode
from backend.generated.topics import ActivitySnapshot, SessionsSnapshot, SessionUpsert, Topics
from backend.tail import tail
from tests.support import backend_process

PAYLOADS = TopicPayloads(Topics)


def _url(client) -> str:
    return str(client.make_url("/api/realtime"))


async def test_client_reads_typed_messages_and_payloads(demo_client):
    client = await demo_client()
    async with connect(_url(client), session=client.session) as rt:
        assert isinstance(rt.hello, HelloFrame) and rt.hello.protocol == 1
        await rt.subscribe("sessions.state", "no.such.topic", id="s1")
        before = await rt.barrier()
        snapshot = next(m for m in before if isinstance(m, SnapshotFrame))
        assert isinstance(PAYLOADS.parse(snapshot), SessionsSnapshot)
        error = next(m for m in before if isinstance(m, ErrorFrame))
        assert (error.code, error.topic, error.id) == (ErrorCode.UNKNOWN_TOPIC, "no.such.topic", "s1")

        session = await (await client.post("/api/sessions", json={"title": "typed"})).json()
        event = await rt.recv(timeout=5)
        assert isinstance(event, EventFrame) and event.seq == snapshot.seq + 1
        upsert = PAYLOADS.parse(event)
        assert isinstance(upsert, SessionUpsert) and upsert.session.title == "typed"

        await rt.subscribe(f"sessions.activity:{session['id']}")
        (activity,) = await rt.barrier()
        assert isinstance(PAYLOADS.parse(activity), ActivitySnapshot)

        await rt.unsubscribe("sessions.state")
        await rt.barrier()
        await client.patch(f"/api/sessions/{session['id']}", json={"state": "running"})
        assert await rt.barrier() == []  # unsubscribed: no event, only the pong


async def test_iteration_ends_when_the_server_closes(demo_client):
    client = await demo_client()
    async with connect(_url(client), session=client.session) as rt:
        await rt.ws.send_str("x" * (rt.hello.max_frame_bytes + 1))  # the server closes with 1009
        assert [m async for m in rt] == []
        assert rt.ws.close_code == 1009


class _Lines(io.StringIO):
    """Collects output; `printed` is set on each write (synchronisation without sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.printed = asyncio.Event()

    def write(self, s: str) -> int:
        self.printed.set()
        return super().write(s)

    def frames(self) -> list[dict]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


async def test_tail_prints_the_snapshot_then_live_events(demo_client):
    client = await demo_client()
    out, err = _Lines(), _Lines()
    tailing = tail(_url(client), ["sessions.state"], out, err, limit=2, session=client.session)
    task = asyncio.create_task(tailing)
    await asyncio.wait_for(out.printed.wait(), 10)  # the snapshot: subscribed from here on
    await client.post("/api/sessions", json={"title": "tailed"})
    assert await asyncio.wait_for(task, 10) == 0
    snapshot, event = out.frames()
    assert (snapshot["type"], snapshot["payload"]) == ("snapshot", {"sessions": []})
    assert event["type"] == "event" and event["payload"]["session"]["title"] == "tailed"
    assert err.frames()[0]["type"] == "hello"


async def test_tail_fails_when_every_topic_fails(demo_client):
    client = await demo_client()
    out, err = _Lines(), _Lines()
    assert await tail(_url(client), ["no.such.topic"], out, err, session=client.session) == 1
    assert out.getvalue() == ""
    assert err.frames()[-1]["code"] == "unknown_topic"


async def test_tail_command_against_a_running_server():
    async with backend_process() as (_server, port):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backend",
            "tail",
            "sessions.state",
            "terminals.state",
            "--url",
            f"ws://127.0.0.1:{port}/api/realtime",
            "--limit",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, stderr
        frames = [json.loads(line) for line in stdout.splitlines()]
        assert {(f["type"], f["topic"]) for f in frames} == {
            ("snapshot", "sessions.state"),
            ("snapshot", "terminals.state"),
        }
