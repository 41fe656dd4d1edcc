"""One client connection: the core's state for it, its writer, and its close.

The ordering and the budget are decided by `core.ClientState` (no I/O); this class
only connects it to the socket. Sending is synchronous and never awaits: a frame
goes into the outbox, and the hub's `Flusher` writes every ready connection once
per loop tick (`flush`). After each write the writer reports what is still in
flight (transport buffer + kernel queue); the budget counts it, so a client that
stops reading is evicted once it pins `max_queue_bytes`, wherever those bytes sit.

The transport is the connection's `socket` (`Socket`: the WebSocket's
`WebSocketResponse`, or the SSE stream's `sse.SseSocket`) and its `Writer`; nothing
here depends on which one it is.

Closing: whatever is queued is written first, then the socket's close (the
WebSocket's close frame, the SSE stream's `close` event); what has
not gone out by `close_timeout_s` is aborted, freeing the transport's and the
kernel's buffers. An evicted client's queue is dropped at once and only the close
frame is written (a few bytes beyond the budget): a client still reading sees 4008
after the frames already in flight; one that stopped reading never sees it and
gets a TCP reset when the deadline passes (1006 on its side).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web

from . import metrics
from .closecodes import CloseCode
from .core import ClientState, Subscription
from .core.ratelimit import ClientLimits
from .frames import Frame
from .principal import Principal
from .settings import RealtimeSettings
from .writer import AiohttpWriter, Flusher, TransportWriter, Writer

log = logging.getLogger(__name__)

#: How often `wait_room` re-reads what is in flight.
ROOM_POLL_S = 0.005


class Owner(Protocol):
    """What a connection needs of its hub: one reference, not a flusher and a bound
    method (memory per idle connection is a target: docs/benchmarks.md)."""

    flusher: Flusher

    def disconnect(self, conn: Connection) -> None:
        """The connection is closed: forget it."""


class Socket(Protocol):
    """What a connection needs of its transport's endpoint: a close with a code and a
    reason, after which nothing more is written (the WebSocket's close frame, the SSE
    stream's `close` event). Aborting is the asyncio transport's."""

    async def close(self, *, code: int, message: bytes) -> object:
        """Send the close (code and reason); the caller bounds it with a deadline."""


def ws_writer(ws: web.WebSocketResponse, transport: asyncio.Transport) -> Writer:
    """The WebSocket's writer: pre-built frames are only valid without permessage-deflate."""
    return AiohttpWriter(ws, transport) if ws.compress else TransportWriter(ws, transport)


class Connection:
    __slots__ = (
        "_close_timeout_s",
        "_closed",
        "_closer",
        "_expiry",
        "_owner",
        "_peer_closed",
        "_socket",
        "_transport",
        "_writer",
        "address",
        "id",
        "limits",
        "principal",
        "requests",
        "state",
        "transport_name",
    )

    def __init__(
        self,
        socket: Socket,
        transport: asyncio.Transport,
        connection_id: str,
        *,
        writer: Writer,
        max_queue_bytes: int,
        close_timeout_s: float,
        owner: Owner,
        principal: Principal | None = None,
        address: str = "",
        limits: RealtimeSettings | None = None,
        transport_name: str = "websocket",
    ) -> None:
        self.id = connection_id
        #: `websocket` or `sse`: the `transport` label of its metrics.
        self.transport_name = transport_name
        self.principal = principal
        self.address = address
        limits = limits or RealtimeSettings()
        now = asyncio.get_running_loop().time()
        #: Client frames, and topics subscribed, per second (`RealtimeSettings`), and the
        #: refusals in a row: at `frames_burst` the client is closed with 1008.
        self.limits = ClientLimits(limits, now)
        #: Requests running for it now (`calls.Calls`), at most `max_requests_in_flight`.
        self.requests = 0
        self.state = ClientState(max_queue_bytes, self)
        self._socket = socket
        self._transport = transport
        self._writer = writer
        self._owner = owner
        self._close_timeout_s = close_timeout_s
        self._closer: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._peer_closed = False
        #: The close at the credential's expiry (`expire_in`); None: it does not expire.
        self._expiry: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ state

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self.state.subscriptions

    @property
    def closing(self) -> bool:
        return self.state.closing

    @property
    def close_code(self) -> int | None:
        return self.state.close_code

    @property
    def buffered_bytes(self) -> int:
        """Bytes this connection holds in the process: its outbox, events held for
        snapshots, and the transport's write buffer."""
        outbox = self.state.outbox
        return outbox.pending + outbox.reserved + self._transport.get_write_buffer_size()

    @property
    def unshared_bytes(self) -> int:
        """Bytes held for this connection alone: the transport's write buffer (a copy
        of what the kernel did not take yet). Its frames are shared objects."""
        return self._transport.get_write_buffer_size()

    # ------------------------------------------------------------ sending (never awaits)

    def send(self, frame: Frame | bytes) -> None:
        self.state.send(frame if isinstance(frame, Frame) else Frame(frame))

    def close(self, code: int, reason: str, *, eviction: str | None = None) -> None:
        """Close after the frames already queued are written (or the deadline passes).
        `eviction` names why, when the server closes a client it will not keep."""
        self.state.close(code, reason, eviction)

    def closed_by_peer(self, code: int) -> None:
        """The peer closed (or left): answer with its code; not the server's choice."""
        if not self.closing:
            self._peer_closed = True
        self.state.close(code, "")

    def evict(self, reason: str = "queue_full") -> None:
        self.state.evict(reason)

    # ------------------------------------------------------------ credential expiry

    def expire_in(self, seconds: float | None) -> None:
        """Close with 4001 (`auth_expired`) in `seconds`, when the connection's credential
        expires, unless called again first (a refreshed credential); None: never. One
        timer per expiring connection, replaced on a refresh, cancelled on close."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if seconds is not None and not self.closing:
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_at(loop.time() + max(0.0, seconds), self._expired)

    def auth_expires_in(self) -> float | None:
        """Seconds until the credential expires (None: it does not)."""
        if self._expiry is None:
            return None
        return self._expiry.when() - asyncio.get_running_loop().time()

    def _expired(self) -> None:
        self._expiry = None
        if not self.closing:
            extra = {"connection_id": self.id, "close_code": CloseCode.AUTH_EXPIRED}
            log.info("connection %s: credential expired, closing with 4001", self.id, extra=extra)
            self.close(CloseCode.AUTH_EXPIRED, "credential expired; reconnect with a new token")

    def in_flight(self) -> int:
        return self._writer.measure()

    async def wait_room(self, size: int, timeout: float) -> bool:
        """Until `size` more bytes fit this client's budget (True), or `timeout` passes
        or the connection closes (False). Polls what is in flight: the kernel's send
        queue drains with no event for the process to await."""
        outbox = self.state.outbox
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.closing:
            outbox.set_downstream(self._writer.measure())
            if size <= outbox.room:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(ROOM_POLL_S)
        return False

    def ready(self, _state: ClientState) -> None:
        self._owner.flusher.mark(self)

    def flush(self) -> None:
        """Write what is queued (the hub's flusher calls this once per tick when ready)."""
        state = self.state
        outbox = state  # the client state is its outbox
        frames = outbox.frames
        if frames:
            outbox.frames = []
            outbox.written(self._writer.write(frames))  # in flight: an upper bound, cheap
        else:
            outbox.set_downstream(self._writer.in_flight)
        if outbox.room < 0 and state.close_code is None:
            outbox.set_downstream(self._writer.measure())  # exact, before judging
            if outbox.room < 0:
                state.evict()  # marks ready again: the close starts on the next tick
        elif state.close_code is not None and self._closer is None:
            self._closing(state.close_code)
            self._closer = asyncio.create_task(
                self._close(state.close_code, state.close_reason), name=f"ws-close-{self.id}"
            )

    # ------------------------------------------------------------ closing

    def _closing(self, code: int) -> None:
        """Report a close as it begins (once per connection)."""
        eviction = None if self._peer_closed else self.state.eviction
        metrics.closing(code, eviction, self.state.outbox.cost)
        extra = {"connection_id": self.id, "close_code": code}
        if eviction is not None:
            log.info("connection %s: evicted (%s), closing with %d", self.id, eviction, code, extra=extra)
        else:
            log.debug("connection %s: closing with %d", self.id, code, extra=extra)

    async def wait_closed(self) -> None:
        """Until the socket is closed or aborted and the hub has forgotten it."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout_s):
                if isinstance(self._writer, AiohttpWriter):
                    await self._writer.stop()
                await self._socket.close(code=code, message=reason.encode())
                await self._flushed()
        except TimeoutError:
            extra = {"connection_id": self.id}
            log.info("connection %s did not close in time; aborting", self.id, extra=extra)
        finally:
            if isinstance(self._writer, AiohttpWriter):
                self._writer.cancel()
            self._abort()
            self._owner.disconnect(self)
            if self._closed is None:
                self._closed = asyncio.get_running_loop().create_future()
            self._closed.set_result(None)

    async def _flushed(self) -> None:
        """Until the transport has written out everything, the close frame included.
        asyncio has no event for that, so poll; the caller bounds it with a deadline."""
        while self._transport.get_write_buffer_size():  # noqa: ASYNC110 - no event exists to await
            await asyncio.sleep(0.02)

    def _abort(self) -> None:
        """Drop whatever the transport still buffers. Needed even after a clean
        close(): aiohttp then only calls transport.close(), which keeps the bytes
        of a peer that stopped reading until TCP gives up."""
        if self._transport.get_write_buffer_size():
            self._transport.abort()
