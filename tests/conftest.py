from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aiohttp_realtime import RealtimeSettings
from backend.app import Config, build_app

AppClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def demo_client(aiohttp_client: Any) -> AppClient:
    """A test client for the demo app without the simulator; settings overridable."""

    async def make(**settings: Any) -> TestClient[web.Request, web.Application]:
        config = Config(simulate=False, realtime=RealtimeSettings(**settings))
        client: TestClient[web.Request, web.Application] = await aiohttp_client(build_app(config))
        return client

    return make


@pytest.fixture
def lib_client(aiohttp_client: Any) -> Callable[..., Awaitable[Any]]:
    """(client, hub, state, broker) for the library-only `items` app of tests/libapp.py."""
    from tests.libapp import build_lib_app

    async def make(**settings: Any) -> Any:
        app, hub, state, broker = build_lib_app(RealtimeSettings(**settings))
        return await aiohttp_client(app), hub, state, broker

    return make
