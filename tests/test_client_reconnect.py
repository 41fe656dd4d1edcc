"""The Python client's `ClosedError` after a server-side close: the close reason, the
reconnect window a restarting server gives in it (`reconnect_within_ms=N`, issue 19),
and `reconnect_delay()`, the delay the close code's advice and that window call for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aiohttp_realtime import CloseCode
from aiohttp_realtime.app import shutdown
from aiohttp_realtime.client import (
    RECONNECT_BACKOFF_WINDOW_S,
    RECONNECT_NOW_WINDOW_S,
    ClosedError,
    RealtimeClient,
    connect,
)
from aiohttp_realtime.closecodes import MAX_RECONNECT_WITHIN_MS, reconnect_hint
from tests.support import until


def half() -> float:
    """The middle of every window: deterministic."""
    return 0.5


@asynccontextmanager
async def closed_by_server(lib_client: Any, code: int, reason: str) -> AsyncIterator[RealtimeClient]:
    """A connection the server closed with `code` and `reason`, its close read by `recv`."""
    client, hub, _, _ = await lib_client()
    async with connect(str(client.make_url("/api/realtime")), session=client.session) as rt:
        await until(lambda: len(hub.connections) == 1)
        [conn] = hub.connections
        conn.close(code, reason)
        with pytest.raises(ClosedError) as closed:
            async with asyncio.timeout(10):
                await rt.recv()
        assert rt.close_error is closed.value
        yield rt


async def test_a_restart_close_carries_its_reconnect_window(lib_client):
    reason = reconnect_hint("server restarting", 3000)
    async with closed_by_server(lib_client, CloseCode.SERVICE_RESTART, reason) as rt:
        error = rt.close_error
        assert error is not None
        assert error.code == 1012
        assert error.reason == "server restarting; reconnect_within_ms=3000"
        assert error.reconnect_within_s == 3.0
        assert error.reconnect_delay(half) == 1.5
        assert error.reconnect_delay(lambda: 0.0) == 0.0
        assert all(0 <= (error.reconnect_delay() or -1) < 3.0 for _ in range(100))
        assert "reconnect_within_ms=3000" in str(error)

        # Later reads and calls on the closed connection keep the reason (aiohttp hands
        # it to the first read only).
        for later in (rt.recv(), rt.request("items.nothing")):
            with pytest.raises(ClosedError) as again:
                await later
            assert (again.value.code, again.value.reconnect_within_s) == (1012, 3.0)
        assert [m async for m in rt] == []


async def test_the_servers_shutdown_gives_the_window_of_its_settings(lib_client):
    client, hub, _, _ = await lib_client(reconnect_window_s=2.5, shutdown_spread_s=0)
    async with connect(str(client.make_url("/api/realtime")), session=client.session) as rt:
        stopping = asyncio.create_task(shutdown(hub))
        assert [m async for m in rt] == []
        async with asyncio.timeout(10):
            await stopping
        error = rt.close_error
        assert error is not None
        assert (error.code, error.reconnect_within_s, error.reconnect_delay(half)) == (1012, 2.5, 1.25)


async def test_a_normal_close_says_do_not_reconnect(lib_client):
    async with closed_by_server(lib_client, CloseCode.NORMAL, "done") as rt:
        error = rt.close_error
        assert error is not None
        assert (error.code, error.reason, error.reconnect_within_s) == (1000, "done", None)
        assert error.reconnect_delay() is None


async def test_going_away_without_a_window_uses_the_default_one(lib_client):
    async with closed_by_server(lib_client, CloseCode.GOING_AWAY, "restarting") as rt:
        error = rt.close_error
        assert error is not None
        assert (error.code, error.reason, error.reconnect_within_s) == (1001, "restarting", None)
        assert error.reconnect_delay(half) == RECONNECT_NOW_WINDOW_S / 2


async def test_an_error_close_ignores_a_window_and_gives_the_first_backoff(lib_client):
    reason = reconnect_hint("oops", 50_000)
    async with closed_by_server(lib_client, CloseCode.INTERNAL_ERROR, reason) as rt:
        error = rt.close_error
        assert error is not None
        assert error.reconnect_within_s == 50.0  # parsed, but not what `backoff` follows
        assert error.reconnect_delay(half) == RECONNECT_BACKOFF_WINDOW_S / 2


@pytest.mark.parametrize(
    ("code", "reason", "delay"),
    [
        (1012, "server restarting; reconnect_within_ms=3000", 1.5),
        (1012, "server restarting; reconnect_within_ms=120000", MAX_RECONNECT_WITHIN_MS / 2000),  # capped
        (1012, "server restarting; reconnect_within_ms=0", 0.0),
        (1012, "server restarting", RECONNECT_NOW_WINDOW_S / 2),
        (1012, "", RECONNECT_NOW_WINDOW_S / 2),
        # Hostile or garbled: no window (the default), never a huge or negative one.
        (1012, "reconnect_within_ms=99999999999", RECONNECT_NOW_WINDOW_S / 2),
        (1012, "reconnect_within_ms=-5", RECONNECT_NOW_WINDOW_S / 2),
        (1012, "reconnect_within_ms=1e9", RECONNECT_NOW_WINDOW_S / 2),
        (1012, "xreconnect_within_ms=5000", RECONNECT_NOW_WINDOW_S / 2),
        (1012, "\x00\ud800" * 40, RECONNECT_NOW_WINDOW_S / 2),
        (1001, "bye; reconnect_within_ms=4000", 2.0),
        (1000, "server restarting; reconnect_within_ms=3000", None),
        (1008, "", RECONNECT_BACKOFF_WINDOW_S / 2),
        (4999, "", RECONNECT_BACKOFF_WINDOW_S / 2),  # not in the catalogue: backoff
        (1006, "", RECONNECT_BACKOFF_WINDOW_S / 2),
        (None, "", RECONNECT_BACKOFF_WINDOW_S / 2),  # dropped without a close frame
    ],
)
def test_reconnect_delay_by_code_and_reason(code: int | None, reason: str, delay: float | None) -> None:
    error = ClosedError(code, reason)
    assert error.reason == reason
    assert error.reconnect_delay(half) == delay
    if delay is not None:  # random.random by default: within [0, window), window = 2 * delay
        drawn = error.reconnect_delay()
        assert drawn is not None and (drawn == delay == 0 or 0 <= drawn < 2 * delay)


def test_closed_error_without_a_reason() -> None:
    error = ClosedError(1012)
    assert (error.reason, error.reconnect_within_s, str(error)) == ("", None, "connection closed (code 1012)")
