"""Test helpers: a thin WebSocket client that records every server frame.

Every frame any test receives passes through `WsClient.recv`, so the schema
contract test can check them all (see `tests/conftest.py`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp

#: Every server frame received by any WsClient in this test session, parsed.
RECEIVED_FRAMES: list[dict[str, Any]] = []

_ids = itertools.count()


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.hello: dict[str, Any] | None = None

    @classmethod
    async def connect(cls, client: Any, path: str = "/api/realtime", **kwargs: Any) -> WsClient:
        self = cls(await client.ws_connect(path, **kwargs))
        self.hello = await self.recv()
        assert self.hello["type"] == "hello"
        return self

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type!r} {msg.data!r} {msg.extra!r}")
        frame = json.loads(msg.data)
        RECEIVED_FRAMES.append(frame)
        return frame

    async def subscribe(self, *topics: str, id: str | None = None) -> None:
        await self.send({"type": "subscribe", "topics": list(topics), **({"id": id} if id else {})})

    async def unsubscribe(self, *topics: str) -> None:
        await self.send({"type": "unsubscribe", "topics": list(topics)})

    async def barrier(self) -> list[dict[str, Any]]:
        """Ping and return every frame received before the matching pong: the
        server queues the pong after everything it queued before reading the ping."""
        ping_id = f"b{next(_ids)}"
        await self.send({"type": "ping", "id": ping_id})
        frames = []
        while (frame := await self.recv()) != {"type": "pong", "id": ping_id}:
            frames.append(frame)
        return frames

    async def close(self) -> None:
        await self.ws.close()
