"""Writers that record what happened to every write: over HTTP (`POST /api/sessions`,
`PATCH /api/sessions/{id}`, `POST /api/sessions/{id}/messages`) or as socket requests
(`sessions.create`, `sessions.update`, `messages.send`), optionally under an idempotency
key (the `Idempotency-Key` header, the request frame's `idempotency_key`).

Each attempt ends in one of:
- `ok`: acknowledged (2xx, a `result`);
- `failed`: refused for good (a 4xx, an error code the method declares): not applied;
- `refused`: not run (429, `rate_limited`, `too_many_requests`): safe to send again;
- `unknown`: the client cannot tell (503 or `unavailable`, 500, `timeout`, a dropped
  connection, no answer within the client's own timeout): it may have been applied.

A retrying writer sends a write whose outcome is unknown again, with the same key,
until it learns an outcome or gives up; the `Ledger` keeps every attempt so that a test
can compare what clients were told with what the database holds."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.chaos.nodes import Node
from tests.chaos.sockets import Frame, RawSocket

#: How long a client waits for any answer before it calls the outcome unknown: well
#: beyond every timeout the server states, so that a server that hangs is seen as one.
CLIENT_TIMEOUT_S = 20.0
UNKNOWN_STATUSES = frozenset({500, 502, 503, 504})
UNKNOWN_CODES = frozenset({"unavailable", "timeout", "internal_error"})
REFUSED_CODES = frozenset({"rate_limited", "too_many_requests"})
METHODS = {"create": "sessions.create", "update": "sessions.update", "message": "messages.send"}

_ids = itertools.count()


@dataclass
class Attempt:
    node: str
    started: float
    elapsed: float
    outcome: str  # ok, failed, refused, unknown
    detail: str  # the status, the error code, or the exception


@dataclass
class Write:
    op: str  # create, update, message
    via: str  # http, socket
    params: dict[str, Any]
    key: str | None
    attempts: list[Attempt] = field(default_factory=list)
    result: dict[str, Any] | None = None
    seq: int = field(default_factory=lambda: next(_ids))

    @property
    def outcome(self) -> str:
        """What the client finally knows: ok, failed, or unknown (it gave up)."""
        if not self.attempts:
            return "unknown"
        last = self.attempts[-1].outcome
        return "unknown" if last == "refused" else last

    @property
    def value(self) -> str:
        """The title or text it writes (unique per write)."""
        return str(self.params.get("title") or self.params.get("text"))


@dataclass
class Ledger:
    writes: list[Write] = field(default_factory=list)

    def attempts(self) -> list[Attempt]:
        return [a for w in self.writes for a in w.attempts]

    def count(self, outcome: str) -> int:
        return sum(1 for w in self.writes if w.outcome == outcome)

    def slowest(self, *, since: float = 0.0, until: float = float("inf")) -> float:
        times = [a.elapsed for a in self.attempts() if since <= a.started <= until]
        return max(times, default=0.0)


# ---------------------------------------------------------------- one attempt


async def http_attempt(http: aiohttp.ClientSession, node: Node, write: Write) -> Attempt:
    p = write.params
    if write.op == "create":
        method, path, body = "POST", "/api/sessions", {"title": p["title"]}
    elif write.op == "update":
        method, path, body = "PATCH", f"/api/sessions/{p['id']}", {"title": p["title"]}
    else:
        method, path, body = (
            "POST",
            f"/api/sessions/{p['session_id']}/messages",
            {"role": "user", "text": p["text"]},
        )
    headers = {"Idempotency-Key": write.key} if write.key else {}
    started = time.monotonic()
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            async with http.request(method, node.url + path, json=body, headers=headers) as resp:
                status = resp.status
                data = await resp.json(content_type=None) if resp.content_length != 0 else None
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return Attempt(node.name, started, time.monotonic() - started, "unknown", type(exc).__name__)
    elapsed = time.monotonic() - started
    if 200 <= status < 300:
        write.result = data
        return Attempt(node.name, started, elapsed, "ok", str(status))
    if status == 429:
        outcome = "refused"
    elif status in UNKNOWN_STATUSES:
        outcome = "unknown"
    else:
        outcome = "failed"
    code = data.get("error") if isinstance(data, dict) else None
    return Attempt(node.name, started, elapsed, outcome, f"{status} {code}")


class SocketCaller:
    """Requests over one realtime connection to one node, reconnected when it drops."""

    def __init__(self, http: aiohttp.ClientSession, node: Node) -> None:
        self.http = http
        self.node = node
        self._socket: RawSocket | None = None
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self.request_timeout_s: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def _connected(self) -> RawSocket:
        async with self._connecting:  # concurrent requests share one connection
            if self._socket is None or self._socket.closed.is_set():
                if self._socket is not None:
                    await self._socket.close()
                self._socket = None
                socket = await RawSocket.connect(self.http, self.node.ws_url)
                self.request_timeout_s = float(socket.hello["request_timeout_s"])
                socket.read_into(self._on_frame)
                self._socket = socket
                self._watcher = asyncio.create_task(self._fail_pending_on_close(socket))
            return self._socket

    async def _fail_pending_on_close(self, socket: RawSocket) -> None:
        await socket.closed.wait()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"closed ({socket.close_code})"))

    def _on_frame(self, frame: Frame) -> None:
        if frame.get("type") in ("response", "error") and isinstance(frame.get("id"), str):
            future = self._pending.get(frame["id"])
            if future is not None and not future.done():
                future.set_result(frame)

    async def attempt(self, write: Write) -> Attempt:
        method = METHODS[write.op]
        params = dict(write.params)
        if write.op == "message":
            params["role"] = "user"
        frame: Frame = {"type": "request", "id": f"c{next(_ids)}", "method": method, "params": params}
        if write.key:
            frame["idempotency_key"] = write.key
        started = time.monotonic()
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[frame["id"]] = future
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                socket = await self._connected()
                if not await socket.send(frame):
                    raise ConnectionError("send failed")
                answer = await future
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return Attempt(self.node.name, started, time.monotonic() - started, "unknown", type(exc).__name__)
        finally:
            self._pending.pop(frame["id"], None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved
        elapsed = time.monotonic() - started
        if answer.get("type") == "response" and "result" in answer:
            write.result = answer["result"]
            return Attempt(self.node.name, started, elapsed, "ok", "result")
        error = answer.get("error") if answer.get("type") == "response" else answer
        code = str(error.get("code")) if isinstance(error, dict) else "?"
        if code in UNKNOWN_CODES:
            outcome = "unknown"
        elif code in REFUSED_CODES:
            outcome = "refused"
        else:
            outcome = "failed"
        return Attempt(self.node.name, started, elapsed, outcome, code)

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._watcher is not None:
            self._watcher.cancel()


# ---------------------------------------------------------------- writers


@dataclass
class Writer:
    """Sends writes one after another (`make` says which), through `via` to `nodes` in
    turn, at most `rate` per second, until stopped. With `retry`, a write whose outcome
    is unknown is sent again (the same key, the next node) until it is known, or
    `give_up_s` after its first attempt."""

    name: str
    nodes: list[Node]
    via: str
    http: aiohttp.ClientSession
    make: Callable[[int], Write]
    ledger: Ledger
    rate: float = 10.0
    retry: bool = False
    give_up_s: float = 60.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _callers: dict[str, SocketCaller] = field(default_factory=dict)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"writer {self.name}")

    async def stop(self, *, timeout: float) -> None:
        """Ask it to stop after the write in hand (retried to its end), and wait."""
        self._stop.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        for caller in self._callers.values():
            await caller.close()

    async def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            started = time.monotonic()
            write = self.make(n)
            self.ledger.writes.append(write)
            await self.perform(write, first_node=n)
            spare = 1 / self.rate - (time.monotonic() - started)
            if spare > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(spare):  # the writer's pace
                        await self._stop.wait()

    async def perform(self, write: Write, *, first_node: int = 0) -> None:
        deadline = time.monotonic() + self.give_up_s
        for attempt in itertools.count():
            node = self.nodes[(first_node + attempt) % len(self.nodes)]
            result = await self._attempt(node, write)
            write.attempts.append(result)
            if result.outcome in ("ok", "failed"):
                return
            if result.outcome == "unknown" and not self.retry:
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(random.uniform(0.1, 0.5))  # backoff before a resend

    async def _attempt(self, node: Node, write: Write) -> Attempt:
        if self.via == "http":
            return await http_attempt(self.http, node, write)
        caller = self._callers.get(node.name)
        if caller is None:
            caller = self._callers[node.name] = SocketCaller(self.http, node)
        return await caller.attempt(write)


def fresh_key() -> str:
    return str(uuid.uuid4())
