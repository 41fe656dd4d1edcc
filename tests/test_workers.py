"""`python -m backend --workers N`: one port, N processes, one topic space through Redis,
and one stop for all of them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401

WORKERS = 2


@asynccontextmanager
async def workers(*argv: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """The workers' parent, started directly (the command line also asks for a shared
    store, which these tests do not need: every worker keeps its own, and only the
    broker is shared)."""
    code = (
        "import sys\nfrom backend.workers import run_workers\n"
        f"sys.exit(run_workers({list(argv)!r}, '127.0.0.1', 0, {WORKERS}))"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("serving on http://127.0.0.1:") and f"({WORKERS} workers)" in line, line
        yield proc, int(line.split(":")[2].split("/")[0])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _subscriber(
    session: aiohttp.ClientSession, port: int
) -> tuple[aiohttp.ClientWebSocketResponse, Any]:
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
    hello = await ws.receive_json()
    await ws.send_json({"type": "subscribe", "topics": ["sessions.state"]})
    snapshot = await ws.receive_json()
    assert snapshot["type"] == "snapshot"
    return ws, hello


async def test_workers_share_the_port_and_the_topics_and_stop_together(redis_base_url, redis_prefix):  # noqa: F811
    argv = ("--broker", redis_base_url, "--redis-prefix", redis_prefix, "--no-simulate", "--port", "0")
    async with workers(*argv) as (proc, port), aiohttp.ClientSession() as session:
        subscribers = [await _subscriber(session, port) for _ in range(8)]
        pids = _worker_pids(proc.pid)
        assert len(pids) == WORKERS
        # An event published by whichever worker takes the POST reaches every subscriber,
        # on every worker, with one seq.
        resp = await session.post(f"http://127.0.0.1:{port}/api/sessions", json={"title": "hi"})
        assert resp.status == 201
        seqs = set()
        for ws, _hello in subscribers:
            event = await ws.receive_json(timeout=10)
            assert event["type"] == "event" and event["payload"]["session"]["title"] == "hi"
            seqs.add(event["seq"])
        assert len(seqs) == 1
        proc.send_signal(signal.SIGTERM)
        # Every client reads at once, as real ones do: one that answered the close only
        # after close_timeout_s would be aborted (1006), by design.
        await asyncio.gather(*(ws.receive(timeout=10) for ws, _hello in subscribers))
        assert [ws.close_code for ws, _hello in subscribers] == [1012] * len(subscribers)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
        assert not _alive(pids)


async def test_a_worker_that_dies_stops_the_set(redis_base_url, redis_prefix):  # noqa: F811
    argv = ("--broker", redis_base_url, "--redis-prefix", redis_prefix, "--no-simulate", "--port", "0")
    async with workers(*argv) as (proc, _port):
        pids = _worker_pids(proc.pid)
        os.kill(pids[0], signal.SIGKILL)
        async with asyncio.timeout(20):
            assert await proc.wait() == 1
        assert not _alive(pids)


def _worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text()  # /proc: never blocks
    return [int(pid) for pid in children.split()]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive
