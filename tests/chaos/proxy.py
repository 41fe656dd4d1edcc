"""A TCP proxy between one node and one server (Redis or PostgreSQL) that breaks the
network on command, as it breaks in production: the node connects to the proxy, the
proxy to the server, and bytes flow through unchanged until a test says otherwise.

Faults (each applies until `heal`):

- `cut()`: HALF-OPEN. Nothing is forwarded any more, in either direction, and both
  sockets stay open: no FIN, no RST. This is what a middlebox dropping idle flows, or a
  failover that never sent a FIN, does: each end learns only from its own timeouts. New
  connections are accepted (the proxy's kernel answers the handshake) and then hear
  nothing, like connects into a black hole. `close_upstream=True` closes the server's
  side at once (the server sees the client go: PostgreSQL ends the session and releases
  its advisory locks), and keeps the node's side half-open.
- `cut_after(marker)`: the same cut, armed: it happens right after the server's reply
  to the first chunk the node sends that contains `marker` has been forwarded (e.g.
  `b"COMMIT"`: after the commit's reply, before the node can publish).
- `blackhole()`: new connections are held as above; established ones still flow.
- `delay(s)`: every chunk is forwarded `s` seconds after it was read, in order, in both
  directions (latency, not bandwidth).
- `heal(resume=...)`: forwarding starts again for new connections. Connections frozen by
  a cut either resume where they stopped (`resume=True`: the network came back before
  either TCP stack gave up, so no byte is lost), or stay dead (`resume=False`: the
  middlebox forgot them; each end has to find out by itself). A connection whose server
  side was closed by the cut is reset on the node's side when healed (the server's host
  answers the node's next packet with a RST).

While frozen, a connection is not read from: the sender's kernel buffers fill and its
writes block, as with a peer that no longer acknowledges anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

from tests.support import free_port

CHUNK = 64 * 1024


@dataclass
class _Pipe:
    """One direction of a link: chunks read, waiting for their time to be written."""

    queue: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)


class _Link:
    """One proxied connection: the node's socket and the server's."""

    def __init__(self, client: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        self.client_reader = reader
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.server_reader: asyncio.StreamReader | None = None
        #: Set while bytes may flow.
        self.flowing = asyncio.Event()
        #: Frozen for good (a cut healed without resume): never set `flowing` again.
        self.dead = False
        self.upstream_closed = False
        self.tasks: list[asyncio.Task[None]] = []
        #: Armed by `cut_after`: the marker was sent upstream; cut after the next reply.
        self.reply_awaited = False

    def freeze(self) -> None:
        self.flowing.clear()

    def close_upstream(self) -> None:
        self.upstream_closed = True
        if self.server is not None:
            self.server.close()

    def reset(self) -> None:
        """RST both sides (SO_LINGER 0)."""
        for writer in (self.client, self.server):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    def close(self) -> None:
        self.dead = True
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:`port`, forwards to `upstream` (host, port)."""

    def __init__(self, upstream: tuple[str, int], *, name: str = "proxy") -> None:
        self.upstream = upstream
        self.name = name
        self.port = free_port()
        self.delay_s = 0.0
        #: "pass", "cut" (existing links frozen, new ones held) or "blackhole" (new held).
        self.mode = "pass"
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._cut_after: tuple[bytes, bool] | None = None
        self.cut_done = asyncio.Event()
        #: Markers to watch for in forwarded upstream chunks: marker -> times forwarded.
        self._watched: dict[bytes, list[float]] = {}
        #: Connections accepted so far.
        self.connections = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        links, self._links = list(self._links), set()
        for link in links:
            link.close()
        await asyncio.gather(*(t for link in links for t in link.tasks), return_exceptions=True)

    # ------------------------------------------------------------ faults

    def cut(self, *, close_upstream: bool = False) -> None:
        """Half-open: stop forwarding both ways, keep the sockets open (no FIN/RST)."""
        self.mode = "cut"
        for link in self._links:
            link.freeze()
            if close_upstream:
                link.close_upstream()
        self.cut_done.set()

    def cut_after(self, marker: bytes, *, close_upstream: bool = False) -> asyncio.Event:
        """Arm a `cut`: right after the reply to the first upstream chunk containing
        `marker` was forwarded. Returns the event set when it has happened."""
        self.cut_done = asyncio.Event()
        self._cut_after = (marker, close_upstream)
        return self.cut_done

    def blackhole(self) -> None:
        """New connections are accepted and then hear nothing."""
        self.mode = "blackhole"

    def delay(self, seconds: float) -> None:
        """Forward each chunk read from now on `seconds` after it was read."""
        self.delay_s = seconds

    def heal(self, *, resume: bool) -> None:
        self.mode = "pass"
        self.delay_s = 0.0
        self._cut_after = None
        for link in list(self._links):
            if link.dead or link.flowing.is_set():
                continue
            if link.upstream_closed and link.server is not None:
                self._reset(link)  # the server forgot it: the node's next packet gets a RST
                continue
            if resume:
                if link.server is None:
                    link.tasks.append(asyncio.create_task(self._connect(link)))
                else:
                    link.flowing.set()
            else:
                link.dead = True

    def reset_all(self) -> None:
        """RST every connection now (a crash of the path, loudly)."""
        for link in list(self._links):
            self._reset(link)

    def _reset(self, link: _Link) -> None:
        link.reset()
        link.close()
        self._links.discard(link)

    # ------------------------------------------------------------ observation

    def watch(self, marker: bytes) -> list[float]:
        """From now on, the times at which an upstream chunk containing `marker` was
        forwarded to the server (a list that grows)."""
        return self._watched.setdefault(marker, [])

    # ------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(writer, reader)
        self._links.add(link)
        if self.mode == "pass":
            await self._connect(link)
        # else held: no upstream connection until healed with resume

    async def _connect(self, link: _Link) -> None:
        try:
            link.server_reader, link.server = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._reset(link)  # the server refuses: so does the proxy
            return
        up, down = _Pipe(), _Pipe()
        link.tasks += [
            asyncio.create_task(self._read(link, link.client_reader, up)),
            asyncio.create_task(self._write(link, up, link.server, upstream=True)),
            asyncio.create_task(self._read(link, link.server_reader, down)),
            asyncio.create_task(self._write(link, down, link.client, upstream=False)),
        ]
        if self.mode == "pass":  # else cut while connecting: held
            link.flowing.set()

    async def _read(self, link: _Link, reader: asyncio.StreamReader, pipe: _Pipe) -> None:
        try:
            while True:
                await link.flowing.wait()
                data = await reader.read(CHUNK)
                pipe.queue.put_nowait((time.monotonic() + self.delay_s, data))
                if not data:
                    return
        except (OSError, asyncio.IncompleteReadError):
            pipe.queue.put_nowait((time.monotonic(), b""))

    async def _write(self, link: _Link, pipe: _Pipe, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        try:
            while True:
                due, data = await pipe.queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the chunk's latency
                await link.flowing.wait()
                if not data:  # EOF from the other side: close both, as proxies do
                    self._finish(link)
                    return
                writer.write(data)
                await writer.drain()
                if upstream:
                    self._sent_upstream(link, data)
                elif link.reply_awaited:
                    link.reply_awaited = False
                    close_upstream = self._cut_after[1] if self._cut_after else False
                    self._cut_after = None
                    self.cut(close_upstream=close_upstream)
        except OSError:
            self._finish(link)

    def _sent_upstream(self, link: _Link, data: bytes) -> None:
        now = time.monotonic()
        for marker, times in self._watched.items():
            if marker in data:
                times.append(now)
        if self._cut_after is not None and self._cut_after[0] in data:
            link.reply_awaited = True

    def _finish(self, link: _Link) -> None:
        if link.flowing.is_set():
            for writer in (link.client, link.server):
                if writer is not None:
                    writer.close()
            self._links.discard(link)
