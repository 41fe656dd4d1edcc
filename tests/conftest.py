from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backend.app import Config, build_app
from backend.realtime import RealtimeSettings

AppClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def demo_client(aiohttp_client: Any) -> AppClient:
    """A test client for the demo app without the simulator; settings overridable."""

    async def make(**settings: Any) -> TestClient:
        config = Config(simulate=False, realtime=RealtimeSettings(**settings))
        return await aiohttp_client(build_app(config))

    return make
