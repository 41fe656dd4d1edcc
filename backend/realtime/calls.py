"""Running `request` frames: one task per call, its response through the outbox.

A call is validated in the receive loop (unknown method, too many in flight, bad
params are answered at once, without a task), then runs in its own task, so the
connection keeps serving pings, subscribes and other calls meanwhile. Every outcome
is a `response` frame with the request's `id`, queued through the connection's
bounded outbox like any other frame:

- the handler's result, validated against the method's result model;
- `MethodError(code)`: that code, if the method declares it or it is a catalogue code;
- `BrokerUnavailable`: `unavailable`;
- slower than `request_timeout_s`: cancelled, `timeout`;
- anything else (a wrong result included): `internal_error`, logged with the
  connection id, never shown to the client.

Ordering (docs/protocol.md, "Requests"): the response comes *after* the events the
call published on topics the connection is live on. The hub records what a call
publishes (`PUBLISHED`, a context variable of the call's task) and the response
waits until the broker has delivered those seqs here: at once with the in-process
broker, after a round trip with Redis. Why this way round: a client that sees the
response can rely on its state already showing the change (no "done, but not yet
visible" window to paper over), and it costs the client nothing to wait for a
response it would wait for anyway.

A call whose connection closes runs on to its end (or its timeout): a command is
never half-applied because a network path blinked. Its response is dropped; the
client learns the outcome from the snapshots it resyncs from. Nothing is replayed. A
client may resend the call with the request's `idempotency_key` (handed to the handler
as `Caller.idempotency_key`): a method that honours keys answers with its first outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import pydantic
import pydantic_core

from . import metrics
from .broker import BrokerUnavailable
from .errors import ErrorCode
from .frames import response_error_frame, result_frame
from .jsonguard import safe_name
from .methods import BoundMethod, Caller, MethodError, MethodRegistry
from .protocol import RequestFrame
from .settings import RealtimeSettings

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)


class Published:
    """What one call has published: topic → its highest seq. Closed when the call's
    handler returns, so a task it left running records nothing more into it."""

    __slots__ = ("open", "seqs")

    def __init__(self) -> None:
        self.open = True
        self.seqs: dict[str, int] = {}

    def add(self, topic: str, seq: int) -> None:
        if self.open and seq > self.seqs.get(topic, 0):
            self.seqs[topic] = seq


#: The call the current task runs, if any: `Hub.publish` records into it.
PUBLISHED: ContextVar[Published | None] = ContextVar("aiohttp_realtime_published", default=None)


class Deliveries(Protocol):
    """What the calls need of the hub: the wait that orders a response after its events."""

    async def delivered(self, conn: Connection, published: dict[str, int], timeout: float) -> None:
        """Until what `conn` is owed of `published` (topic → seq) was routed to it, or
        `timeout` passed."""


class Calls:
    """Runs the requests of one hub's connections. `settings` is read per call (a hub's
    settings may be replaced while it serves)."""

    def __init__(
        self,
        deliveries: Deliveries,
        methods: MethodRegistry | None,
        settings: Callable[[], RealtimeSettings],
    ) -> None:
        self._deliveries = deliveries
        self._methods = methods
        self._current_settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        #: Closed connections whose calls still run → what releases their slot.
        self._releases: dict[Connection, Callable[[], None]] = {}

    @property
    def _settings(self) -> RealtimeSettings:
        return self._current_settings()

    def __len__(self) -> int:
        """Calls running now (all connections)."""
        return len(self._tasks)

    def request(self, conn: Connection, frame: RequestFrame) -> None:
        """Answer at once, or start the call. Never awaits."""
        bound = self._methods.get(frame.method) if self._methods is not None else None
        if bound is None:
            return self._answer_error(conn, frame.id, ErrorCode.METHOD_NOT_FOUND, "no such method")
        if conn.requests >= self._settings.max_requests_in_flight:
            msg = f"at most {self._settings.max_requests_in_flight} requests in flight per connection"
            return self._answer_error(conn, frame.id, ErrorCode.TOO_MANY_REQUESTS, msg)
        try:
            params = bound.method.params.model_validate(frame.params)
        except pydantic.ValidationError as exc:
            return self._answer_error(
                conn, frame.id, ErrorCode.INVALID_PARAMS, "invalid params", field_errors(exc)
            )
        except Exception:  # a bug in the app's validator: its call's answer, not the connection's end
            frame_bytes, outcome = self._internal(conn, bound.method.name, frame.id)
            return self._send(conn, frame_bytes, outcome)
        conn.requests += 1
        caller = Caller(conn.principal, conn.id, conn.address, frame.idempotency_key)
        task = asyncio.get_running_loop().create_task(self._run(conn, bound, frame.id, params, caller))
        self._tasks.add(task)
        # Counted down when the task ends, whatever ends it (even cancelled before it ran).
        task.add_done_callback(lambda done: self._ended(done, conn))
        return None

    def release_after_calls(self, conn: Connection, release: Callable[[], None]) -> None:
        """Call `release` (the connection's slot) once `conn`'s calls have ended: a call
        outlives its connection, so the slot bounds calls as it bounds connections."""
        if conn.requests:
            self._releases[conn] = release
        else:
            release()

    def _ended(self, task: asyncio.Task[None], conn: Connection) -> None:
        self._tasks.discard(task)
        conn.requests -= 1
        if not conn.requests:
            release = self._releases.pop(conn, None)
            if release is not None:
                release()

    async def stop(self) -> None:
        """Cancel the calls still running (the app is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, conn: Connection, bound: BoundMethod, request_id: str, params: Any, caller: Caller
    ) -> None:
        method = bound.method
        started = time.perf_counter()
        published = Published()
        PUBLISHED.set(published)  # this task's context only
        loop = asyncio.get_running_loop()
        deadline = asyncio.timeout(self._settings.request_timeout_s)
        when = deadline.when()
        assert when is not None
        # The deadline cancels the handler, but a cancelled handler may take long to
        # unwind (its cleanup awaiting a database that does not answer): the timeout is
        # answered at the deadline by this timer, not when the task gets there. The
        # task still runs to its end, holding its in-flight slot, and sends nothing more.
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            msg = f"the method did not finish within {self._settings.request_timeout_s:g} s"
            self._send(conn, response_error_frame(request_id, ErrorCode.TIMEOUT, msg), ErrorCode.TIMEOUT)

        late = loop.call_at(when, time_out)
        try:
            try:
                async with deadline:
                    value = await bound.handler(params, caller)
            finally:
                published.open = False
                late.cancel()
            frame = result_frame(request_id, method.encode_result(value))
            outcome = "ok"
            # After the events it published, wherever the broker delivers them from,
            # within what is left of the request's time.
            await self._deliveries.delivered(conn, published.seqs, max(0.0, when - loop.time()))
        except TimeoutError:
            if not deadline.expired():  # the handler's own (a database's, say): a failure
                frame, outcome = self._internal(conn, method.name, request_id)
            else:  # answered by the timer, at the deadline
                frame, outcome = b"", ErrorCode.TIMEOUT
        except MethodError as exc:
            frame, outcome = self._method_error(conn, method.name, request_id, exc, method.answers(exc.code))
        except BrokerUnavailable as exc:
            extra = {"connection_id": conn.id, "method": method.name}
            log.warning("connection %s: %s: %s", conn.id, method.name, exc, extra=extra)
            outcome = ErrorCode.UNAVAILABLE
            frame = response_error_frame(
                request_id, outcome, "the server cannot reach its backplane; retry later"
            )
        except Exception:
            frame, outcome = self._internal(conn, method.name, request_id)
        metrics.request_ran(method.name, time.perf_counter() - started)
        if not timed_out:  # else the timer answered it
            self._send(conn, frame, outcome)

    def _method_error(
        self, conn: Connection, name: str, request_id: str, exc: MethodError, declared: bool
    ) -> tuple[bytes, str]:
        if not declared:
            extra = {"connection_id": conn.id, "method": name}
            log.error(
                "connection %s: %s raised undeclared error code %r", conn.id, name, exc.code, extra=extra
            )
            return self._internal(conn, name, request_id, logged=True)
        try:
            return response_error_frame(request_id, exc.code, exc.message, exc.details), exc.code
        except (TypeError, ValueError, pydantic_core.PydanticSerializationError):
            return self._internal(conn, name, request_id)

    @staticmethod
    def _internal(conn: Connection, name: str, request_id: str, *, logged: bool = False) -> tuple[bytes, str]:
        if not logged:
            extra = {"connection_id": conn.id, "method": name}
            log.exception("connection %s: method %s failed", conn.id, name, extra=extra)
        code = ErrorCode.INTERNAL_ERROR
        return response_error_frame(request_id, code, "the method failed; see the server's log"), code

    def _answer_error(
        self, conn: Connection, request_id: str, code: ErrorCode, message: str, details: Any = None
    ) -> None:
        self._send(conn, response_error_frame(request_id, code, message, details), code)

    @staticmethod
    def _send(conn: Connection, frame: bytes, outcome: str) -> None:
        metrics.answered(outcome)
        conn.send(frame)  # a closed connection drops it


def field_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    """`invalid_params` details: each field error's `loc`, `msg` and `type`, never the
    client's input; a key the client made up is quoted only if it is a plain name
    (`jsonguard.safe_name`), else as `"?"`."""
    details = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        kind = error["type"]
        msg = f"invalid value ({kind})" if _quotes_input(kind) else error["msg"]
        details.append({"loc": [safe_name(p) for p in error["loc"]], "msg": msg, "type": kind})
    return details


#: Error types whose pydantic message quotes the input (a tag, or the character a
#: parser stopped at): their text is replaced. The number parsers' messages do not.
_QUOTING = frozenset({"union_tag_invalid", "union_tag_not_found"})
_SAFE_PARSING = frozenset({"int_parsing", "float_parsing", "bool_parsing", "int_parsing_size"})


def _quotes_input(kind: str) -> bool:
    return kind in _QUOTING or (kind.endswith("_parsing") and kind not in _SAFE_PARSING)
