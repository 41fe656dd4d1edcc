"""Shutdown: every client gets 1001, and a stuck client cannot hold the process."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
from aiohttp import web

from aiohttp_realtime import RealtimeSettings
from tests.libapp import build_lib_app
from tests.support import StuckClient, backend_process, free_port


async def test_app_shutdown_sends_1001_and_aborts_a_stuck_client():
    app, hub, state, _ = build_lib_app(RealtimeSettings(close_timeout_s=0.5, max_queue_bytes=64 << 20))
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
        assert (await ws.receive_json())["type"] == "hello"
        known = set(hub.connections)
        stuck = await StuckClient.connect("127.0.0.1", port, ["items"])
        [stuck_conn] = hub.connections - known
        while "items" not in stuck_conn.subscriptions:
            await ws.send_json({"type": "ping", "id": "sync"})
            assert (await ws.receive_json()) == {"type": "pong", "id": "sync"}
        for i in range(200):  # ~8 MB: its socket is full and its writer blocked
            await state.set(hub, "v" * 40_000, i)
            await asyncio.sleep(0)
        assert stuck_conn.buffered_bytes > 4 << 20
        assert not stuck_conn.closing

        loop = asyncio.get_running_loop()
        started = loop.time()
        cleanup = asyncio.create_task(runner.cleanup())
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(cleanup, 10)
        # The stuck client never answers the close handshake; without the abort
        # aiohttp would wait its own 10 s close timeout for it.
        assert loop.time() - started < 5
        assert not hub.connections
        stuck.close()


async def test_sigterm_closes_clients_with_1001_and_exits_promptly():
    async with backend_process() as (proc, port), aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
        assert (await ws.receive_json())["type"] == "hello"
        stuck = await StuckClient.connect("127.0.0.1", port, ["sessions.state"])
        await ws.send_json({"type": "subscribe", "topics": ["sessions.state"]})
        assert (await ws.receive_json())["type"] == "snapshot"

        proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == 0
        stuck.close()
