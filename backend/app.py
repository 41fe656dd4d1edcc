"""The demo service: the realtime library, the sessions domain, its API (over HTTP and
as realtime methods) and simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from aiohttp_realtime import BearerTokens, Broker, RealtimeSettings, setup_realtime

from .access import authorize
from .api import SERVICE_KEY, json_errors, routes
from .guard import GUARD_KEY, Guard, HttpLimits
from .health import setup_health
from .memory_store import MemoryStore
from .methods import build_methods
from .observability import setup_observability
from .openapi import OPENAPI_PATH, openapi_document, serve_openapi
from .postgres_deadlines import LOCK_TIMEOUT_S, TIMEOUT_S
from .postgres_store import PostgresStore
from .proxies import Network, TrustedProxies
from .service import SessionService
from .simulator import Simulator
from .store import Store
from .topics import build_registry
from .web import setup_web

#: Largest HTTP request body (413 beyond): a message of MAX_TEXT characters, each up to
#: 6 bytes as a JSON escape, plus its envelope.
MAX_BODY = 6 * 64 * 1024 + 4096


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    simulate: bool = True
    simulate_tick_s: float = 1.0
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    http: HttpLimits = field(default_factory=HttpLimits)
    #: None: authentication off (local development). Else every WebSocket and API
    #: request needs one of these tokens (`access.load_tokens`).
    tokens: BearerTokens | None = None
    #: Peers whose `Forwarded` / `X-Forwarded-*` headers are believed (backend/proxies.py);
    #: none: the TCP peer is the client.
    forwarded_allow_ips: tuple[Network, ...] = ()
    #: Which header those proxies write: `X-Forwarded-*` or RFC 7239 `Forwarded`.
    forwarded_header: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    #: The store's quotas by keyword (`MemoryStore` / `PostgresStore`); empty: defaults.
    store_quotas: dict[str, int] = field(default_factory=dict)
    #: None: the state in memory (one process). "postgresql://user@host:port/db": in
    #: PostgreSQL, shared by several processes or hosts (backend/postgres_store.py).
    database: str | None = None
    #: How long any read or write of the PostgreSQL store may take before it fails
    #: with 503 `unavailable` (`postgres_deadlines.py`: also its statement timeout, and
    #: how soon PostgreSQL frees the topics of a node that stalls while holding them).
    database_timeout_s: float = TIMEOUT_S
    #: None or "memory": the in-process broker (one process). "redis://host:port/db":
    #: a RedisBroker, for several processes or hosts (docs/scaling.md).
    broker_url: str | None = None
    #: Namespace of the Redis keys and channels (one per deployment).
    redis_prefix: str = "realtime:"
    #: Worker processes `python -m backend` runs on the port (backend/workers.py).
    workers: int = 1
    #: A worker's inherited listening socket (set by the parent of `--workers`).
    listen_fd: int | None = None
    #: How long a client has to send a request's headers (`python -m backend` serves
    #: with it as aiohttp's keep-alive timeout, which is also the header deadline).
    headers_timeout_s: float = 10.0
    #: `python -m backend`'s logs: "human" lines or one "json" object per line.
    log_format: str = "human"
    #: Whether `python -m backend` logs a line per HTTP request.
    access_log: bool = True


def make_broker(config: Config) -> Broker | None:
    """The broker `config` names; None for the in-process default."""
    url = config.broker_url
    if url is None or url == "memory":
        return None
    if url.startswith(("redis://", "rediss://", "unix://")):
        from aiohttp_realtime.redis_broker import RedisBroker  # the redis extra

        return RedisBroker(url, prefix=config.redis_prefix)
    raise ValueError(f"unknown broker {url!r}: expected memory or redis://host:port/db")


def make_store(config: Config) -> Store:
    """The store `config` names: PostgreSQL for a `database` URL, else in memory."""
    quotas = dict(config.store_quotas)
    if config.database is None:
        return MemoryStore(**quotas)
    timeout = config.database_timeout_s
    # PostgreSQL keeps every idempotent outcome for its window (no count or byte cap).
    for memory_only in ("max_idempotency_keys", "max_idempotency_bytes"):
        quotas.pop(memory_only, None)
    # The lock wait is part of a unit: at most the unit's timeout, 2 s by default.
    return PostgresStore(
        config.database, timeout_s=timeout, lock_timeout_s=min(LOCK_TIMEOUT_S, timeout), **quotas
    )


def build_app(
    config: Config | None = None, *, store: Store | None = None, broker: Broker | None = None
) -> web.Application:
    config = config or Config()
    broker = broker if broker is not None else make_broker(config)
    store = store if store is not None else make_store(config)
    guard = Guard(config.tokens, config.http)
    # json_errors outermost, so the guard's refusals and the handlers' errors alike are JSON;
    # serve_openapi before the guard: the document needs no token.
    # The trusted proxies' client first: every limit, log line and check below sees it.
    proxies = TrustedProxies(config.forwarded_allow_ips, config.forwarded_header)
    first = [proxies.middleware] if config.forwarded_allow_ips else []
    app = web.Application(
        middlewares=[*first, json_errors, serve_openapi, guard.middleware], client_max_size=MAX_BODY
    )
    app[GUARD_KEY] = guard
    service = SessionService(store)
    app[SERVICE_KEY] = service
    hub = setup_realtime(
        app,
        build_registry(store),
        broker=broker,
        settings=config.realtime,
        authenticate=config.tokens,
        authorize=authorize,
        methods=build_methods(service, guard),
    )
    store.bind(hub)
    app.add_routes(routes)
    app.router.add_get(OPENAPI_PATH, openapi_document)
    setup_web(app)
    setup_health(app, store)
    setup_observability(app)  # last: its middleware goes outermost

    async def run_simulator(_app: web.Application) -> AsyncIterator[None]:
        task = None
        if config.simulate:
            task = asyncio.create_task(Simulator(service, tick_s=config.simulate_tick_s).run())
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.close()

    async def run_store(_app: web.Application) -> AsyncIterator[None]:
        await store.start()  # after the hub: its outbox sweeper publishes through it
        yield
        await store.close()

    app.cleanup_ctx.append(run_store)
    app.cleanup_ctx.append(run_simulator)
    return app
