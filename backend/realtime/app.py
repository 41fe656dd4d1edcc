"""Embedding: mount the realtime endpoint on any aiohttp application.

    PRICES = TopicDef("prices", Prices, PriceChanged)          # declared once, typed
    registry = TopicRegistry()
    registry.add(PRICES, current_prices)                      # bound to its snapshot provider
    hub = setup_realtime(app, registry)
    ...
    await hub.publish(PRICES, PriceChanged(symbol="ACME", price=12.5))

The hub starts and stops with the app (`cleanup_ctx`); on shutdown every client
gets close 1001 in parallel, and whatever has not closed by
`settings.close_timeout_s` is aborted, so a stuck client cannot hold the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .auth import Authenticate, Authorize
from .broker import Broker
from .closecodes import CloseCode
from .handler import HUB_KEY, realtime_handler
from .hub import Hub
from .methods import MethodRegistry
from .settings import RealtimeSettings
from .topics import TopicRegistry


def setup_realtime(
    app: web.Application,
    registry: TopicRegistry,
    *,
    broker: Broker | None = None,
    settings: RealtimeSettings | None = None,
    authenticate: Authenticate | None = None,
    authorize: Authorize | None = None,
    methods: MethodRegistry | None = None,
    path: str = "/api/realtime",
) -> Hub:
    """Mount the endpoint at `path`. `authenticate` runs before every upgrade (None:
    authentication off); `authorize` before every topic subscribed (None: allow all).
    See aiohttp_realtime.auth. `methods` are what `request` frames may call
    (aiohttp_realtime.methods; None: none)."""
    hub = Hub(
        registry,
        broker=broker,
        settings=settings,
        authenticate=authenticate,
        authorize=authorize,
        methods=methods,
    )
    app[HUB_KEY] = hub
    app.router.add_get(path, realtime_handler)

    async def run_hub(_app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(run_hub)
    app.on_shutdown.append(lambda _app: close_all(hub, CloseCode.GOING_AWAY, "server shutting down"))
    return hub


async def close_all(hub: Hub, code: int, reason: str) -> None:
    """Close every connection in parallel; each aborts itself past its deadline."""
    conns = list(hub.connections)
    for conn in conns:
        conn.close(code, reason)
    await asyncio.gather(*(conn.wait_closed() for conn in conns))
