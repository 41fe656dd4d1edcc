"""Embedding: mount the realtime endpoint on any aiohttp application.

    PRICES = TopicDef("prices", Prices, PriceChanged)          # declared once, typed
    registry = TopicRegistry()
    registry.add(PRICES, current_prices)                      # bound to its snapshot provider
    hub = setup_realtime(app, registry)
    ...
    await hub.publish(PRICES, PriceChanged(symbol="ACME", price=12.5))

The hub starts and stops with the app (`cleanup_ctx`). On shutdown (`shutdown`)
every client gets close 1012 with a reconnect window, in batches spread over
`settings.shutdown_spread_s`, and whatever has not closed by
`settings.close_timeout_s` after its batch is aborted, so a stuck client cannot
hold the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .auth import Authenticate, Authorize
from .broker import Broker
from .closecodes import CloseCode, reconnect_hint
from .handler import HUB_KEY, realtime_handler
from .hub import Hub
from .methods import MethodRegistry
from .settings import RealtimeSettings
from .sse import sse_handler
from .sse_forward import setup_forwarding, sse_post
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
    """Mount the endpoint at `path` (and the SSE transport's at `path/sse`, sse.py).
    `authenticate` runs before every upgrade (None: authentication off); `authorize`
    before every topic subscribed (None: allow all).
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
    # The SSE transport (sse.py), for networks that break WebSocket upgrades.
    app.router.add_get(f"{path}/sse", sse_handler)
    # A POST for a stream another node holds is forwarded there (sse_forward.py).
    setup_forwarding(app, hub)
    app.router.add_post(f"{path}/sse/{{connection_id}}", sse_post)

    async def run_hub(_app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(run_hub)
    app.on_shutdown.append(lambda _app: shutdown(hub))
    return hub


#: Fewer connections than this are closed in one batch: no herd to spread.
MIN_BATCH = 100


async def shutdown(hub: Hub) -> None:
    """Close every client for a restart: 1012 with the reconnect window
    (`settings.reconnect_window_s`), in batches over `settings.shutdown_spread_s`.
    Both halves spread the storm of resubscribes a deploy causes: the server
    closes in batches, and each client draws its delay within the window."""
    settings = hub.settings
    reason = reconnect_hint("server restarting", round(settings.reconnect_window_s * 1000))
    await close_all(
        hub,
        CloseCode.SERVICE_RESTART,
        reason,
        spread_s=settings.shutdown_spread_s,
        batches=settings.shutdown_batches,
    )


async def close_all(hub: Hub, code: int, reason: str, *, spread_s: float = 0.0, batches: int = 1) -> None:
    """Close every connection: in `batches` (of at least `MIN_BATCH`) spread evenly over
    `spread_s`, each batch at once; each connection aborts itself past its deadline."""
    conns = list(hub.connections)
    size = max(MIN_BATCH, -(-len(conns) // max(1, batches)))
    steps = [conns[i : i + size] for i in range(0, len(conns), size)]
    for i, batch in enumerate(steps):
        if i:
            await asyncio.sleep(spread_s / len(steps))  # pacing, not a synchronisation
        for conn in batch:
            conn.close(code, reason)
    await asyncio.gather(*(conn.wait_closed() for conn in conns))
