# Generated from server-message.json by python -m aiohttp_realtime.typegen. Do not edit.

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel


class AuthedFrame(BaseModel):
    """
    The answer to the `auth` with this `id`: its token is the connection's credential
    from now on. It comes after the `forbidden` error of every topic the token no longer
    allows (those are unsubscribed); the other subscriptions went on without a gap.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['authed']
    id: str
    auth_expires_in_s: float | None = None
    """
    Seconds from this frame until the new credential expires; absent when it does not. Refresh again before then.
    """


class ErrorCode(StrEnum):
    """
    The code of an `error` frame. Branch on it, never on `message`.
    """

    INVALID_JSON = 'invalid_json'
    """
    The frame was not valid JSON. Fix the client; the connection stays open.
    """
    INVALID_MESSAGE = 'invalid_message'
    """
    The frame was JSON but not a valid client message (missing or wrongly typed field, binary frame). Fix the client; the connection stays open.
    """
    UNKNOWN_TYPE = 'unknown_type'
    """
    The `type` field names no client message. The connection stays open.
    """
    UNKNOWN_TOPIC = 'unknown_topic'
    """
    The topic matches no registered topic, or names a resource that does not exist. Carries `topic`; the other topics of the same subscribe are still served.
    """
    TOO_MANY_TOPICS = 'too_many_topics'
    """
    Subscribing would exceed the per-connection topic limit announced in `hello.max_topics`. Carries `topic`; unsubscribe from something first.
    """
    SNAPSHOT_FAILED = 'snapshot_failed'
    """
    The server could not build the topic's snapshot (internal error or timeout). Carries `topic`; the client is not subscribed to it and may retry with backoff.
    """
    SNAPSHOT_TOO_LARGE = 'snapshot_too_large'
    """
    The topic's snapshot is larger than `hello.max_snapshot_bytes`, so it is not sent. Carries `topic`; the client is not subscribed to it. Retrying does not help until the topic shrinks.
    """
    FORBIDDEN = 'forbidden'
    """
    The connection's principal may not subscribe to this topic. Carries `topic`; the other topics of the same subscribe are still served. Retrying does not help. After an `auth` (carrying its `id`): the new token no longer allows a topic the connection was subscribed to; it is unsubscribed, the other topics go on.
    """
    RATE_LIMITED = 'rate_limited'
    """
    The client sent frames (`hello.frames_per_s`), subscribed to topics (`hello.subscribes_per_s`) or sent `auth` frames (a few per minute) faster than allowed; this message was dropped. Slow down: a client that keeps sending while limited is closed with 1008.
    """
    UNAVAILABLE = 'unavailable'
    """
    The server cannot reach its backplane right now, so it cannot subscribe to this topic. Carries `topic`; the client is not subscribed to it. Retry with backoff.
    """
    METHOD_NOT_FOUND = 'method_not_found'
    """
    A `response` error: the `request` named no method this server serves. Retrying does not help.
    """
    INVALID_PARAMS = 'invalid_params'
    """
    A `response` error: the `request`'s `params` do not match the method's params type; `details` lists the field errors (`loc`, `msg`, `type`). Fix the call.
    """
    INTERNAL_ERROR = 'internal_error'
    """
    A `response` error: the method failed on the server (logged there with the connection id). Whether it took effect is unknown: resync from the snapshots. Answering an `auth`: the server's authentication hook failed; the connection keeps its credential, retry with backoff.
    """
    TIMEOUT = 'timeout'
    """
    A `response` error: the method did not finish within the server's `hello.request_timeout_s` and was cancelled. Whether it took effect is unknown.
    """
    TOO_MANY_REQUESTS = 'too_many_requests'
    """
    A `response` error: the connection already has `hello.max_requests_in_flight` requests unanswered; this one was not run. Wait for a response, then retry.
    """
    IDEMPOTENCY_KEY_REUSED = 'idempotency_key_reused'
    """
    A `response` error: the `request`'s `idempotency_key` was already used (within the server's window, by the same principal) for a call of another method or with other params; this one was not run. Use a fresh key for a new call.
    """
    UNAUTHORIZED = 'unauthorized'
    """
    Answering an `auth` (with its `id`): the token is not valid, or has expired. The connection keeps its current credential until that expires (then 4001): get another token and send `auth` again.
    """
    PRINCIPAL_CHANGED = 'principal_changed'
    """
    Answering an `auth` (with its `id`): the token is valid but names another principal than the connection's, and a connection's principal never changes. The connection keeps its current credential until that expires (then 4001); to act as the other principal, open a new connection with that token.
    """


class ErrorFrame(BaseModel):
    """
    A client message could not be (fully) served. The connection stays open.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['error']
    code: ErrorCode
    message: str
    id: str | None = None
    topic: str | None = None


class EventFrame(BaseModel):
    """
    A delta for a topic. Per topic, `seq` grows by exactly 1 per event.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['event']
    topic: str
    seq: int
    payload: dict[str, Any]


class Transport(StrEnum):
    """
    The transport this connection uses: `sse` on the Server-Sent Events transport (`GET /api/realtime/sse`); absent on the WebSocket (read absent as `websocket`). docs/protocol.md, Transports: WebSocket and SSE.
    """

    websocket = 'websocket'
    sse = 'sse'


class HelloFrame(BaseModel):
    """
    Always the first frame of a connection: who you are and the limits to respect.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['hello']
    connection_id: str
    """
    Opaque id of this connection, for logs.
    """
    server_time: AwareDatetime
    protocol: Literal[1]
    """
    Protocol version (`PROTOCOL_VERSION`).
    """
    heartbeat_s: int
    """
    Seconds between the server's WebSocket pings; a peer that never answers is closed.
    """
    max_queue_bytes: int
    """
    Bytes the server buffers for this client before closing it with 4008.
    """
    max_frame_bytes: int
    """
    Largest client frame accepted; a larger one closes with 1009.
    """
    max_topics: int
    """
    Most topics one connection may subscribe to.
    """
    max_snapshot_bytes: int
    """
    Largest snapshot sent; a larger one is refused with `snapshot_too_large`.
    """
    frames_per_s: float
    """
    Client frames per second allowed on average; more: `rate_limited`.
    """
    subscribes_per_s: float
    """
    Topics subscribed per second allowed on average; more: `rate_limited`.
    """
    auth: bool
    """
    Whether the server authenticates connections (false: authentication is off).
    """
    max_requests_in_flight: int
    """
    Requests one connection may have unanswered; more: `too_many_requests`.
    """
    request_timeout_s: float
    """
    Seconds a method may run; slower: `timeout`.
    """
    principal: str | None = None
    """
    Who this connection is authenticated as; absent with auth off.
    """
    auth_expires_in_s: float | None = None
    """
    Seconds from this frame until the connection's credential expires; absent when it does not (or auth is off). Refresh before then with an `auth` frame, else the connection is closed with 4001. Seconds, not a time: the client's clock does not matter.
    """
    transport: Transport | None = None
    """
    The transport this connection uses: `sse` on the Server-Sent Events transport (`GET /api/realtime/sse`); absent on the WebSocket (read absent as `websocket`). docs/protocol.md, Transports: WebSocket and SSE.
    """
    sse_secret: str | None = None
    """
    SSE transport only: the secret that authorises this connection's client frames, sent as the `X-Realtime-Secret` header of `POST /api/realtime/sse/{connection_id}` (32 random bytes, URL-safe base64). Keep it out of logs and URLs; it dies with the connection.
    """


class PongFrame(BaseModel):
    """
    Answer to `ping`, echoing its `id`.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['pong']
    id: str | None = None


class ResponseError(BaseModel):
    """
    Why a request failed.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    code: str
    """
    An `ErrorCode` of the catalogue, or one of the codes the method declares (the method map's `errors`). Branch on it, never on `message`.
    """
    message: str
    details: Any | None = None
    """
    Structured detail, e.g. the field errors of `invalid_params`.
    """


class ResponseFrame(BaseModel):
    """
    The answer to the `request` with this `id`: exactly one of `result` (typed by
    the method: the method map's `result`) or `error`.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['response']
    id: str
    result: dict[str, Any] | None = None
    error: ResponseError | None = None


class SnapshotFrame(BaseModel):
    """
    A topic's whole current state. Replace, don't merge. `seq` is the seq of the
    last event the state reflects; the events that follow have larger seqs.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['snapshot']
    topic: str
    seq: int
    payload: dict[str, Any]


class ServerMessage(
    RootModel[
        HelloFrame
        | SnapshotFrame
        | EventFrame
        | ErrorFrame
        | PongFrame
        | ResponseFrame
        | AuthedFrame
    ]
):
    root: Annotated[
        HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame | ResponseFrame | AuthedFrame,
        Field(discriminator='type', title='ServerMessage'),
    ]
    """
    A frame the server sends (serialization mode: exactly what is sent).
    """
