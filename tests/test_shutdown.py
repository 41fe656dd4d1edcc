"""Shutdown: every client gets 1012 with a reconnect window, in batches, and a stuck
client cannot hold the process."""

from __future__ import annotations

import asyncio
import itertools
import signal

import aiohttp
from aiohttp import web

from aiohttp_realtime import RealtimeSettings
from aiohttp_realtime.app import MIN_BATCH, shutdown
from aiohttp_realtime.closecodes import reconnect_within_ms
from tests.libapp import build_lib_app
from tests.support import StuckClient, backend_process, free_port


async def test_app_shutdown_sends_1012_and_aborts_a_stuck_client():
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
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1012)
        assert reconnect_within_ms(msg.extra) == 5000  # the default reconnect_window_s
        await asyncio.wait_for(cleanup, 10)
        # The stuck client never answers the close handshake; without the abort
        # aiohttp would wait its own 10 s close timeout for it.
        assert loop.time() - started < 5
        assert not hub.connections
        stuck.close()


async def test_sigterm_closes_clients_with_1012_and_exits_promptly():
    async with backend_process() as (proc, port), aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
        assert (await ws.receive_json())["type"] == "hello"
        stuck = await StuckClient.connect("127.0.0.1", port, ["sessions.state"])
        await ws.send_json({"type": "subscribe", "topics": ["sessions.state"]})
        assert (await ws.receive_json())["type"] == "snapshot"

        proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1012)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == 0
        stuck.close()


class _Closing:
    """A connection that records when it was asked to close."""

    def __init__(self, log: list[tuple[float, int, str]]) -> None:
        self._log = log

    def close(self, code: int, reason: str) -> None:
        self._log.append((asyncio.get_running_loop().time(), code, reason))

    async def wait_closed(self) -> None:
        return None


class _Hub:
    def __init__(self, n: int, settings: RealtimeSettings) -> None:
        self.log: list[tuple[float, int, str]] = []
        self.connections = {_Closing(self.log) for _ in range(n)}
        self.settings = settings


async def test_shutdown_closes_in_batches_spread_over_the_window_with_the_hint():
    settings = RealtimeSettings(shutdown_spread_s=0.6, shutdown_batches=20, reconnect_window_s=7.5)
    hub = _Hub(450, settings)
    started = asyncio.get_running_loop().time()
    await shutdown(hub)  # type: ignore[arg-type]
    assert len(hub.log) == 450
    hinted = "server restarting; reconnect_within_ms=7500"
    assert {(code, reason) for _t, code, reason in hub.log} == {(1012, hinted)}
    # 20 batches of ceil(450/20)=23 would be smaller than MIN_BATCH: batches of 100.
    batches = _batches([t for t, _c, _r in hub.log])
    assert [len(batch) for batch in batches] == [MIN_BATCH] * 4 + [50]
    assert batches[0][0] - started < 0.1  # the first batch at once
    # then one every spread / number of batches (the pacing only waits, never less)
    assert all(b[0] - a[-1] >= 0.6 / 5 * 0.9 for a, b in itertools.pairwise(batches))


async def test_few_clients_are_closed_at_once():
    hub = _Hub(MIN_BATCH, RealtimeSettings(shutdown_spread_s=30.0))
    await asyncio.wait_for(shutdown(hub), 5)  # type: ignore[arg-type]
    assert [len(batch) for batch in _batches([t for t, _c, _r in hub.log])] == [MIN_BATCH]


def _batches(times: list[float]) -> list[list[float]]:
    """Close instants grouped into batches: one batch is closed in one loop turn (well
    under 50 ms); the next waits at least spread / batches."""
    batches: list[list[float]] = []
    for t in times:
        if batches and t - batches[-1][-1] < 0.05:
            batches[-1].append(t)
        else:
            batches.append([t])
    return batches


def test_a_close_reason_hint_is_parsed_and_capped():
    assert reconnect_within_ms("server restarting; reconnect_within_ms=2500") == 2500
    assert reconnect_within_ms("reconnect_within_ms=999999999") == 60_000
    assert reconnect_within_ms("server restarting") is None
    assert reconnect_within_ms("xreconnect_within_ms=5") is None
