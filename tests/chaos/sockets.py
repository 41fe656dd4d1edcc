"""A raw realtime WebSocket for the chaos clients: JSON frames in and out, one reader
task that hands every frame to a callback, and the close code when it ends. Raw (not
`aiohttp_realtime.client`) so that a client sees exactly what the server sent, closes
and all, and so that thousands of frames cost the test's event loop little."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp

SUBPROTOCOL = "realtime.v1"
CONNECT_TIMEOUT_S = 10.0

Frame = dict[str, Any]


class RawSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hello: Frame) -> None:
        self.ws = ws
        self.hello = hello
        #: The close code once the connection ended (None: dropped without one).
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str) -> RawSocket:
        """Connect and read `hello`; raises aiohttp.ClientError, OSError or TimeoutError."""
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            ws = await http.ws_connect(url, protocols=(SUBPROTOCOL,), autoping=True, max_msg_size=0)
            try:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise aiohttp.ClientConnectionError(f"no hello: {msg.type!r} {ws.close_code}")
                hello = json.loads(msg.data)
                if hello.get("type") != "hello":
                    raise aiohttp.ClientConnectionError(f"expected hello, got {hello}")
            except BaseException:
                await ws.close()
                raise
        return cls(ws, hello)

    def read_into(self, on_frame: Callable[[Frame], None]) -> None:
        """Start the reader: `on_frame` for every frame, `closed` set at the end."""
        self._reader = asyncio.create_task(self._read(on_frame))

    async def _read(self, on_frame: Callable[[Frame], None]) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    on_frame(json.loads(msg.data))
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    break
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def send(self, frame: Frame) -> bool:
        """False if the connection is gone."""
        try:
            await self.ws.send_str(json.dumps(frame))
            return True
        except (aiohttp.ClientError, OSError, RuntimeError):
            return False

    async def close(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with asyncio.timeout(2):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
