"""A small typed client for the realtime protocol, for tests, benchmarks and `tail`.

It is built only on the models generated from `schemas/` (`generated/`), never on
the server's own models: it proves the published schema is enough for a consumer
in another codebase. Topic payloads are typed by `TopicPayloads`, given a `Topics`
model generated from a registry's `schemas/topics.json`; without one they stay dicts.

    async with connect("ws://localhost:8080/api/realtime", token=token) as client:
        await client.subscribe("sessions.state")
        session = await client.request("sessions.create", CreateSession(title="x"), result=Session)
        async for message in client:
            ...

`request` is typed by the models generated from `schemas/methods.json`
(`--python-methods`): params in, the result model out, a `RequestError` carrying the
response's error code otherwise. Several requests may run at once, and beside a
reader of the other messages: whoever reads hands each response to its request, and
keeps the other messages, in order, for the next `recv`.

Every request carries an `idempotency_key` (yours, or a fresh UUID). An answer
`unavailable` or `timeout` leaves the call's outcome unknown: `request` resends it
with the same key, at most `retries` times (default 2), after a short backoff, so a
method that honours keys runs once and answers with its first outcome. A client is one
connection and does not reconnect: after `ClosedError` (or your own `timeout`), connect
again and call `request` again with the *same* `idempotency_key` — pass your own key
for any call you may have to resend that way. When to connect again is the close
code's advice (the catalogue, `closecodes`): `ClosedError.reconnect_delay()` draws the
delay, within the window a restarting server gives in its close reason
(`reconnect_within_ms=N`), or None for a close that says not to come back.

A token goes in `Authorization: Bearer <token>` (a Python client can send headers; a
browser offers it as the subprotocol `auth.<token>` instead), never in the URL, which
ends up in logs. Every connect offers the subprotocol `realtime.v1`.

A token may expire: `hello.auth_expires_in_s` says in how many seconds
(`RealtimeClient.auth_expires_at`, on `time.monotonic()`'s clock, says when). Before
then, `await client.refresh(new_token)` presents a new one in band (an `auth` frame):
the subscriptions go on without a gap, except those the new token no longer allows,
which end with a `forbidden` error (read like any other frame). Without a refresh the
server closes with 4001, whose advice is `new_token`: get a new token, then connect
again at once (`ClosedError.reconnect_delay()` treats it like `now`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar, overload

import aiohttp
from multidict import CIMultiDict
from pydantic import BaseModel, RootModel, TypeAdapter

from .closecodes import Reconnect, reconnect_advice, reconnect_within_ms
from .generated.client_message import (
    AuthFrame,
    ClientMessage,
    PingFrame,
    RequestFrame,
    SubscribeFrame,
    UnsubscribeFrame,
)
from .generated.server_message import (
    AuthedFrame,
    ErrorFrame,
    EventFrame,
    HelloFrame,
    PongFrame,
    ResponseError,
    ResponseFrame,
    ServerMessage,
    SnapshotFrame,
)

Message = HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame | ResponseFrame | AuthedFrame
#: The answer a pending `request` or `auth` waits for (an error frame with its id is
#: turned into an error `ResponseFrame`).
_Answer = ResponseFrame | AuthedFrame
R = TypeVar("R", bound=BaseModel)
#: How many abandoned request ids a client remembers (to drop their late responses).
_ABANDONED_KEPT = 1024
#: The response error codes after which a call's outcome is unknown: resent with its key.
UNKNOWN_OUTCOME = frozenset({"unavailable", "timeout"})
#: Backoff before the n-th resend (n = 0, 1, ...): random(0, min(cap, base * 2**n)) seconds.
RETRY_BASE_S = 0.1
RETRY_CAP_S = 2.0
#: `ClosedError.reconnect_delay`'s windows: after a close whose advice is `now` and whose
#: reason gives none, and the first attempt after one whose advice is `backoff`.
RECONNECT_NOW_WINDOW_S = 1.0
RECONNECT_BACKOFF_WINDOW_S = 0.5

__all__ = [
    "SUBPROTOCOL",
    "UNKNOWN_OUTCOME",
    "AuthedFrame",
    "ClosedError",
    "ErrorFrame",
    "EventFrame",
    "HelloFrame",
    "Message",
    "PongFrame",
    "RealtimeClient",
    "RequestError",
    "ResponseFrame",
    "SnapshotFrame",
    "TopicPayloads",
    "UnauthorizedError",
    "check_token",
    "connect",
]

#: The subprotocol of protocol version 1, offered on every connect.
SUBPROTOCOL = "realtime.v1"

# What an HTTP header value can carry without quoting: visible ASCII, no whitespace.
_TOKEN = re.compile(r"[\x21-\x7e]+")


class ClosedError(ConnectionError):
    """The server closed the connection: `code` is its close code (None if it dropped),
    `reason` its close reason ("" when none), `reconnect_within_s` the reconnect window
    the reason gives (`reconnect_within_ms=N`, capped at 60 s), or None."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed (code {code})" + (f": {reason!r}" if reason else ""))
        self.code = code
        self.reason = reason
        within_ms = reconnect_within_ms(reason)
        self.reconnect_within_s: float | None = None if within_ms is None else within_ms / 1000

    def reconnect_delay(self, random: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before connecting again, by the close code's advice
        (`closecodes.reconnect_advice`), or None when it is `never` (1000: do not come
        back). Drawn uniformly (full jitter, `random()` in [0, 1)) within a window:

        - `now` (1001 going away, 1012 restart): the window the reason gives
          (`reconnect_within_s`), else `RECONNECT_NOW_WINDOW_S` (1 s), so the clients
          of a restarting server do not all come back in the same instant;
        - `new_token` (4001: the credential expired): the same, once the caller has a
          new token from its provider (the old one is refused);
        - `backoff` (errors; a connection dropped without a close, `code` None or 1006):
          `RECONNECT_BACKOFF_WINDOW_S` (0.5 s). That is the *first* attempt's window: a
          caller that reconnects again and again after failures should grow it
          (exponential backoff with full jitter, e.g. doubling per failure up to 30 s,
          as the TypeScript client does) and start over once a connection stayed up.
        """
        advice = reconnect_advice(1006 if self.code is None else self.code)
        if advice is Reconnect.NEVER:
            return None
        if advice in (Reconnect.NOW, Reconnect.NEW_TOKEN):
            window = RECONNECT_NOW_WINDOW_S if self.reconnect_within_s is None else self.reconnect_within_s
        else:
            window = RECONNECT_BACKOFF_WINDOW_S
        return random() * window


class RequestError(Exception):
    """A request answered with an error: `code` is a catalogue code (`ErrorCode`) or one
    the method declares; `details` what the server added (e.g. `invalid_params`'s field
    errors). Branch on `code`, never on `message`."""

    def __init__(self, method: str, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{method}: {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.details = details


class UnauthorizedError(aiohttp.WSServerHandshakeError):
    """The server refused the upgrade with HTTP 401: no token, or one it does not accept.
    A `WSServerHandshakeError` (so an `aiohttp.ClientError`), raised before any frame."""


def check_token(token: str) -> str:
    """The token, if an `Authorization: Bearer` header can carry it; else ValueError
    (whose message never quotes the token: it is a secret)."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("a token must be non-empty visible ASCII without spaces (no 'Bearer ' prefix)")
    return token


def _headers(token: str | None, headers: Any) -> CIMultiDict[str]:
    merged: CIMultiDict[str] = CIMultiDict(headers or {})
    if token is not None:
        merged["Authorization"] = f"Bearer {check_token(token)}"
    return merged


class SseTransport:
    """The SSE transport (`GET .../sse` for the server's frames, a POST per frame sent),
    behind the part of aiohttp's `ClientWebSocketResponse` the client uses: `receive`
    returns a TEXT message per frame and a CLOSE with the code and reason of the
    stream's `close` event. A stream silent (no frame, no `: ping`) for twice the
    heartbeat is dead: CLOSED with 1006."""

    def __init__(self, session: aiohttp.ClientSession, url: str, response: aiohttp.ClientResponse) -> None:
        self._session = session
        self._url = url
        self._response = response
        self._headers: dict[str, str] = {}
        self._silence_s: float | None = None
        self.closed = False
        self.close_code: int | None = None

    def greeted(self, hello: HelloFrame) -> None:
        """Where to post (the hello's connection id and secret) and the heartbeat."""
        self._url = f"{self._url}/{hello.connection_id}"
        self._headers = {"X-Realtime-Secret": hello.sse_secret or "", "Content-Type": "application/json"}
        self._silence_s = 2.0 * hello.heartbeat_s

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        if self.closed:
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)
        async with asyncio.timeout(timeout):
            name, data = await self._event()
        if name == "close":
            close = json.loads(data)
            self._ended(int(close["code"]))
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, self.close_code, str(close.get("reason", "")))
        if name is None and data:
            return aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, data, None)
        self._ended(1006)
        return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)

    async def _event(self) -> tuple[str | None, str]:
        """The next event's name and data; ("", "") when the stream ended or fell silent."""
        name: str | None = None
        data: list[str] = []
        while True:
            try:
                async with asyncio.timeout(self._silence_s):
                    line = await self._response.content.readline()
            except TimeoutError:
                return "", ""
            except aiohttp.ClientError:
                return "", ""
            if not line:
                return "", ""
            text = line.decode().rstrip("\r\n")
            if not text:
                if data:
                    return name, "\n".join(data)
                name = None
            elif not text.startswith(":"):  # a comment is the heartbeat
                field, _, value = text.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)

    def _ended(self, code: int) -> None:
        self.closed = True
        if self.close_code is None:
            self.close_code = code
        self._response.close()

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("the stream is closed")
        async with self._session.post(self._url, data=text.encode(), headers=self._headers) as response:
            if response.status == 404:  # the stream is gone (or on another node): reconnect
                raise ConnectionResetError("unknown_connection: the stream is gone; reconnect")
            if response.status != 202:
                raise ConnectionError(f"POST refused: {response.status} {await response.text()}")

    async def close(self) -> None:
        self._ended(1000)


async def _receive(ws: aiohttp.ClientWebSocketResponse | SseTransport, timeout: float | None) -> Message:
    msg = await ws.receive(timeout=timeout)
    if msg.type is aiohttp.WSMsgType.TEXT:
        return ServerMessage.model_validate_json(msg.data).root
    if msg.type is aiohttp.WSMsgType.CLOSE:
        # The server's close frame: `data` is its code, `extra` its reason. Only this
        # message carries the reason; after it aiohttp returns CLOSED, with the code alone.
        # The code from the frame, not `ws.close_code`: aiohttp sets that to 1006 when its
        # reply to the close cannot be written (the server already closed the socket).
        reason = msg.extra if isinstance(msg.extra, str) else ""
        raise ClosedError(msg.data if isinstance(msg.data, int) else ws.close_code, reason)
    if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        raise ClosedError(ws.close_code)
    raise ConnectionError(f"unexpected {msg.type.name} frame: {msg.data!r}")


class RealtimeClient:
    """One connection. `hello` is the server's first frame; iterate to read the rest.
    Reading is the caller's job: a client that stops reading is closed as slow (4008)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse | SseTransport, hello: HelloFrame) -> None:
        self.ws = ws
        self.hello = hello
        self._ids = itertools.count()
        #: One reader of the socket at a time; what it reads for others waits here.
        self._reading = asyncio.Lock()
        self._backlog: deque[Message] = deque()
        self._pending: dict[str, asyncio.Future[_Answer]] = {}
        #: Requests given up on (timeout, cancelled): their late responses are dropped.
        self._abandoned: dict[str, None] = {}
        #: How the connection ended, once a read saw it end (iterating ends quietly: look
        #: here for the code, the reason and `reconnect_delay()`); None until then.
        self.close_error: ClosedError | None = None
        #: When the connection's credential expires, on `time.monotonic()`'s clock (from
        #: `hello.auth_expires_in_s`, then each `refresh`); None: it does not expire.
        self.auth_expires_at: float | None = _deadline(hello.auth_expires_in_s)

    def _closed_error(self, code: int | None = None) -> ClosedError:
        """A fresh `ClosedError` for this closed connection, with the server's reason if
        a read saw it (aiohttp hands the reason to the first read after the close only)."""
        reason = self.close_error.reason if self.close_error is not None else ""
        return ClosedError(self.ws.close_code if code is None else code, reason)

    async def send(
        self, message: SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame
    ) -> None:
        await self.ws.send_str(ClientMessage(message).model_dump_json(exclude_none=True))

    async def refresh(self, token: str, *, timeout: float | None = None) -> AuthedFrame:
        """Present a new token for this connection (an `auth` frame) and wait for the
        server to accept it: its `authed`, whose `auth_expires_in_s` (also kept in
        `auth_expires_at`) says when to refresh again. Call it well before the current
        credential expires (say at two thirds of its lifetime). The subscriptions go on
        without a gap; a topic the new token no longer allows ends with a `forbidden`
        error frame (with its topic), read like any other message, before this returns.

        Raises `RequestError` (method "auth") when the server refuses it: `unauthorized`
        (not valid, or expired), `principal_changed` (another principal's token: open a
        new connection for that one), `rate_limited` (a few per minute at most),
        `internal_error`; the connection keeps its credential until that expires (close
        4001). `ClosedError` if the connection closes first, TimeoutError after
        `timeout`."""
        token = check_token(token)
        answer = await self._exchange(lambda id: AuthFrame(type="auth", id=id, token=token), "a", timeout)
        if isinstance(answer, ResponseFrame):
            error = answer.error
            assert error is not None
            raise RequestError("auth", error.code, error.message, error.details)
        self.auth_expires_at = _deadline(answer.auth_expires_in_s)
        return answer

    @overload
    async def request(
        self,
        method: str,
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        result: type[R],
        timeout: float | None = None,
        idempotency_key: str | None = None,
        retries: int = 2,
    ) -> R: ...
    @overload
    async def request(
        self,
        method: str,
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        result: None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        retries: int = 2,
    ) -> dict[str, Any]: ...

    async def request(
        self,
        method: str,
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        result: type[BaseModel] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        retries: int = 2,
    ) -> Any:
        """Call `method` and wait for its response: the result, parsed into `result` (a
        model generated from methods.json) if given, else a dict. Raises `RequestError`
        for an error response, `ClosedError` if the connection closes first, TimeoutError
        after `timeout` (per send); after either, the call's outcome is unknown.

        The request carries `idempotency_key` (default: a fresh UUID). Answered
        `unavailable` or `timeout` (the outcome unknown), it is sent again with the same
        key, after a short random backoff, at most `retries` times; then that error is
        raised. To resend after `ClosedError` or TimeoutError, call again with the same
        key (on a new connection after `ClosedError`): give your own key for that.

        Frames that arrive while it waits (events of your subscriptions) are kept, in
        order, for `recv` and iteration: a program that subscribes must read them, or
        they accumulate here."""
        if isinstance(params, BaseModel):
            body = params.model_dump(mode="json", exclude_none=True, by_alias=True)
        else:
            body = dict(params or {})
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        for attempt in itertools.count():
            response = await self._exchange(
                lambda id: RequestFrame(
                    type="request", id=id, method=method, params=body, idempotency_key=key
                ),
                "r",
                timeout,
            )
            assert isinstance(response, ResponseFrame)
            error = response.error
            if error is None:
                value = response.result or {}
                return value if result is None else result.model_validate(value)
            if error.code not in UNKNOWN_OUTCOME or attempt >= retries:
                raise RequestError(method, error.code, error.message, error.details)
            await asyncio.sleep(random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt)))
        raise AssertionError("unreachable")

    async def _exchange(
        self, frame: Callable[[str], RequestFrame | AuthFrame], prefix: str, timeout: float | None
    ) -> _Answer:
        """Send a `request` or an `auth` once (`frame` of a fresh id) and wait for its answer."""
        if self.ws.closed:
            raise self._closed_error()
        request_id = f"{prefix}{next(self._ids)}"
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        answered = False
        try:
            try:
                await self.send(frame(request_id))
            except (ConnectionError, aiohttp.ClientConnectionError):
                raise self._closed_error() from None
            async with asyncio.timeout(timeout):
                response = await self._answer(answer)
            answered = True
        finally:
            self._pending.pop(request_id, None)
            if not answered:  # its response may still come: not for the reader
                self._abandoned[request_id] = None
                while len(self._abandoned) > _ABANDONED_KEPT:
                    del self._abandoned[next(iter(self._abandoned))]
        return response

    async def _answer(self, answer: asyncio.Future[_Answer]) -> _Answer:
        """Until `answer` is set: by this task reading, or by whoever else reads."""
        while not answer.done():
            turn = asyncio.ensure_future(self._reading.acquire())
            try:
                await asyncio.wait((answer, turn), return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # cancelled, or timed out: give the turn back
                if turn.done() and not turn.cancelled():
                    self._reading.release()
                turn.cancel()
                raise
            if not turn.done():
                turn.cancel()
                try:  # `wait`, not `await turn`: a cancel of this task must not be swallowed
                    await asyncio.wait({turn})
                except BaseException:
                    if turn.done() and not turn.cancelled():
                        self._reading.release()
                    raise
            if turn.done() and not turn.cancelled():
                try:
                    if not answer.done():
                        self._backlog.extend(await self._read(None))
                except ClosedError:
                    answer.exception()  # set by `_read`: raised here instead
                finally:
                    self._reading.release()
        return answer.result()

    async def _read(self, timeout: float | None) -> list[Message]:
        """Read one frame (the reading lock held): a response of a pending request is
        handed to it; anything else is returned."""
        try:
            message = await _receive(self.ws, timeout)
        except ClosedError as exc:
            if self.close_error is None or (exc.reason and not self.close_error.reason):
                self.close_error = exc
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(self._closed_error(exc.code))
            if exc.reason or not self.close_error.reason:
                raise
            raise self._closed_error(exc.code) from None
        if isinstance(message, ResponseFrame | AuthedFrame):
            if self._abandoned.pop(message.id, ...) is None:
                return []
            pending = self._pending.get(message.id)
            if pending is not None and not pending.done():
                pending.set_result(message)
                return []
        elif isinstance(message, ErrorFrame) and message.id is not None and message.topic is None:
            # A request the server could not read as one (nested too deep, say) is
            # answered by an `error` frame with its id: that request's answer.
            pending = self._pending.get(message.id)
            if pending is not None and not pending.done():
                error = ResponseError(code=message.code.value, message=message.message)
                pending.set_result(ResponseFrame(type="response", id=message.id, error=error))
                return []
        return [message]

    async def subscribe(self, *topics: str, id: str | None = None) -> None:
        await self.send(SubscribeFrame.model_validate({"type": "subscribe", "topics": topics, "id": id}))

    async def unsubscribe(self, *topics: str, id: str | None = None) -> None:
        await self.send(UnsubscribeFrame.model_validate({"type": "unsubscribe", "topics": topics, "id": id}))

    async def recv(self, timeout: float | None = None) -> Message:
        """The next server message (responses to `request` calls go to them, not here);
        `ClosedError` once the connection is closed."""
        while not self._backlog:
            async with self._reading:
                if not self._backlog:
                    self._backlog.extend(await self._read(timeout))
        return self._backlog.popleft()

    async def barrier(self, timeout: float | None = None) -> list[Message]:
        """Ping, and return every message received before its pong: the server answers
        after everything it queued before reading the ping."""
        ping_id = f"barrier-{next(self._ids)}"
        await self.send(PingFrame(type="ping", id=ping_id))
        before = []
        while not (isinstance(m := await self.recv(timeout), PongFrame) and m.id == ping_id):
            before.append(m)
        return before

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.recv()
            except ClosedError:
                return

    async def close(self) -> None:
        await self.ws.close()


@asynccontextmanager
async def connect(
    url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 10,
    token: str | None = None,
    transport: Literal["websocket", "sse"] = "websocket",
    **ws_kwargs: Any,
) -> AsyncIterator[RealtimeClient]:
    """Connect, read `hello`, and close on exit. Uses `session` if given (e.g. a test
    client's), else its own. `token` is sent as `Authorization: Bearer <token>`; a server
    that refuses it (or wants one) raises `UnauthorizedError`. `transport="sse"`: the
    same client over Server-Sent Events and POSTs (`url` is the WebSocket endpoint's,
    `ws://` or `http://`; its `/sse` is used), for networks that break WebSockets."""
    ws_kwargs["headers"] = _headers(token, ws_kwargs.get("headers"))
    own = session is None
    session = session or aiohttp.ClientSession()
    opened = _sse_connect if transport == "sse" else _ws_connect
    if transport != "sse":
        ws_kwargs.setdefault("protocols", (SUBPROTOCOL,))
    try:
        async with opened(session, url, ws_kwargs, token is not None) as ws:
            first = await _receive(ws, timeout)
            if not isinstance(first, HelloFrame):
                raise ConnectionError(f"expected hello, got {first.type}")
            if isinstance(ws, SseTransport):
                ws.greeted(first)
            client = RealtimeClient(ws, first)
            try:
                yield client
            finally:
                await client.close()
    finally:
        if own:
            await session.close()


@asynccontextmanager
async def _ws_connect(
    session: aiohttp.ClientSession, url: str, ws_kwargs: dict[str, Any], sent_token: bool
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    try:
        ws = await session.ws_connect(url, **ws_kwargs)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status != 401:
            raise
        why = "the server did not accept the token" if sent_token else "the server wants a token (token=...)"
        message = f"unauthorized: {why}"
        raise UnauthorizedError(
            exc.request_info, exc.history, status=401, message=message, headers=exc.headers
        ) from exc
    async with ws:
        yield ws


@asynccontextmanager
async def _sse_connect(
    session: aiohttp.ClientSession, url: str, kwargs: dict[str, Any], sent_token: bool
) -> AsyncIterator[SseTransport]:
    sse_url = re.sub(r"^ws(s?)://", r"http\1://", url.rstrip("/"))
    if not sse_url.endswith("/sse"):
        sse_url += "/sse"
    kwargs = {k: v for k, v in kwargs.items() if k in ("headers", "ssl", "proxy")}
    response = await session.get(sse_url, timeout=aiohttp.ClientTimeout(total=None), **kwargs)
    if response.status == 401:
        response.release()
        why = "the server did not accept the token" if sent_token else "the server wants a token (token=...)"
        raise UnauthorizedError(
            response.request_info, response.history, status=401, message=f"unauthorized: {why}"
        )
    if response.status != 200:
        text = await response.text()
        response.release()
        raise aiohttp.ClientResponseError(
            response.request_info, response.history, status=response.status, message=text
        )
    transport = SseTransport(session, sse_url, response)
    try:
        yield transport
    finally:
        await transport.close()


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


class TopicPayloads:
    """Parses `snapshot` and `event` payloads into the types of their topic, from a
    `Topics` model generated from `schemas/topics.json`: each field's alias is a topic
    pattern (`{param}` matches any value), its type a model of `snapshot` and `event`."""

    def __init__(self, topics_model: type[BaseModel]) -> None:
        self._topics: list[tuple[re.Pattern[str], TypeAdapter[Any], TypeAdapter[Any]]] = []
        for field in topics_model.model_fields.values():
            entry: Any = field.annotation
            pattern = field.alias or ""
            regex = re.compile(".+".join(re.escape(p) for p in re.split(r"\{[^}]*\}", pattern)))
            snapshot, event = (entry.model_fields[kind].annotation for kind in ("snapshot", "event"))
            self._topics.append((regex, TypeAdapter(snapshot), TypeAdapter(event)))

    def parse(self, message: SnapshotFrame | EventFrame) -> Any:
        """The payload as its topic's model (a union's member, unwrapped)."""
        for regex, snapshot, event in self._topics:
            if regex.fullmatch(message.topic):
                adapter = snapshot if isinstance(message, SnapshotFrame) else event
                value = adapter.validate_python(message.payload)
                return value.root if isinstance(value, RootModel) else value
        raise KeyError(f"no published topic matches {message.topic!r}")
