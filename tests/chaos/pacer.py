"""Requests fired at a steady pace whatever happens to the earlier ones (a client that
times out sends the next request anyway), each timed against the bound the server
states for it: an HTTP request that needs PostgreSQL answers within the store's
deadline, a socket request within `hello.request_timeout_s`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.nodes import Node
from tests.chaos.profile import SLACK_S, STORE_TIMEOUT_S
from tests.chaos.writers import CLIENT_TIMEOUT_S, Attempt, SocketCaller, Write, http_attempt


@dataclass
class Timed:
    kind: str
    attempt: Attempt
    bound: float

    @property
    def late(self) -> bool:
        return self.attempt.elapsed > self.bound + SLACK_S


@dataclass
class Kind:
    """One kind of request to one node: `make` the write (None: a read of the sessions)."""

    name: str
    node: Node
    via: str  # http, socket
    make: Callable[[int], Write] | None
    http: aiohttp.ClientSession
    caller: SocketCaller | None = None


@dataclass
class Pacer:
    kinds: list[Kind]
    period_s: float = 1.0
    timed: list[Timed] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop firing, and wait for every request fired (each bounded by the client's
        own timeout)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for kind in self.kinds:
            if kind.caller is not None:
                await kind.caller.close()

    def between(self, since: float, until: float) -> list[Timed]:
        return [t for t in self.timed if since <= t.attempt.started < until]

    async def _run(self) -> None:
        for n in itertools.count():
            for kind in self.kinds:
                task = asyncio.create_task(self._fire(kind, n))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self.period_s)  # the pace

    async def _fire(self, kind: Kind, n: int) -> None:
        if kind.make is None:
            attempt = await _read(kind.http, kind.node)
            self.timed.append(Timed(kind.name, attempt, STORE_TIMEOUT_S))
            return
        write = kind.make(n)
        if kind.via == "http":
            attempt = await http_attempt(kind.http, kind.node, write)
            self.timed.append(Timed(kind.name, attempt, STORE_TIMEOUT_S))
        else:
            if kind.caller is None:
                kind.caller = SocketCaller(kind.http, kind.node)
            attempt = await kind.caller.attempt(write)
            bound = kind.caller.request_timeout_s or STORE_TIMEOUT_S
            self.timed.append(Timed(kind.name, attempt, bound))


async def _read(http: aiohttp.ClientSession, node: Node) -> Attempt:
    started = time.monotonic()
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            async with http.get(f"{node.url}/api/sessions") as resp:
                await resp.read()
                status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Attempt(node.name, started, time.monotonic() - started, "unknown", type(exc).__name__)
    outcome = "ok" if status == 200 else "unknown" if status >= 500 else "failed"
    return Attempt(node.name, started, time.monotonic() - started, outcome, str(status))
