"""Two WebSocket rules aiohttp leaves to the application, enforced under it.

1. Client frames must be masked (RFC 6455 §5.1: "a server MUST close the
   connection upon receiving a frame that is not masked"); aiohttp's reader accepts
   both. `MaskCheck` follows the client's frame boundaries (headers only, payload
   skipped without copying) and the first unmasked frame closes with 1002.
2. A close frame must reach a client that keeps sending. Closing a socket with
   unread input makes the kernel send a reset, and a reset makes the peer's kernel
   drop what it had not yet handed to the application - the close frame included
   (after 1007, most flooding clients saw a reset, never the code).
   `GuardedWebSocketResponse` turns aiohttp's transport close after a protocol error
   into: half-close (our FIN goes after the close frame), keep reading and discarding,
   and close for real when the peer closes its side or `linger_s` passes.

Both hook aiohttp internals: the request handler's payload parser (fed through
`MaskCheck`) after the upgrade, WebSocketResponse's `_close_transport`, and the bytes
a client sent together with its handshake, which aiohttp feeds to its parser before
our check is in place (`handshake_tail`, checked first).
Private attributes, so the supported aiohttp range is pinned in pyproject.toml, and
tests/test_attacks_ws.py and tests/test_guards.py fail if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_websocket import WebSocketError

log = logging.getLogger(__name__)


class MaskCheck:
    """Sans-I/O: feed the client's bytes in order; False once a frame is unmasked."""

    __slots__ = ("_header", "_skip")

    def __init__(self) -> None:
        # Immutable, and the shared empty `b""` between frames: a header split across
        # reads is rare, and an idle connection then holds no buffer of its own.
        self._header = b""
        self._skip = 0  # payload bytes of the current frame still to pass

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        i, n = 0, len(data)
        skip = self._skip
        while i < n:
            if skip:
                step = skip if skip < n - i else n - i
                skip -= step
                i += step
                continue
            if not self._header and n - i >= 2:
                # A whole header in this read (nearly always): read it in place.
                second = data[i + 1]
                if not second & 0x80:
                    self._skip = 0
                    self._header = bytes(data[i : i + 2])
                    return False
                length = second & 0x7F
                extended = 2 if length == 126 else 8 if length == 127 else 0
                if n - i >= 6 + extended:
                    if extended:
                        length = int.from_bytes(data[i + 2 : i + 2 + extended], "big")
                    skip = length
                    i += 6 + extended
                    continue
            # A header split across reads: gathered in `_header` until whole.
            header = self._header
            take = min(_header_size(header) - len(header), n - i)
            header += bytes(data[i : i + take])
            i += take
            if len(header) < 2 or len(header) < _header_size(header):
                self._header = header
                continue
            if not header[1] & 0x80:
                self._header = header
                self._skip = 0
                return False
            skip = _payload_size(header)
            self._header = b""
        self._skip = skip
        return True


def _header_size(header: bytes) -> int:
    if len(header) < 2:
        return 2
    length = header[1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


def _payload_size(header: bytes) -> int:
    length = header[1] & 0x7F
    if length == 126:
        return int.from_bytes(header[2:4], "big")
    if length == 127:
        return int.from_bytes(header[2:10], "big")
    return length


class _MaskedOnly(MaskCheck):
    """Stands in for aiohttp's WebSocket reader in the request handler: feeds it only
    while every frame is masked. (A `MaskCheck` itself: one object per connection.)"""

    __slots__ = ("_broken", "_parser", "_ws")

    def __init__(self, parser: Any, ws: web.WebSocketResponse, early: bytes) -> None:
        super().__init__()
        self._parser = parser
        self._ws = ws
        self._broken = bool(early) and not self.feed(early)
        if self._broken:
            self._violated()

    def _violated(self) -> None:
        reader = self._ws._reader
        if reader is not None:
            # aiohttp's own path for a protocol error: receive() raises it, answers
            # with a close frame carrying the code, and ends the receive loop.
            reader.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR, "unmasked client frame"))

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._broken:
            return False, b""  # after the violation nothing more is parsed
        if not self.feed(data):
            self._broken = True
            self._violated()
            return False, b""
        result: tuple[bool, bytes] = self._parser.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()


class GuardedWebSocketResponse(web.WebSocketResponse):
    """aiohttp's WebSocketResponse, whose transport close after a protocol error is a
    lingering one: half-close (our FIN goes after the close frame), go on reading and
    discarding, and close for real when the peer closes its side or `linger_s` passes.
    Every other close is aiohttp's own."""

    # Class attributes, set on an instance only when they differ: aiohttp's response
    # already has close to the 30 attributes CPython's key-sharing instance dicts hold,
    # and two more turned every connection's dict into a combined one (+1.5 KB each).
    _linger_s: float = 2.0
    #: The 101 response's headers go out with the first write after `prepare` (the
    #: handler's `hello`), in one send, instead of a send of their own.
    _send_headers_immediately = False
    #: When a lingering close gives up (None: not lingering).
    _linger_until: float | None = None

    # A slot, not an instance-dict entry (above): the handshake `can_prepare` computed,
    # for `prepare` to reuse; cleared once prepared.
    __slots__ = ("_handshaken",)

    def __init__(self, *, linger_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handshaken: tuple[web.BaseRequest, Any] | None = None
        if linger_s != self._linger_s:
            self._linger_s = linger_s

    def _handshake(self, request: web.BaseRequest) -> Any:
        # The handler asks `can_prepare` (to refuse a plain GET with a JSON 426) before
        # `prepare`; both compute the handshake (headers, the key's SHA-1, the
        # subprotocol). The second reuses the first's result for the same request.
        done = self._handshaken
        if done is None or done[0] is not request:
            done = self._handshaken = (request, super()._handshake(request))
        return done[1]

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        try:
            return await super().prepare(request)
        finally:
            self._handshaken = None  # an open connection keeps none of it

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        # The 101's headers wait for the first write through the payload writer (the
        # handler's hello); a close before any write must send them first, or the close
        # frame would reach the client in place of the HTTP response.
        writer = self._payload_writer
        if isinstance(writer, AbstractStreamWriter) and hasattr(writer, "send_headers"):
            writer.send_headers()
        return await super().close(code=code, message=message, drain=drain)

    async def lingered(self) -> None:
        """Until a lingering close is over: the handler must not return before (aiohttp
        closes the connection outright when it does)."""
        request, loop = self._req, asyncio.get_running_loop()
        transport = request.transport if request is not None else None
        while self._linger_until is not None and transport is not None and not transport.is_closing():
            if loop.time() >= self._linger_until:
                transport.close()
                return
            await asyncio.sleep(LINGER_POLL_S)  # the peer's FIN has no event of its own here

    def _close_transport(self) -> None:
        reader = self._reader
        request = self._req
        transport = request.transport if request is not None else None
        protocol_error = reader is not None and isinstance(reader.exception(), WebSocketError)
        if transport is None or not protocol_error or not transport.can_write_eof() or transport.is_closing():
            super()._close_transport()
            return
        try:
            transport.write_eof()  # sent once the buffered frames (the close frame) are out
        except OSError:
            transport.close()
            return
        # When the peer answers our FIN with its own, asyncio closes the transport (the
        # protocol's eof_received returns None); `lingered` bounds it if it never does.
        self._linger_until = asyncio.get_running_loop().time() + self._linger_s


#: How often `lingered` looks whether the peer has closed its side.
LINGER_POLL_S = 0.05


def has_backlog(ws: web.WebSocketResponse) -> bool:
    """Whether the client's next message is already parsed and waiting (receive() will
    return it without suspending)."""
    reader: Any = ws._reader
    return reader is not None and bool(getattr(reader, "_buffer", True))


def handshake_tail(request: web.Request) -> bytes:
    """What the client sent after its handshake's headers so far (call before
    `ws.prepare`, which hands these bytes to aiohttp's parser)."""
    tail = getattr(request.protocol, "_message_tail", b"")
    return bytes(tail) if isinstance(tail, (bytes, bytearray)) else b""


def guard_protocol(request: web.Request, ws: web.WebSocketResponse, *, early: bytes) -> None:
    """Install the mask check on a prepared WebSocket's connection. `early`: the client's
    bytes that aiohttp parsed before this (`handshake_tail`), checked first, so the
    check follows frame boundaries from the very first byte."""
    protocol: Any = request.protocol
    transport = protocol.transport
    if transport is None:
        return
    parser = getattr(protocol, "_payload_parser", None)
    if parser is not None:
        protocol._payload_parser = _MaskedOnly(parser, ws, early)
