"""A light WebSocket (and SSE) load generator: one worker process, many raw asyncio clients.

    python -m scripts.bench.loadgen   (started by `scripts.bench.fanout`, several at once)

No aiohttp per connection: each client is an `asyncio.Protocol` with a hand-written
client handshake (RFC 6455 §4.1, one fixed key) and frame parser, so that 10,000
connections fit in a few processes and the clients cost little per frame. Per event
frame a client checks only what the delivery check needs: the frame starts with the
expected event prefix, and the seq that follows is the previous one + 1 (no gap, no
duplicate, nothing out of order); the rest of the JSON is not parsed. A latency run
also reads the publisher's stamp ``"t":`` and records ``monotonic_ns() - t`` taken
when the bytes arrived.

Each connection binds its source address first (``IP_BIND_ADDRESS_NO_PORT``, so the
port is chosen at connect time by the whole 4-tuple), and workers use different
loopback addresses (127.0.0.2, 127.0.0.3, ...), which keeps 10,000 connections
clear of ephemeral-port exhaustion.

The driver talks to a worker with one JSON object per line on stdin, one answer per
line on stdout:

- ``{"cmd": "connect", "port", "path", "kind", "count", "source", "concurrency",
  "expected", "latency"}``: open `count` connections, subscribe each, wait until all
  have their snapshot. ``kind`` is ``"json"`` (the hub's protocol, which the other
  modes mimic), ``"socketio"`` (engine.io/socket.io over a WebSocket) or ``"sse"``
  (the hub's protocol over Server-Sent Events: `SseClient` GETs the stream at
  `path`, reads the `hello`, POSTs the subscribe to ``<path>/<connection_id>`` with
  the hello's secret on a short connection of its own, then reads ``data:`` events,
  checked like the WebSocket's frames).
- ``{"cmd": "wait", "timeout"}``: until every connection has received events
  1..expected; answers the total received, the first event frame seen (to check it
  byte for byte) and, for a latency run, the latencies in µs (base64 of int32s).
- ``{"cmd": "close"}``: abort every connection (RST: no TIME_WAIT left behind).

Any protocol violation, close or seq error fails the worker's next answer.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import json
import re
import socket
import struct
import sys
import time
from typing import Any

from scripts.bench.common import (
    EVENT_PREFIX,
    SNAPSHOT_TEXT,
    SUBSCRIBE_TEXT,
    pin_to_cpu,
    raise_nofile_limit,
)

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key: one for every connection
WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # its Sec-WebSocket-Accept

#: Per kind: the prefix of every event frame, up to the seq's digits.
EVENT_PREFIXES = {
    "json": EVENT_PREFIX.encode(),
    "socketio": b'42["e",' + EVENT_PREFIX.encode(),
}
SNAPSHOTS = {
    "json": SNAPSHOT_TEXT.encode(),
    "socketio": b'42["s",' + SNAPSHOT_TEXT.encode() + b"]",
}
STAMP = b'"t":'


class BenchProtocolError(Exception):
    pass


class Worker:
    """This process's connections and what they have to receive."""

    def __init__(self) -> None:
        self.clients: list[Client | SseClient] = []
        #: SSE clients' subscribe POSTs in flight.
        self.posts: set[asyncio.Future[None]] = set()
        self.kind = "json"
        self.expected = 0
        self.pending = 0
        self.latency = False
        self.latencies = array.array("i")
        self.sample: bytes | None = None
        self.error: str | None = None
        self.closing = False
        self.complete = asyncio.Event()
        self.failed = asyncio.Event()

    def fail(self, message: str) -> None:
        if self.error is None and not self.closing:
            self.error = message
            self.failed.set()

    def client_done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.complete.set()

    def reset(self, kind: str, expected: int, latency: bool) -> None:
        self.clients = []
        self.posts = set()
        self.kind, self.expected, self.latency = kind, expected, latency
        self.pending = 0
        self.latencies = array.array("i")
        self.sample = None
        self.error = None
        self.closing = False
        self.complete = asyncio.Event()
        self.failed = asyncio.Event()


class Subscriber(asyncio.Protocol):
    """What both subscribers (WebSocket, SSE) do the same: send the request when the
    connection is made, parse what arrives (`_received`, theirs), and fail the worker
    on a protocol error or a connection lost while it is not closing."""

    __slots__ = ("buf", "last_seq", "open", "request", "subscribed", "transport", "worker")
    #: What the connection is called in a failure ("connection", "stream").
    WHAT = "connection"

    def __init__(self, worker: Worker, request: bytes) -> None:
        self.worker = worker
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.last_seq = 0
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.worker.closing:
            self._fail(f"{self.WHAT} lost after seq {self.last_seq} ({exc or 'closed by the server'})")

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except (BenchProtocolError, ValueError) as exc:
            self._fail(str(exc))

    def _received(self, data: bytes) -> None:
        """Parse what arrived (each transport's framing); call `_numbered` per event."""
        raise NotImplementedError  # abstract: Client and SseClient define it

    def _numbered(self, data: bytes, start: int, seq_at: int, end: int, now: int, text_at: int) -> None:
        """One event, `data[start:end]`, its seq at `seq_at` (after the event prefix) and
        its JSON text from `text_at`: in order, within what was published, and its
        publish->receive latency recorded in a latency run (`now`, ns; 0 otherwise)."""
        worker = self.worker
        comma = data.index(b",", seq_at, end)
        seq = int(data[seq_at:comma])
        if seq != self.last_seq + 1 or not self.subscribed.done():
            raise BenchProtocolError(
                f"expected seq {self.last_seq + 1}, got {data[start : min(end, start + 120)]!r}"
            )
        self.last_seq = seq
        if seq == worker.expected:
            worker.client_done()
        elif seq > worker.expected:
            raise BenchProtocolError(f"seq {seq}: more than the {worker.expected} published")
        if now:
            stamp = data.index(STAMP, comma, end) + len(STAMP)
            worker.latencies.append((now - int(data[stamp : data.index(b",", stamp, end)])) // 1000)
        if worker.sample is None:
            worker.sample = data[text_at:end]

    def _fail(self, message: str) -> None:
        self.worker.fail(message)
        if not self.subscribed.done():
            self.subscribed.set_exception(BenchProtocolError(message))

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0): neither side is left in TIME_WAIT."""
        if self.transport is not None:
            reset(self.transport)


class Client(Subscriber):
    __slots__ = ("event_prefix",)

    def __init__(self, worker: Worker, request: bytes) -> None:
        super().__init__(worker, request)
        self.event_prefix = EVENT_PREFIXES[worker.kind]

    # ------------------------------------------------------------ parsing

    def _received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end]
            if not head.startswith(b"HTTP/1.1 101") or WS_ACCEPT not in head:
                raise BenchProtocolError(f"handshake refused: {head[:200]!r}")
            self.open = True
            data = data[end + 4 :]
            if self.worker.kind == "json":
                self.send_text(SUBSCRIBE_TEXT.encode())
        worker = self.worker
        now = time.monotonic_ns() if worker.latency else 0
        prefix = self.event_prefix
        plen = len(prefix)
        pos, n = 0, len(data)
        while n - pos >= 2:
            length = data[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            else:
                raise BenchProtocolError("a masked frame from the server")
            end = start + length
            if end > n:
                break
            if data[pos] == 0x81 and data.startswith(prefix, start):
                # The fast path: an event. Only its seq is parsed.
                self._numbered(data, start, start + plen, end, now, start)
            else:
                self._frame(data[pos], data[start:end])
            pos = end
        if pos < n:
            self.buf = data[pos:]

    def _frame(self, opcode: int, payload: bytes) -> None:
        """Anything but an event: hello, snapshot, socket.io's handshake, control frames."""
        if opcode == 0x89:  # ping
            self._send(0x8A, payload)
        elif opcode == 0x8A:  # pong
            pass
        elif opcode == 0x88:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            raise BenchProtocolError(f"closed by the server ({code} {payload[2:].decode(errors='replace')})")
        elif opcode != 0x81:
            raise BenchProtocolError(f"unexpected frame opcode {opcode:#x}")
        elif payload == SNAPSHOTS[self.worker.kind]:
            if self.subscribed.done():
                raise BenchProtocolError("a second snapshot")
            self.subscribed.set_result(None)
        elif self.worker.kind == "json":
            if not payload.startswith(b'{"type":"hello"'):
                raise BenchProtocolError(f"unexpected frame {payload[:120]!r}")
        elif payload == b"2":  # engine.io ping
            self.send_text(b"3")
        elif payload.startswith(b"0{"):  # engine.io open: join the default namespace
            self.send_text(b"40")
        elif payload.startswith(b"40"):  # namespace joined: subscribe
            self.send_text(b'42["subscribe"]')
        else:
            raise BenchProtocolError(f"unexpected frame {payload[:120]!r}")

    # ------------------------------------------------------------ sending

    def send_text(self, text: bytes) -> None:
        self._send(0x81, text)

    def _send(self, first: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes((first, 0x80 | len(payload))) + b"\0\0\0\0" + payload)


# ---------------------------------------------------------------- SSE

SSE_DATA = b"data: "
SSE_EVENT_PREFIX = SSE_DATA + EVENT_PREFIX.encode()
HELLO_ID = re.compile(rb'"connection_id":"([^"]+)"')
HELLO_SECRET = re.compile(rb'"sse_secret":"([^"]+)"')


class SseClient(Subscriber):
    """One SSE subscriber: the stream's response head, its body (de-chunked when the
    server sends ``Transfer-Encoding: chunked``), then events separated by a blank
    line. An event (``data: {"type":"event",...}``) is checked as the WebSocket's
    frames are (its seq, and its stamp in a latency run); comments (``: ping``) are
    skipped; the ``hello`` starts the subscribe (`_subscribe`, a POST of its own);
    the snapshot completes it; ``event: close`` or anything else fails the worker."""

    __slots__ = ("body", "chunk_left", "chunked", "crlf_left", "host")
    WHAT = "stream"

    def __init__(self, worker: Worker, request: bytes, host: tuple[str, int, str, str]) -> None:
        super().__init__(worker, request)  # `buf`: undecoded bytes (a partial chunk header, or the head)
        self.host = host  # (address, port, source address, POST path prefix)
        self.body = b""  # decoded body: a partial event
        self.chunked = False
        self.chunk_left = 0  # data bytes of the current chunk still to come
        self.crlf_left = 0  # then its CRLF

    # ------------------------------------------------------------ parsing

    def _received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end].lower()
            if not head.startswith(b"http/1.1 200") or b"text/event-stream" not in head:
                raise BenchProtocolError(f"stream refused: {data[:300]!r}")
            self.open = True
            self.chunked = b"transfer-encoding: chunked" in head
            data = data[end + 4 :]
        if self.chunked:
            data = self._dechunked(data)
        if self.body:
            data = self.body + data
        self._events(data)

    def _dechunked(self, data: bytes) -> bytes:
        """The chunks' contents in `data`; a partial chunk header is kept in `buf`."""
        out = []
        pos, n = 0, len(data)
        while pos < n:
            if self.chunk_left:  # the chunk's data
                take = min(self.chunk_left, n - pos)
                out.append(data[pos : pos + take])
                pos += take
                self.chunk_left -= take
                if not self.chunk_left:
                    self.crlf_left = 2
            elif self.crlf_left:  # the CRLF after a chunk's data
                take = min(self.crlf_left, n - pos)
                pos += take
                self.crlf_left -= take
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self.buf = data[pos:]
                    break
                size = int(data[pos:eol].split(b";", 1)[0], 16)
                if size == 0:
                    raise BenchProtocolError(f"the stream ended after seq {self.last_seq}")
                self.chunk_left = size
                pos = eol + 2
        return b"".join(out)

    def _events(self, data: bytes) -> None:
        worker = self.worker
        now = time.monotonic_ns() if worker.latency else 0
        prefix, plen = SSE_EVENT_PREFIX, len(SSE_EVENT_PREFIX)
        pos = 0
        while True:
            end = data.find(b"\n\n", pos)
            if end < 0:
                break
            if data.startswith(prefix, pos):
                self._numbered(data, pos, pos + plen, end, now, pos + len(SSE_DATA))
            else:
                self._event(data[pos:end])
            pos = end + 2
        self.body = data[pos:]

    def _event(self, event: bytes) -> None:
        if event.startswith(b":"):  # a comment: the heartbeat
            return
        if not event.startswith(SSE_DATA):
            raise BenchProtocolError(f"unexpected event {event[:200]!r}")
        payload = event[len(SSE_DATA) :]
        if payload == SNAPSHOTS["json"]:
            if self.subscribed.done():
                raise BenchProtocolError("a second snapshot")
            self.subscribed.set_result(None)
        elif payload.startswith(b'{"type":"hello"'):
            found_id, found_secret = HELLO_ID.search(payload), HELLO_SECRET.search(payload)
            if found_id is None or found_secret is None:
                raise BenchProtocolError(f"a hello without connection_id or sse_secret: {payload[:300]!r}")
            task = asyncio.ensure_future(self._subscribe(found_id.group(1), found_secret.group(1)))
            task.add_done_callback(self._subscribed)
            self.worker.posts.add(task)
        else:
            raise BenchProtocolError(f"unexpected event {event[:200]!r}")

    # ------------------------------------------------------------ the POST

    async def _subscribe(self, connection_id: bytes, secret: bytes) -> None:
        """POST the subscribe on a connection of its own, read the 202, close with a reset."""
        address, port, source, path = self.host
        body = SUBSCRIBE_TEXT.encode()
        request = (
            b"POST %s/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"X-Realtime-Secret: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), connection_id, address.encode(), port, secret, len(body), body)
        )
        reader, writer = await open_from(address, port, source)
        try:
            writer.write(request)
            status = await reader.readline()
            if not status.startswith(b"HTTP/1.1 202"):
                rest = await asyncio.wait_for(reader.read(500), 5)
                raise BenchProtocolError(f"POST refused: {(status + rest)[:400]!r}")
        finally:
            reset(writer.transport)

    def _subscribed(self, task: asyncio.Future[None]) -> None:
        self.worker.posts.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(f"subscribe: {exc!r}")


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a reset (SO_LINGER 0): neither side is left in TIME_WAIT."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    transport.abort()


async def bound_socket(address: str, port: int, source: str) -> socket.socket:
    """A connected non-blocking socket from `source` (port chosen at connect time)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        await loop.sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_from(
    address: str, port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(sock=await bound_socket(address, port, source))


# ---------------------------------------------------------------- commands


async def connect(worker: Worker, cmd: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    worker.reset(cmd["kind"], cmd["expected"], cmd.get("latency", False))
    host, port, source = "127.0.0.1", cmd["port"], cmd.get("source", "127.0.0.1")
    path = cmd["path"]
    if cmd["kind"] == "sse":
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
    else:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    gate = asyncio.Semaphore(cmd.get("concurrency", 50))

    def made() -> Client | SseClient:
        if cmd["kind"] == "sse":
            return SseClient(worker, request, (host, port, source, path))
        return Client(worker, request)

    async def one() -> None:
        async with gate:
            sock = await bound_socket(host, port, source)
            _transport, client = await loop.create_connection(made, sock=sock)
            worker.clients.append(client)
            worker.pending += 1
            await client.subscribed

    results = await asyncio.gather(*(one() for _ in range(cmd["count"])), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        return {"error": f"{len(errors)} of {cmd['count']} connections failed: {errors[0]!r}"}
    if worker.error:
        return {"error": worker.error}
    if worker.expected == 0:
        worker.complete.set()
    return {"ok": True, "connected": len(worker.clients)}


async def wait(worker: Worker, cmd: dict[str, Any]) -> dict[str, Any]:
    complete = asyncio.ensure_future(worker.complete.wait())
    failed = asyncio.ensure_future(worker.failed.wait())
    try:
        await asyncio.wait({complete, failed}, timeout=cmd["timeout"], return_when=asyncio.FIRST_COMPLETED)
    finally:
        complete.cancel()
        failed.cancel()
    received = sum(c.last_seq for c in worker.clients)
    if worker.error:
        return {"error": worker.error, "received": received}
    if not worker.complete.is_set():
        total = len(worker.clients) * worker.expected
        return {"error": f"timed out after {cmd['timeout']}s: {received} of {total} frames"}
    return {
        "ok": True,
        "received": received,
        "sample": (worker.sample or b"").decode("latin-1"),
        "latencies": base64.b64encode(worker.latencies.tobytes()).decode() if worker.latency else "",
    }


def close(worker: Worker) -> dict[str, Any]:
    worker.closing = True
    for post in worker.posts:
        post.cancel()
    for client in worker.clients:
        client.abort()
    worker.clients = []
    return {"ok": True}


async def main() -> None:
    raise_nofile_limit()
    if len(sys.argv) > 1:
        pin_to_cpu(int(sys.argv[1]))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "connect":
                reply = await connect(worker, cmd)
            elif cmd["cmd"] == "wait":
                reply = await wait(worker, cmd)
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
