"""Test helpers: a thin WebSocket client that records every server frame.

Every frame any test receives passes through `WsClient.recv`, which validates it
against the committed `schemas/` (`SCHEMA_CONTRACT`): the published schema cannot
lie about what the server sends (see `tests/test_schema_contract.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

#: Every server frame received by any WsClient in this test session, parsed.
RECEIVED_FRAMES: list[dict[str, Any]] = []

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


class SchemaContract:
    """Checks server frames against the published JSON Schema alone, never the server's
    models: the envelope against `server-message.json` and, when the topic is in
    `topics.json`, the payload against its topic's snapshot or event schema. Topics not
    published there (the library-only test app's) are checked for the envelope only."""

    def __init__(self, directory: Path = SCHEMAS) -> None:
        server = json.loads((directory / "server-message.json").read_text())
        self.frame = jsonschema.Draft202012Validator(server)
        # One validator per frame type too: errors then name the field, not just "oneOf".
        self.by_type = {
            d["properties"]["type"]["const"]: jsonschema.Draft202012Validator(
                {"$ref": f"#/$defs/{name}", "$defs": server["$defs"]}
            )
            for name, d in server["$defs"].items()
            if "const" in d.get("properties", {}).get("type", {})
        }
        topics = json.loads((directory / "topics.json").read_text())
        self.topics: list[tuple[re.Pattern[str], dict[str, jsonschema.Draft202012Validator]]] = []
        for pattern, ref in topics["properties"].items():
            regex = re.compile(".+".join(re.escape(part) for part in re.split(r"\{[^}]*\}", pattern)))
            self.topics.append(
                (
                    regex,
                    {
                        kind: jsonschema.Draft202012Validator(
                            {"$ref": f"{ref['$ref']}/properties/{kind}", "$defs": topics["$defs"]}
                        )
                        for kind in ("snapshot", "event")
                    },
                )
            )

    def check(self, frame: Any) -> None:
        """Raise AssertionError, naming every violation, if `frame` breaks the schema."""
        kind = frame.get("type") if isinstance(frame, dict) else None
        validator = self.by_type.get(kind, self.frame) if isinstance(kind, str) else self.frame
        errors = [
            f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
            for e in validator.iter_errors(frame)
        ]
        if not errors and frame["type"] in ("snapshot", "event"):
            for regex, validators in self.topics:
                if regex.fullmatch(frame["topic"]):
                    errors = [
                        f"payload/{'/'.join(map(str, e.absolute_path))}: {e.message}"
                        for e in validators[frame["type"]].iter_errors(frame["payload"])
                    ]
        if errors:
            raise AssertionError(f"server frame breaks schemas/: {'; '.join(errors)}\n{frame}")


SCHEMA_CONTRACT = SchemaContract()

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
        frame: dict[str, Any] = json.loads(msg.data)
        RECEIVED_FRAMES.append(frame)
        SCHEMA_CONTRACT.check(frame)
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


class StuckClient:
    """A raw-socket WebSocket client that subscribes and then never reads again:
    a peer whose kernel buffers fill up, as a frozen tab or a dead network does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, host: str, port: int, topics: list[str], origin: str | None = None) -> StuckClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small window, fills fast
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        request = (
            f"GET /api/realtime HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n" + (f"Origin: {origin}\r\n" if origin else "") + "\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 1)  # byte by byte: read nothing past the headers
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        payload = json.dumps({"type": "subscribe", "topics": topics}).encode()
        await loop.sock_sendall(sock, masked_text_frame(payload))
        return cls(sock)

    async def send_close(self) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, masked_frame(0x8, b"\x03\xe8"))

    def close(self) -> None:
        self.sock.close()


async def until(condition: Callable[[], bool], *, timeout: float = 10) -> None:
    """Yield to the event loop until `condition()` holds (checked after every loop
    iteration, never on a timer), for states that have no event of their own."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - no event exists for these states
            await asyncio.sleep(0)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame with an all-zero mask (valid, and leaves the payload as is)."""
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    return header + b"\x00\x00\x00\x00" + payload


def masked_text_frame(payload: bytes) -> bytes:
    return masked_frame(0x1, payload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def run_until_serving(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a server process until it prints "serving on"; killed on exit unless the test
    already ended it."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            seen = b""
            while b"serving on" not in (line := await proc.stdout.readline()):
                seen += line
                assert line, f"server exited before serving: {seen.decode(errors='replace')}"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def backend_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """`python -m backend --no-simulate` on a free port, once it serves."""
    port = free_port()
    cmd = [sys.executable, "-m", "backend", "--port", str(port), "--no-simulate", *args]
    async with run_until_serving(cmd) as proc:
        yield proc, port
