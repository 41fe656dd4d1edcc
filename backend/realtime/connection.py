"""One client connection: its bounded outbound queue, writer task and subscriptions.

Everything that reaches the client goes out in the order it was handed over, so a
pong is a barrier: it is written after every frame queued before the ping was
read. Delivery (`deliver`, `send`) is synchronous and never awaits the socket.
Fast path: when nothing is queued, the writer is idle and the socket's buffer is
small, the frame's pre-built WebSocket bytes are written to the transport at
once (no task wake-up per recipient). Otherwise it goes to the `SendQueue`,
whose writer task awaits the socket. A connection that cannot keep up is evicted: its queue is
discarded at once, it gets close 4008 if that can still be written within
`close_timeout_s`, and then its transport is aborted so the kernel-side and
asyncio-side buffers are freed too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from .closecodes import CloseCode
from .frames import Frame
from .sendqueue import SendQueue

log = logging.getLogger(__name__)

#: Direct writes stop once this much is buffered in the transport; from then on
#: frames queue and the writer awaits the socket (asyncio's default high-water mark).
DIRECT_WRITE_LIMIT = 64 * 1024


@dataclass(eq=False)
class Subscription:
    """A connection's subscription to one topic.

    While its snapshot is being built (`live` is False) events are buffered; when
    the snapshot is queued, buffered events it already reflects (seq <= its seq)
    are dropped and the rest follow it in order.
    """

    topic: str
    conn: Connection
    last_seq: int = 0
    live: bool = False
    pending: list[tuple[int, Frame]] = field(default_factory=list)


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        connection_id: str,
        *,
        max_queue_bytes: int,
        close_timeout_s: float,
        on_closed: Callable[[Connection], None],
    ) -> None:
        self.id = connection_id
        self.subscriptions: dict[str, Subscription] = {}
        self._ws = ws
        self._transport = transport
        self._queue: SendQueue[Frame] = SendQueue(max_queue_bytes)
        # Pre-built frames are only valid without permessage-deflate.
        self._direct = not ws.compress
        self._close_timeout_s = close_timeout_s
        self._on_closed = on_closed
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{connection_id}")
        self._closer: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self.close_code: int | None = None

    # ------------------------------------------------------------ state

    @property
    def closing(self) -> bool:
        return self._closer is not None

    @property
    def buffered_bytes(self) -> int:
        """Bytes this connection holds in the process: its queue, buffered events
        and the transport's write buffer."""
        return self._queue.buffered_bytes + self._queue.reserved + self._transport.get_write_buffer_size()

    # ------------------------------------------------------------ sending (never awaits)

    def send(self, frame: Frame | bytes) -> None:
        """Write or queue a frame; evict the connection if it would overflow its queue."""
        if self.closing or self._queue.closed:  # closed: the writer lost the socket
            return
        if isinstance(frame, bytes):
            frame = Frame(frame)
        if self._direct and self._queue.idle and self._writable():
            self._transport.write(frame.wire)
        elif not self._queue.push(frame):
            self.evict()

    def _writable(self) -> bool:
        t = self._transport
        return not t.is_closing() and not self._ws.closed and t.get_write_buffer_size() <= DIRECT_WRITE_LIMIT

    def deliver(self, sub: Subscription, seq: int, frame: Frame) -> None:
        """An event for `sub` (called by the hub for every subscriber, never awaits)."""
        if self.closing or self._queue.closed:
            return
        if not sub.live:
            if not self._queue.reserve(len(frame)):
                self.evict()
                return
            sub.pending.append((seq, frame))
        elif seq > sub.last_seq:
            # The broker delivers each topic's events in seq order with no gap; a
            # hole here means events were lost upstream, and a silent gap is the
            # one thing we never do: close so the client resyncs.
            if seq != sub.last_seq + 1:
                log.warning("seq gap on %s: %d -> %d", sub.topic, sub.last_seq, seq)
                self.close(CloseCode.INTERNAL_ERROR, "lost events; resync")
                return
            sub.last_seq = seq
            self.send(frame)

    def go_live(self, sub: Subscription, seq: int, snapshot: Frame | bytes) -> None:
        """Queue `sub`'s snapshot (reflecting events up to `seq`), then its buffered
        events with a larger seq, and deliver directly from now on."""
        pending, sub.pending = sub.pending, []
        self._queue.unreserve(sum(len(frame) for _, frame in pending))
        if self.closing:
            return
        sub.live, sub.last_seq = True, seq
        self.send(snapshot)
        for event_seq, frame in pending:
            self.deliver(sub, event_seq, frame)

    def reset(self, sub: Subscription) -> None:
        """Back to buffering, for a fresh snapshot (re-subscribe)."""
        self._queue.unreserve(sum(len(frame) for _, frame in sub.pending))
        sub.pending.clear()
        sub.live = False

    # ------------------------------------------------------------ closing

    def evict(self) -> None:
        """Slow consumer: free its queue now, close with 4008, abort what won't close."""
        if not self.closing:
            log.info("evicting slow consumer %s", self.id)
            for sub in self.subscriptions.values():
                sub.pending.clear()
            self._queue.close(discard=True)
            self._writer.cancel()  # it may be stuck waiting for the socket to drain
            self._start_close(CloseCode.SLOW_CONSUMER, "slow consumer")

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued are written (or the deadline passes)."""
        if not self.closing:
            self._queue.close()
            self._start_close(code, reason)

    async def wait_closed(self) -> None:
        """Until the socket is closed or aborted, the writer has stopped and the
        connection is unregistered from the hub."""
        await self._closed.wait()

    def _start_close(self, code: int, reason: str) -> None:
        self.close_code = code
        self._closer = asyncio.create_task(self._close(code, reason), name=f"ws-close-{self.id}")

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout_s):
                # Let the writer flush what is queued (nothing, after an eviction).
                await asyncio.wait({self._writer})
                await self._ws.close(code=code, message=reason.encode())
                await self._flushed()
        except TimeoutError:
            log.info("connection %s did not close in time; aborting", self.id)
        finally:
            self._writer.cancel()
            self._abort()
            self._on_closed(self)
            self._closed.set()

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

    async def _write_loop(self) -> None:
        try:
            while (frame := await self._queue.pop()) is not None:
                await self._ws.send_frame(frame.text, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("writer for %s stopped: %s", self.id, exc)
            self._queue.close(discard=True)
