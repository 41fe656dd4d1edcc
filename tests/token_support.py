"""Expiring tokens for the token-refresh tests (tests/test_token_refresh.py and the
attacks in tests/test_attacks_ws.py): an identity provider that mints tokens with a
lifetime and is the server's `authenticate` hook over them, mounted on the library-only
`items` app of tests/libapp.py with a scope rule.

Scopes: `read` for `items` (and `whoami`), the group's name for `items.{group}`. The
`whoami` topic's snapshot lists its subscriber's scopes: its view is the principal, so
a refresh that changes the scopes changes what its snapshot would be."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from aiohttp_realtime import (
    Hub,
    Principal,
    RealtimeSettings,
    TopicDef,
    TopicRegistry,
    request_token,
    setup_realtime,
)
from aiohttp_realtime.connection import Connection
from tests.libapp import ITEMS, ITEMS_GROUP, GatedBroker, Items, ItemSet, ItemsState

WHOAMI = TopicDef("whoami", Items, ItemSet)


class Issuer:
    """The token provider and the `authenticate` hook over what it minted. `requests`
    keeps every request the hook was given (to check what an `auth` frame hands it)."""

    def __init__(self) -> None:
        self.tokens: dict[str, Principal] = {}
        self.requests: list[web.Request] = []
        #: Make the hook raise (a token store that is down).
        self.broken = False

    def mint(
        self, id: str = "alice", scopes: Iterable[str] = ("read",), lifetime_s: float | None = 30.0
    ) -> str:
        """A new token for `id`, expiring `lifetime_s` from now (None: never)."""
        token = secrets.token_urlsafe(18)
        expires_at = None if lifetime_s is None else datetime.now(UTC) + timedelta(seconds=lifetime_s)
        self.tokens[token] = Principal(id, frozenset(scopes), expires_at)
        return token

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def __call__(self, request: web.Request) -> Principal | None:
        self.requests.append(request)
        if self.broken:
            raise RuntimeError("token store down")
        token = request_token(request)
        return None if token is None else self.tokens.get(token)


def rule(principal: Principal | None, topic: TopicDef[Any, Any], params: Mapping[str, str]) -> bool:
    if principal is None:
        return True
    if topic is ITEMS_GROUP:
        return params["group"] in principal.scopes
    return "read" in principal.scopes


def _whoami(_params: Mapping[str, str], principal: Principal | None) -> Items:
    return Items(items={scope: 1 for scope in sorted(principal.scopes if principal else ())})


def bearer(token: str) -> dict[str, dict[str, str]]:
    """`WsClient.connect` keyword arguments that send `token`."""
    return {"headers": {"Authorization": f"Bearer {token}"}}


@dataclass
class Served:
    client: TestClient[web.Request, web.Application]
    hub: Hub
    state: ItemsState
    issuer: Issuer

    @property
    def url(self) -> str:
        return str(self.client.make_url("/api/realtime"))

    def conn(self) -> Connection:
        """The one connection open now."""
        [conn] = self.hub.connections
        return conn

    async def last_seq(self, topic: str) -> int:
        return await self.hub.broker.last_seq(topic)


def build(settings: RealtimeSettings, issuer: Issuer) -> tuple[web.Application, Hub, ItemsState]:
    state = ItemsState()
    registry = TopicRegistry()
    registry.add(ITEMS, state.provider)
    registry.add(ITEMS_GROUP, state.provider)
    registry.add(WHOAMI, _whoami)
    app = web.Application()
    hub = setup_realtime(
        app, registry, broker=GatedBroker(), settings=settings, authenticate=issuer, authorize=rule
    )
    return app, hub, state


def serving(aiohttp_client: Any) -> Callable[..., Any]:
    """`await make(**settings)` -> `Served` (the body of a `served` fixture)."""

    async def make(**settings: Any) -> Served:
        issuer = Issuer()
        app, hub, state = build(RealtimeSettings(**settings), issuer)
        return Served(await aiohttp_client(app), hub, state, issuer)

    return make


@asynccontextmanager
async def publishing(
    served: Served, groups: Iterable[str] = ("a", "b"), every_s: float = 0.01
) -> AsyncIterator[None]:
    """Publish on `items` ("a") and `items.b` ("b") every `every_s` (pacing, not a
    synchronisation) until the block ends; then every event published is numbered."""
    stop = asyncio.Event()
    groups = tuple(groups)

    async def run() -> None:
        i = 0
        while not stop.is_set():
            for group in groups:
                await served.state.set(served.hub, f"k{i % 7}", i, group)
            i += 1
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        await task
