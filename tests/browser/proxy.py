"""A TCP relay on loopback that can break the network between a browser and the server.

`cut()` is a hard outage: every relayed connection is reset and the port refuses new
ones until `restore()`, as when a server restarts or a laptop loses its network.
`stall()` is a silent one: connections stay open but no byte moves in either
direction (a dead NAT entry, a laptop waking from sleep), which only an
application-level ping can notice. The proxy forwards bytes unchanged, so the
page's Origin still matches the Host it connects to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

CHUNK = 64 * 1024


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections_accepted = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, self._host, self.port, reuse_address=True)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Reset every relayed connection and refuse new ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._relays):
            task.cancel()  # its `finally` resets both sides
        if self._relays:
            await asyncio.wait(self._relays, timeout=5)

    def stall(self) -> None:
        """Keep connections open (and accept new ones) but move no bytes."""
        self._flowing.clear()

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()
        self._flowing.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(reader, upstream_writer))
                group.create_task(self._pump(upstream_reader, writer))
        except* (ConnectionError, OSError):
            pass  # reset by cut() or by a peer
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    _reset(w)
            self._relays.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        await self._flowing.wait()
        # Half-close: pass the peer's FIN on, like a router would.
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), the way a dropped network path looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.transport.is_closing():
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
