# Generated from client-message.json by python -m aiohttp_realtime.typegen. Do not edit.

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Topic(RootModel[str]):
    root: Annotated[str, Field(max_length=200, min_length=1)]


class UnsubscribeFrame(BaseModel):
    """
    Stop a topic's events. Unsubscribing from a topic not subscribed is a no-op.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['unsubscribe']
    topics: Annotated[list[Topic], Field(max_length=100, min_length=1)]
    id: Annotated[str | None, Field(max_length=128)] = None


class AuthFrame(BaseModel):
    """
    Present a new token for this connection before its credential expires
    (`hello.auth_expires_in_s`, `authed.auth_expires_in_s`): answered by `authed` with
    the same `id`, or by an `error` with it (`unauthorized`: not valid or expired;
    `principal_changed`: another principal's; `rate_limited`: more than a few per
    minute). The token must name the connection's principal. Every current subscription
    is authorized again under it: a topic no longer allowed gets `forbidden` (with its
    `topic` and this `id`, before the `authed`) and is unsubscribed; the others go on
    with no gap - no new snapshot, their events keep flowing. On failure the connection
    keeps its credential until that expires (then close 4001). The server handles one
    `auth` at a time: frames after it are read once it is answered.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['auth']
    id: Annotated[str, Field(max_length=128)]
    """
    Chosen by the client, echoed by the answer.
    """
    token: Annotated[str, Field(max_length=8192, min_length=1, pattern='^[\\x21-\\x7e]+$')]
    """
    The new bearer token, as `Authorization: Bearer` would carry it (visible ASCII, no spaces, no `Bearer ` prefix).
    """


class PingFrame(BaseModel):
    """
    Application-level ping (browsers cannot send WebSocket pings). Answered by a
    `pong` after every frame the server queued before it: a barrier.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['ping']
    id: Annotated[str | None, Field(max_length=128)] = None


class RequestFrame(BaseModel):
    """
    Call a method: answered by exactly one `response` with the same `id` (never
    by an `error` frame, unless the request itself is malformed). Requests run
    concurrently, at most `hello.max_requests_in_flight` at a time; their responses
    come in the order they finish. A response comes after every event its method
    published on a topic this connection is subscribed to (docs/protocol.md). Not
    replayed by the server after a reconnect: a request whose connection drops has an
    unknown outcome. A client that resends it (same method, same params) with the same
    `idempotency_key` gets the first call's outcome, if the method honours keys.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['request']
    id: Annotated[str, Field(max_length=128)]
    """
    Chosen by the client, echoed by the response; unique among its pending requests.
    """
    method: Annotated[str, Field(max_length=200, min_length=1)]
    """
    The method's name.
    """
    params: dict[str, Any] | None = None
    """
    The method's params (a JSON object); absent: `{}`.
    """
    idempotency_key: Annotated[
        str | None, Field(max_length=255, min_length=1, pattern='^[\\x20-\\x7e]+$')
    ] = None
    """
    Fresh per call, the same when the call is resent after an unknown outcome (a dropped connection, a timeout, `unavailable`). A method that writes and honours it runs once per key and answers a resend with the first outcome; the same key with other params is answered `idempotency_key_reused`.
    """


class SubscribeFrame(BaseModel):
    """
    Subscribe to topics. Each gets a `snapshot`, then `event`s. Subscribing to a
    topic already subscribed sends a fresh snapshot (the way to resync one topic).
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['subscribe']
    topics: Annotated[list[Topic], Field(max_length=100, min_length=1)]
    id: Annotated[str | None, Field(max_length=128)] = None


class ClientMessage(
    RootModel[SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame]
):
    root: Annotated[
        SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame,
        Field(discriminator='type', title='ClientMessage'),
    ]
    """
    A frame a client sends (validation mode: what the server accepts).
    """
