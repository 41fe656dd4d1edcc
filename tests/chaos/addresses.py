"""Local source addresses: the nodes limit writes and connections per client address
(20 writes/s, 256 sockets), so a load bigger than one client's comes from several
127.0.0.x addresses, as several clients' would. Linux routes all of 127/8 to `lo`."""

from __future__ import annotations

import aiohttp

#: 127.0.0.1 is left to the harness's own probes.
FIRST, COUNT = 2, 250


def address(i: int) -> str:
    """The i-th client address (wrapping around after COUNT)."""
    return f"127.0.0.{FIRST + i % COUNT}"


def session(i: int, *, timeout_s: float | None = None, limit: int = 100) -> aiohttp.ClientSession:
    """An HTTP/WebSocket client session whose connections come from `address(i)`."""
    connector = aiohttp.TCPConnector(local_addr=(address(i), 0), limit=limit)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s))
