"""The reconnect-storm bench's clients: one worker process, many raw asyncio clients.

    python -m scripts.bench.storm_loadgen [CPU] [--nice N]   (started by `scripts.bench.storm`)

Like `scripts.bench.loadgen` (its handshake, source binding and reset-on-close), but
for the storm: a ``storm`` client subscribes to ``storm`` and checks its ~200 KB
snapshot byte for byte against `storm_server.storm_snapshot_text` *as it streams in*
(compared chunk by chunk, never held: 10,000 clients mid-read would otherwise hold
2 GB here), then only answers pings; a ``live`` client subscribes to ``live``, checks
that events arrive as seq 1, 2, ... and records, per event, the publisher's stamp and
``monotonic_ns()`` at arrival minus it. Anything else - a close, an error frame, a
second snapshot, a lost connection, a refused handshake - fails the worker.

The driver talks to a worker with one JSON object per line on stdin, one answer per
line on stdout:

- ``{"cmd": "live", "port", "count", "source"}``: open `count` live clients, wait
  until each holds its snapshot.
- ``{"cmd": "storm", "port", "count", "sources", "start_at", "timeout"}``: create and
  bind `count` sockets (client i from ``sources[i % len(sources)]``), then at
  ``start_at`` (monotonic ns) connect them all at once, without a limit in flight;
  answers when every client holds its snapshot: ``done_ns`` (the last one's time),
  ``late_ns`` (how far after ``start_at`` the connects began).
- ``{"cmd": "wait", "events", "timeout"}``: until every live client has events
  1..events; answers the stamps and latencies (base64 of int64 ns / int32 µs).
- ``{"cmd": "check"}``: whether anything failed since (e.g. a storm client closed
  after its snapshot).
- ``{"cmd": "close"}``: abort every connection (RST: no TIME_WAIT left behind).
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

from scripts.bench.common import pin_to_cpu, raise_nofile_limit
from scripts.bench.loadgen import IP_BIND_ADDRESS_NO_PORT, LINGER_RESET, WS_ACCEPT, WS_KEY
from scripts.bench.storm_server import (
    LIVE_EVENT_PREFIX,
    LIVE_SNAPSHOT_TEXT,
    SUBSCRIBE_LIVE,
    SUBSCRIBE_STORM,
    storm_snapshot_text,
)

STAMP = b'"t":'
EVENT = LIVE_EVENT_PREFIX.encode()
LIVE_SNAPSHOT = LIVE_SNAPSHOT_TEXT.encode()
#: Frames up to this size are buffered and parsed whole; a bigger one can only be the
#: storm snapshot, and is compared as it streams in.
SMALL = 1 << 14


class StormProtocolError(Exception):
    pass


class Worker:
    """This process's connections and what they have received."""

    def __init__(self) -> None:
        self.snapshot = storm_snapshot_text().encode()
        self.reset()

    def reset(self) -> None:
        self.clients: list[Client] = []
        self.live: list[Client] = []
        self.pending = 0
        self.done_ns = 0
        self.stamps = array.array("q")
        self.latencies = array.array("i")
        self.error: str | None = None
        self.changed = asyncio.Event()

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.changed.set()

    def snapshot_held(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.done_ns = time.monotonic_ns()
        self.changed.set()

    async def until(self, ready: Any, timeout: float) -> None:
        """Until `ready()` or a failure; raises on a failure or the timeout."""
        deadline = time.monotonic() + timeout
        while self.error is None and not ready():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise StormProtocolError(f"timed out after {timeout:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        if self.error is not None:
            raise StormProtocolError(self.error)


class Client(asyncio.Protocol):
    """One WebSocket client: the handshake, then frames. ``live``: the live topic."""

    __slots__ = (
        "aborted",
        "buf",
        "held",
        "last_seq",
        "live",
        "open",
        "request",
        "streamed",
        "transport",
        "worker",
    )

    def __init__(self, worker: Worker, request: bytes, live: bool) -> None:
        self.worker = worker
        self.request = request
        self.live = live
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.held = False  # has its snapshot
        self.aborted = False  # by this side: its connection's loss is no failure
        self.last_seq = 0
        #: Inside the storm snapshot's payload: how much of it has been compared (-1: not in it).
        self.streamed = -1

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.aborted:
            what = "live, after seq " + str(self.last_seq) if self.live else "storm"
            held = "holding its snapshot" if self.held else "before its snapshot"
            self.worker.fail(f"a {what} client lost its connection {held} ({exc or 'closed by the server'})")

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except (StormProtocolError, ValueError) as exc:
            self.worker.fail(str(exc))
            self.abort()

    # ------------------------------------------------------------ parsing

    def _received(self, data: bytes) -> None:
        pos = 0
        if self.streamed >= 0:
            pos = self._stream(data, 0)
            if pos == len(data):
                return
        if self.buf:
            data = self.buf + data[pos:]
            self.buf = b""
            pos = 0
        if not self.open:
            end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                self.buf = data[pos:]
                return
            head = data[pos:end]
            if not head.startswith(b"HTTP/1.1 101") or WS_ACCEPT not in head:
                raise StormProtocolError(f"handshake refused: {head[:200]!r}")
            self.open = True
            pos = end + 4
            self._send(0x81, (SUBSCRIBE_LIVE if self.live else SUBSCRIBE_STORM).encode())
        n = len(data)
        while n - pos >= 2:
            length = data[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            else:
                raise StormProtocolError("a masked frame from the server")
            if length > SMALL:
                self._big(data[pos], length)
                pos = self._stream(data, start)
                continue
            end = start + length
            if end > n:
                break
            self._frame(data[pos], data[start:end])
            pos = end
        if pos < n:
            self.buf = data[pos:]

    def _big(self, opcode: int, length: int) -> None:
        """A frame too big to be anything but the storm snapshot: it must be that."""
        expected = len(self.worker.snapshot)
        if opcode != 0x81 or self.live or self.held or length != expected:
            raise StormProtocolError(
                f"unexpected frame of {length} bytes (opcode {opcode:#x}); the snapshot is {expected}"
            )
        self.streamed = 0

    def _stream(self, data: bytes, pos: int) -> int:
        """Compare what `data` holds of the snapshot from `pos` on; returns where it ends."""
        snapshot = self.worker.snapshot
        take = min(len(data) - pos, len(snapshot) - self.streamed)
        part = data if pos == 0 and take == len(data) else data[pos : pos + take]
        if not snapshot.startswith(part, self.streamed):
            at = self.streamed + next(i for i, b in enumerate(part) if b != snapshot[self.streamed + i])
            raise StormProtocolError(f"the storm snapshot differs at byte {at}: {part[:80]!r}")
        self.streamed += take
        if self.streamed == len(snapshot):
            self.streamed = -1
            self.held = True
            self.worker.snapshot_held()
        return pos + take

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x81 and self.live and payload.startswith(EVENT):
            now = time.monotonic_ns()
            comma = payload.index(b",", len(EVENT))
            seq = int(payload[len(EVENT) : comma])
            if seq != self.last_seq + 1 or not self.held:
                raise StormProtocolError(f"live: expected seq {self.last_seq + 1}, got {payload[:120]!r}")
            self.last_seq = seq
            stamp_at = payload.index(STAMP, comma) + len(STAMP)
            stamp = int(payload[stamp_at : payload.index(b",", stamp_at)])
            self.worker.stamps.append(stamp)
            self.worker.latencies.append((now - stamp) // 1000)
            self.worker.changed.set()
        elif opcode == 0x89:  # ping
            self._send(0x8A, payload)
        elif opcode == 0x8A:  # pong
            pass
        elif opcode == 0x88:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            raise StormProtocolError(f"closed by the server ({code} {payload[2:].decode(errors='replace')})")
        elif opcode != 0x81:
            raise StormProtocolError(f"unexpected frame opcode {opcode:#x}")
        elif payload.startswith(b'{"type":"hello"') and not self.held:
            pass  # the hub's; the floor sends none
        elif self.live and payload == LIVE_SNAPSHOT and not self.held:
            self.held = True
            self.worker.snapshot_held()
        else:
            raise StormProtocolError(f"unexpected frame {payload[:160]!r}")

    # ------------------------------------------------------------ sending

    def _send(self, first: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes((first, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0): neither side is left in TIME_WAIT."""
        self.aborted = True
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            self.transport.abort()


# ---------------------------------------------------------------- commands


def _request(port: int) -> bytes:
    return (
        f"GET /api/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _bound(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open(worker: Worker, sock: socket.socket, port: int, request: bytes, live: bool) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    _transport, client = await loop.create_connection(lambda: Client(worker, request, live), sock=sock)
    (worker.live if live else worker.clients).append(client)


async def _connect_all(worker: Worker, socks: list[socket.socket], port: int, live: bool) -> str | None:
    """Connect every socket at once; the first error, if any."""
    request = _request(port)
    results = await asyncio.gather(
        *(_open(worker, s, port, request, live) for s in socks), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    return f"{len(errors)} of {len(socks)} connects failed: {errors[0]!r}" if errors else None


async def live(worker: Worker, cmd: dict[str, Any]) -> dict[str, Any]:
    count = int(cmd["count"])
    worker.pending += count
    error = await _connect_all(worker, [_bound(cmd["source"]) for _ in range(count)], cmd["port"], True)
    if error:
        return {"error": error}
    await worker.until(lambda: all(c.held for c in worker.live), 60)
    return {"ok": True, "connected": len(worker.live)}


async def storm(worker: Worker, cmd: dict[str, Any]) -> dict[str, Any]:
    count, sources = int(cmd["count"]), list(cmd["sources"])
    socks = [_bound(sources[i % len(sources)]) for i in range(count)]
    worker.pending += count
    worker.done_ns = 0
    wait = (int(cmd["start_at"]) - time.monotonic_ns()) / 1e9
    if wait > 0:
        await asyncio.sleep(wait)
    late = time.monotonic_ns() - int(cmd["start_at"])
    error = await _connect_all(worker, socks, cmd["port"], False)
    if error:
        return {"error": error}
    await worker.until(lambda: worker.pending == 0, float(cmd["timeout"]))
    return {"ok": True, "done_ns": worker.done_ns, "late_ns": late, "connected": len(worker.clients)}


async def wait(worker: Worker, cmd: dict[str, Any]) -> dict[str, Any]:
    events = int(cmd["events"])
    await worker.until(lambda: all(c.last_seq >= events for c in worker.live), float(cmd["timeout"]))
    over = [c.last_seq for c in worker.live if c.last_seq != events]
    if over:
        return {"error": f"live clients got seq {max(over)}, more than the {events} published"}
    return {
        "ok": True,
        "stamps": base64.b64encode(worker.stamps.tobytes()).decode(),
        "latencies": base64.b64encode(worker.latencies.tobytes()).decode(),
    }


def close(worker: Worker) -> dict[str, Any]:
    for client in [*worker.clients, *worker.live]:
        client.abort()
    worker.reset()
    return {"ok": True}


async def main() -> None:
    raise_nofile_limit()
    args = sys.argv[1:]
    if "--nice" in args:
        at = args.index("--nice")
        os.nice(int(args[at + 1]))
        del args[at : at + 2]
    if args:
        pin_to_cpu(int(args[0]))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "live":
                reply = await live(worker, cmd)
            elif cmd["cmd"] == "storm":
                reply = await storm(worker, cmd)
            elif cmd["cmd"] == "wait":
                reply = await wait(worker, cmd)
            elif cmd["cmd"] == "check":
                reply = {"error": worker.error} if worker.error else {"ok": True}
            elif cmd["cmd"] == "close":
                reply = close(worker)
            else:
                reply = {"error": f"unknown command {cmd['cmd']!r}"}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    close(worker)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
