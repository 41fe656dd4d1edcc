"""Getting a connection's frames onto its socket: one write per connection per loop tick.

`Flusher` is the tick: once per event-loop iteration (`call_soon`) it first runs its
`prepare` step (the hub's fan-out of the events published in the iteration), then
asks each connection the core marked ready (its outbox went from empty to
non-empty, or it must close) to write what it holds. A burst of
events to a subscriber therefore costs one write, not one per event (the syscall,
not Python, was most of the fan-out cost) - and an event never waits for a long
loop iteration (a reconnect storm's): `Flusher` says how.

A `Writer` moves one connection's frames. Contract (one test suite for both,
tests/test_writer.py): `write` takes frames in order and never awaits; they reach
the peer in that order, after everything written before, and interleave with
aiohttp's own frames (pings, pongs, close) only between frames; `in_flight` is the
bytes accepted but not yet acknowledged by the peer (transport buffer + kernel send
queue), which the outbox's budget counts, so a client that stops reading can pin
at most `max_queue_bytes`.

- `TransportWriter` (the default, compression off): writes the frames' pre-built
  WebSocket bytes straight to the asyncio transport, joined into one `write`. The
  transport's own buffer is the only backlog: no task per connection.
- `SseWriter` (the SSE transport, sse.py): the same, with the frames' pre-built
  Server-Sent Events bytes (`Frame.sse`, or `Frame.sse_chunk` on a chunked body).
- `AiohttpWriter` (permessage-deflate on): compression is per connection and
  stateful, so frames go through aiohttp's `send_frame`, one task per connection
  while it has frames.

Supported aiohttp: 3.11 to 3.14 (pinned `>=3.11,<3.15` in the library's
pyproject.toml). The direct path relies on aiohttp writing each uncompressed frame
with one synchronous `transport.write` (aiohttp/_websocket/writer.py); the contract
tests interleave server pings and a close with direct writes and would fail if that
changed.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import socket
import termios
import time
from collections import deque
from collections.abc import Callable, Sized
from typing import Protocol

from aiohttp import WSMsgType, web

from .frames import Frame, http_chunk

log = logging.getLogger(__name__)


class Writer(Protocol):
    def write(self, frames: list[Frame]) -> int:
        """Write `frames` (in order, after everything before); return `in_flight`."""

    @property
    def in_flight(self) -> int:
        """An upper bound of the bytes in flight, cheap enough for every write."""

    def measure(self) -> int:
        """The bytes in flight, exactly (a system call)."""


#: Below this many bytes in flight a connection is healthy, and its in-flight figure is
#: an upper bound kept without a system call (asyncio's own high-water mark).
EXACT_ABOVE = 64 * 1024


_OUTQ = array.array("i", [0])  # one buffer for every ioctl: the loop is single-threaded


def tcp_fd(transport: asyncio.BaseTransport) -> int:
    """The socket's file descriptor if it is TCP and the platform can report its send
    queue (TIOCOUTQ), else -1."""
    sock = transport.get_extra_info("socket")
    is_tcp = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
    return sock.fileno() if is_tcp and hasattr(termios, "TIOCOUTQ") else -1


def kernel_queue(fd: int) -> int:
    """Bytes the kernel holds for a TCP socket, unsent or unacknowledged (TIOCOUTQ, the
    same as SIOCOUTQ on Linux); 0 for -1 or a socket closed under us."""
    if fd < 0:
        return 0
    try:
        fcntl.ioctl(fd, termios.TIOCOUTQ, _OUTQ, True)
    except OSError:
        return 0
    return _OUTQ[0]


#: The last batch joined in this loop tick and its bytes (`joined`, and `sse_joined`
#: for SSE streams); cleared after each flush, so it pins nothing between ticks.
_last_joined: tuple[list[Frame], bytes] | None = None
_last_sse: tuple[list[Frame], bool, bytes] | None = None


def joined(frames: list[Frame]) -> bytes:
    """The wire bytes of `frames`, joined. In a burst every subscriber of a topic is
    owed the same frames, so the flush usually asks for the same batch one connection
    after another: it is joined once per tick and shared. The same batch means the
    same frame objects in the same order (`==` on lists of objects without `__eq__`
    compares identities, in C); the cache holds them, so none can be freed and its
    address reused while it is kept."""
    global _last_joined
    last = _last_joined
    if last is not None and last[0] == frames:
        return last[1]
    data = b"".join([frame.wire for frame in frames])
    _last_joined = (frames, data)
    return data


def sse_joined(frames: list[Frame], chunked: bool) -> bytes:
    """`joined` for SSE streams: the frames' SSE events (HTTP chunks if `chunked`)."""
    global _last_sse
    last = _last_sse
    if last is not None and last[1] is chunked and last[0] == frames:
        return last[2]
    if chunked:
        data = b"".join([frame.sse_chunk for frame in frames])
    else:
        data = b"".join([frame.sse for frame in frames])
    _last_sse = (frames, chunked, data)
    return data


def forget_joined() -> None:
    global _last_joined, _last_sse
    _last_joined = None
    _last_sse = None


class Closed(Protocol):
    @property
    def closed(self) -> bool:
        """Whether the close was sent: nothing may be written after it."""


class TransportWriter:
    """Writes frames' pre-built bytes to the transport. `in_flight` is kept as an upper
    bound - the last exact reading plus every byte written since (nothing else adds to
    what is in flight, and the peer only takes away) - and read exactly (transport
    buffer + TIOCOUTQ) only once that bound passes `EXACT_ABOVE`: a healthy connection
    pays one system call per ~64 KiB written, not one per write, and the budget never
    counts less than the truth."""

    __slots__ = ("_bound", "_fd", "_transport", "_ws")

    def __init__(self, ws: Closed, transport: asyncio.Transport) -> None:
        self._ws = ws
        self._transport = transport
        self._fd: int | None = None  # looked up at the first exact measure: most never need it
        self._bound = 0

    def write(self, frames: list[Frame]) -> int:
        if self._transport.is_closing() or self._ws.closed:
            return self._bound  # the peer left, or aiohttp sent its close frame: nothing may follow
        data = frames[0].wire if len(frames) == 1 else joined(frames)
        self._transport.write(data)
        self._bound += len(data)
        return self._bound if self._bound <= EXACT_ABOVE else self.measure()

    @property
    def in_flight(self) -> int:
        return self._bound if self._bound <= EXACT_ABOVE else self.measure()

    def measure(self) -> int:
        if self._fd is None:
            self._fd = tcp_fd(self._transport)
        self._bound = self._transport.get_write_buffer_size() + kernel_queue(self._fd)
        return self._bound


class SseWriter(TransportWriter):
    """`TransportWriter` for an SSE stream (sse.py): writes the frames' SSE events,
    each an HTTP chunk when the response is chunked (HTTP/1.1; an HTTP/1.0 client, such
    as nginx's default upstream, gets a body that ends with the connection). The same
    in-flight accounting, so the same budget and eviction."""

    __slots__ = ("_chunked",)

    def __init__(self, socket: Closed, transport: asyncio.Transport, *, chunked: bool) -> None:
        super().__init__(socket, transport)
        self._chunked = chunked

    def write(self, frames: list[Frame]) -> int:
        if self._transport.is_closing() or self._ws.closed:
            return self._bound
        if len(frames) == 1:
            data = frames[0].sse_chunk if self._chunked else frames[0].sse
        else:
            data = sse_joined(frames, self._chunked)
        return self.write_bytes(data)

    def write_event(self, event: bytes) -> int:
        """Bytes outside any frame (a heartbeat, the close event), framed as a chunk if
        the body is chunked. Between frames only: the caller writes whole events."""
        if self._transport.is_closing():
            return self._bound
        return self.write_bytes(http_chunk(event) if self._chunked else event)

    def write_bytes(self, data: bytes) -> int:
        self._transport.write(data)
        self._bound += len(data)
        return self._bound if self._bound <= EXACT_ABOVE else self.measure()


class AiohttpWriter:
    __slots__ = ("_fd", "_frames", "_queued", "_task", "_transport", "_ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport) -> None:
        self._ws = ws
        self._transport = transport
        self._fd = tcp_fd(transport)
        self._frames: deque[Frame] = deque()
        self._queued = 0
        self._task: asyncio.Task[None] | None = None

    def write(self, frames: list[Frame]) -> int:
        self._frames.extend(frames)
        self._queued += sum(frame.size for frame in frames)
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return self.measure()

    @property
    def in_flight(self) -> int:
        return self.measure()

    def measure(self) -> int:
        return self._queued + self._transport.get_write_buffer_size() + kernel_queue(self._fd)

    async def _drain(self) -> None:
        try:
            while self._frames:
                frame = self._frames.popleft()
                self._queued -= frame.size
                await self._ws.send_frame(frame.text, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("writer stopped: %s", exc)
            self._frames.clear()
            self._queued = 0
        finally:
            self._task = None

    async def stop(self) -> None:
        """Wait for what was handed over (the caller bounds it with a deadline)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def cancel(self) -> None:
        self._frames.clear()
        self._queued = 0
        if self._task is not None:
            self._task.cancel()


class Pending(Protocol):
    #: Bytes queued for the next write.
    pending: int


class Flushable(Protocol):
    @property
    def state(self) -> Pending:
        """The connection's outbox (`core.ClientState`)."""

    def flush(self) -> None: ...


#: A connection with more than this queued is a bulk write (a snapshot, a burst): it
#: waits for the small ones of its tick, within `BULK_TICK_S` per tick.
BULK_ABOVE = 64 * 1024
#: Loop time one tick may spend on bulk writes; the rest wait for the next tick (the
#: loop polls sockets and runs timers in between), in the order they became ready.
BULK_TICK_S = 0.005
#: A loop whose tick ran this late, or whose pending tick has waited this long, is
#: congested: a published event is then written at once (`Flusher`).
EAGER_AFTER_S = 0.01
#: Events published less than this after the last write coalesce into the tick; an
#: event waits at most about this long while the library's own code runs (`due`).
EAGER_GAP_S = 0.002
#: More loop callbacks than this queued ahead of a tick (a storm's iteration: handshakes,
#: subscribes): an event published now is written at once instead of waiting for them.
AHEAD_MAX = 64
#: `Flusher._ahead` of a loop that does not say: crowded.
_CROWDED = range(AHEAD_MAX + 1)


class Flusher:
    """One per event loop and hub: writes every ready connection once per loop tick.

    `prepare`, if given, runs first in each tick (the hub's fan-out of the events
    published in it), while the tick is still scheduled: the connections it marks
    ready are written in this same tick.

    Small writes first, bulk ones within a time budget: in a reconnect storm thousands
    of connections become ready in one tick, each owed a ~200 KB snapshot, and writing
    them all at once held the loop for most of a second (live clients' events waited
    behind them). So a tick writes every connection with at most `BULK_ABOVE` queued,
    then bulk ones, oldest first, for at most `BULK_TICK_S`; the others wait for the
    next tick, scheduled at once. Each connection's frames still go out whole and in
    order; a waiting connection's new frames join its queue (it is not marked again).

    An event does not wait for a long iteration. A tick runs at the end of the loop
    iteration, and in a storm one iteration runs thousands of callbacks (handshakes,
    subscribes) for tens to hundreds of milliseconds: an event published at its start
    would wait for all of them (the storm bench's live clients saw p99 up to 155 ms,
    one slow event per storm). So the tick's work is done early, at the event:

    - by its `wake`, when more than `AHEAD_MAX` callbacks are queued ahead of the
      tick (the first iteration of a storm, which a lag can not show yet) or when
      the loop is congested (the last tick ran more than `EAGER_AFTER_S` late, or the
      pending one has waited that long), unless that work ran less than
      `EAGER_GAP_S` ago: the rest of a burst coalesces into the tick;
    - by `due`, which the handlers call between a client's frames (a point where the
      work is safe to run), once an event has waited more than `EAGER_GAP_S`.

    A calm loop's events wait for its tick, which comes soon: a burst is still one
    write per connection. In a crowded or congested one, an event goes out as it is
    published, and the rest of its burst with the tick or the first `due` past
    `EAGER_GAP_S`, whichever comes first.
    The work done early skips bulk writes: they stay the ticks' (`BULK_TICK_S` each)."""

    __slots__ = (
        "_bulk",
        "_lag",
        "_loop_ready",
        "_owed_at",
        "_prepare",
        "_ran",
        "_ready",
        "_running",
        "_scheduled",
        "_scheduled_at",
    )

    def __init__(self, prepare: Callable[[], None] | None = None) -> None:
        self._ready: list[Flushable] = []
        #: Bulk writes left over from earlier ticks, in the order they became ready.
        self._bulk: deque[Flushable] = deque()
        self._scheduled = False
        self._prepare = prepare
        #: When the pending tick was scheduled, how late the last one ran, when the
        #: tick's work last ran (scheduled or early), and whether it is running now.
        self._scheduled_at = 0.0
        self._lag = 0.0
        self._ran = 0.0
        self._running = False
        #: When the oldest event not yet prepared was published (0: none).
        self._owed_at = 0.0
        #: The loop's queue of ready callbacks (`_ahead`), found at the first wake.
        self._loop_ready: Sized | None = None

    def mark(self, conn: Flushable) -> None:
        """Call `conn.flush()` at the end of this loop iteration (with every other one
        marked). The caller marks a connection once per burst (`ClientState`'s ready)."""
        self._ready.append(conn)
        if not self._scheduled:
            self._schedule()

    def wake(self) -> None:
        """An event was queued: run a tick at the end of this loop iteration even if no
        connection is marked (`prepare` has work) - or now, if the loop is congested
        (above). Call it only where running `prepare` at once is safe (the broker's
        delivery of an event, after it is queued)."""
        now = time.perf_counter()
        if not self._owed_at:
            self._owed_at = now
        pending = self._scheduled
        if not pending:
            self._schedule()
        if self._running or now - self._ran <= EAGER_GAP_S:
            return  # a burst: it coalesces into the tick (or the next `due`)
        congested = self._lag > EAGER_AFTER_S or (pending and now - self._scheduled_at > EAGER_AFTER_S)
        if congested or self._ahead() > AHEAD_MAX:
            self._flush()

    def _ahead(self) -> int:
        """Callbacks queued to run before a tick scheduled now. asyncio's own loops keep
        them in `_ready` (CPython's BaseEventLoop, 3.4 to 3.14; tests/test_writer.py
        fails if that changes); a loop without it counts as crowded: events are then
        written at once, and a burst costs one more write."""
        ready = self._loop_ready
        if ready is None:
            ready = self._loop_ready = getattr(asyncio.get_running_loop(), "_ready", _CROWDED)
        return len(ready)

    def due(self) -> None:
        """A safe point (no state change of the caller's in progress): if an event has
        waited for its write more than `EAGER_GAP_S`, write it now (above)."""
        owed = self._owed_at
        if owed and not self._running:
            now = time.perf_counter()
            if now - owed > EAGER_GAP_S and now - self._ran > EAGER_GAP_S:
                self._flush()

    def _schedule(self) -> None:
        self._scheduled = True
        self._scheduled_at = time.perf_counter()
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self._lag = time.perf_counter() - self._scheduled_at
        self._flush(tick=True)

    def _flush(self, *, tick: bool = False) -> None:
        self._running = True
        try:
            self._work(tick)
        finally:
            self._running = False
            self._ran = time.perf_counter()  # its end: a burst published right after coalesces

    def _work(self, tick: bool) -> None:
        self._owed_at = 0.0  # what is queued now is prepared here
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:  # the writes of what is already queued must still happen
                log.exception("preparing the flush failed")
        if tick:  # after `prepare`: what it marks is written in this tick
            self._scheduled = False
        ready, self._ready = self._ready, []
        bulk = self._bulk
        try:
            for conn in ready:
                if conn.state.pending > BULK_ABOVE:
                    bulk.append(conn)
                    continue
                try:
                    conn.flush()
                except Exception:  # one connection's failure must not stop the others' writes
                    log.exception("flushing a connection failed")
            if bulk and tick:  # early work (an event owed) leaves bulk writes to the ticks
                self._flush_bulk(bulk)
        finally:
            forget_joined()

    def _flush_bulk(self, bulk: deque[Flushable]) -> None:
        until = time.perf_counter() + BULK_TICK_S
        while bulk:
            conn = bulk.popleft()
            try:
                conn.flush()
            except Exception:
                log.exception("flushing a connection failed")
            if time.perf_counter() >= until:
                break
        if bulk and not self._scheduled:
            self._schedule()  # the rest in the next tick, after the loop polled
