"""The wire protocol: the single source of truth for every frame.

Each frame is one JSON object in one WebSocket text frame. Both directions are
discriminated unions on a *required* `type` literal (no default), so generated
TypeScript narrows on it. JSON Schema (`schemas/`) and TypeScript
(`frontend-types/`) are generated from these models; never hand-edit those.

Frame classes end in `Frame` so that no generated type shadows a global
(`Event`, `Error` in a browser). `payload` is typed per topic (`TopicDef.snapshot`
/ `.event`); the envelope carries it as a JSON object, and its `tsType` makes it
`unknown` in the app-independent TypeScript: the generated topic map of each app
types it by topic (`TopicSnapshot<T>`, `TopicEvent<T>`).

Optional server fields are `str | SkipJsonSchema[None]`: `frames.encode` omits
them when None, so the published (serialization) schema says "optional string",
never "nullable".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from .errors import ErrorCode

PROTOCOL_VERSION: Final = 1

# Named (TypeAliasType) so each is one definition in the schemas, not a copy per field.
Topic = TypeAliasType("Topic", Annotated[str, Field(min_length=1, max_length=200)])
RequestId = TypeAliasType("RequestId", Annotated[str, Field(max_length=128)])
#: Longest idempotency key (the demo's HTTP `Idempotency-Key` header has the same bound).
MAX_IDEMPOTENCY_KEY = 255
IdempotencyKey = TypeAliasType(
    "IdempotencyKey",
    Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            pattern=r"^[\x20-\x7e]+$",
            description="1-255 printable ASCII characters (space to `~`), e.g. a UUID.",
        ),
    ],
)


class _Frame(BaseModel):
    # Unknown fields from clients are an error, not silently ignored: a typo
    # in a field name should be loud.
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- client → server


class SubscribeFrame(_Frame):
    """Subscribe to topics. Each gets a `snapshot`, then `event`s. Subscribing to a
    topic already subscribed sends a fresh snapshot (the way to resync one topic)."""

    type: Literal["subscribe"]
    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)]
    id: RequestId | None = None


class UnsubscribeFrame(_Frame):
    """Stop a topic's events. Unsubscribing from a topic not subscribed is a no-op."""

    type: Literal["unsubscribe"]
    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)]
    id: RequestId | None = None


class PingFrame(_Frame):
    """Application-level ping (browsers cannot send WebSocket pings). Answered by a
    `pong` after every frame the server queued before it: a barrier."""

    type: Literal["ping"]
    id: RequestId | None = None


class RequestFrame(_Frame):
    """Call a method: answered by exactly one `response` with the same `id` (never
    by an `error` frame, unless the request itself is malformed). Requests run
    concurrently, at most `hello.max_requests_in_flight` at a time; their responses
    come in the order they finish. A response comes after every event its method
    published on a topic this connection is subscribed to (docs/protocol.md). Not
    replayed by the server after a reconnect: a request whose connection drops has an
    unknown outcome. A client that resends it (same method, same params) with the same
    `idempotency_key` gets the first call's outcome, if the method honours keys."""

    type: Literal["request"]
    id: Annotated[
        RequestId,
        Field(description="Chosen by the client, echoed by the response; unique among its pending requests."),
    ]
    method: Annotated[str, Field(min_length=1, max_length=200, description="The method's name.")]
    params: Annotated[
        dict[str, Any],
        Field(
            default_factory=dict,
            description="The method's params (a JSON object); absent: `{}`.",
            json_schema_extra={"tsType": "unknown"},
        ),
    ]
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Field(
            description="Fresh per call, the same when the call is resent after an unknown outcome "
            "(a dropped connection, a timeout, `unavailable`). A method that writes and honours "
            "it runs once per key and answers a resend with the first outcome; the same key "
            "with other params is answered `idempotency_key_reused`."
        ),
    ] = None


#: Longest token an `auth` frame may carry (a large JWT is a few KiB).
MAX_TOKEN_CHARS = 8192


class AuthFrame(_Frame):
    """Present a new token for this connection before its credential expires
    (`hello.auth_expires_in_s`, `authed.auth_expires_in_s`): answered by `authed` with
    the same `id`, or by an `error` with it (`unauthorized`: not valid or expired;
    `principal_changed`: another principal's; `rate_limited`: more than a few per
    minute). The token must name the connection's principal. Every current subscription
    is authorized again under it: a topic no longer allowed gets `forbidden` (with its
    `topic` and this `id`, before the `authed`) and is unsubscribed; the others go on
    with no gap - no new snapshot, their events keep flowing. On failure the connection
    keeps its credential until that expires (then close 4001). The server handles one
    `auth` at a time: frames after it are read once it is answered."""

    type: Literal["auth"]
    id: Annotated[RequestId, Field(description="Chosen by the client, echoed by the answer.")]
    token: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_TOKEN_CHARS,
            pattern=r"^[\x21-\x7e]+$",
            repr=False,  # a secret: never in a repr, a log line or an error
            description="The new bearer token, as `Authorization: Bearer` would carry it "
            "(visible ASCII, no spaces, no `Bearer ` prefix).",
        ),
    ]


ClientMessage = Annotated[
    SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame, Field(discriminator="type")
]
client_message_adapter: TypeAdapter[
    SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame
] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- server → client


class HelloFrame(_Frame):
    """Always the first frame of a connection: who you are and the limits to respect."""

    type: Literal["hello"]
    connection_id: Annotated[str, Field(description="Opaque id of this connection, for logs.")]
    server_time: datetime
    protocol: Annotated[Literal[1], Field(description="Protocol version (`PROTOCOL_VERSION`).")]
    heartbeat_s: Annotated[
        int,
        Field(
            description="Seconds between the server's WebSocket pings; a peer that never answers is closed."
        ),
    ]
    max_queue_bytes: Annotated[
        int, Field(description="Bytes the server buffers for this client before closing it with 4008.")
    ]
    max_frame_bytes: Annotated[
        int, Field(description="Largest client frame accepted; a larger one closes with 1009.")
    ]
    max_topics: Annotated[int, Field(description="Most topics one connection may subscribe to.")]
    max_snapshot_bytes: Annotated[
        int, Field(description="Largest snapshot sent; a larger one is refused with `snapshot_too_large`.")
    ]
    frames_per_s: Annotated[
        float,
        Field(description="Client frames per second allowed on average; more: `rate_limited`."),
    ]
    subscribes_per_s: Annotated[
        float,
        Field(description="Topics subscribed per second allowed on average; more: `rate_limited`."),
    ]
    auth: Annotated[
        bool,
        Field(description="Whether the server authenticates connections (false: authentication is off)."),
    ]
    max_requests_in_flight: Annotated[
        int, Field(description="Requests one connection may have unanswered; more: `too_many_requests`.")
    ]
    request_timeout_s: Annotated[float, Field(description="Seconds a method may run; slower: `timeout`.")]
    principal: Annotated[
        str | None,
        Field(description="Who this connection is authenticated as; absent with auth off."),
    ] = None
    auth_expires_in_s: Annotated[
        float | SkipJsonSchema[None],
        Field(
            description="Seconds from this frame until the connection's credential expires; "
            "absent when it does not (or auth is off). Refresh before then with an `auth` "
            "frame, else the connection is closed with 4001. Seconds, not a time: the "
            "client's clock does not matter."
        ),
    ] = None
    transport: Annotated[
        Literal["websocket", "sse"] | SkipJsonSchema[None],
        Field(
            description="The transport this connection uses: `sse` on the Server-Sent Events "
            "transport (`GET /api/realtime/sse`); absent on the WebSocket (read absent as "
            "`websocket`). docs/protocol.md, Transports: WebSocket and SSE."
        ),
    ] = None
    sse_secret: Annotated[
        str | SkipJsonSchema[None],
        Field(
            description="SSE transport only: the secret that authorises this connection's "
            "client frames, sent as the `X-Realtime-Secret` header of "
            "`POST /api/realtime/sse/{connection_id}` (32 random bytes, URL-safe base64). "
            "Keep it out of logs and URLs; it dies with the connection."
        ),
    ] = None


class SnapshotFrame(_Frame):
    """A topic's whole current state. Replace, don't merge. `seq` is the seq of the
    last event the state reflects; the events that follow have larger seqs."""

    type: Literal["snapshot"]
    topic: str
    seq: int
    payload: Annotated[dict[str, Any], Field(json_schema_extra={"tsType": "unknown"})]


class EventFrame(_Frame):
    """A delta for a topic. Per topic, `seq` grows by exactly 1 per event."""

    type: Literal["event"]
    topic: str
    seq: int
    payload: Annotated[dict[str, Any], Field(json_schema_extra={"tsType": "unknown"})]


class ErrorFrame(_Frame):
    """A client message could not be (fully) served. The connection stays open."""

    type: Literal["error"]
    code: Annotated[ErrorCode, Field(json_schema_extra={"tsType": "ErrorCode"})]
    message: str
    id: str | SkipJsonSchema[None] = None
    topic: str | SkipJsonSchema[None] = None


class PongFrame(_Frame):
    """Answer to `ping`, echoing its `id`."""

    type: Literal["pong"]
    id: str | SkipJsonSchema[None] = None


class ResponseError(_Frame):
    """Why a request failed."""

    code: Annotated[
        str,
        Field(
            description="An `ErrorCode` of the catalogue, or one of the codes the method declares "
            "(the method map's `errors`). Branch on it, never on `message`."
        ),
    ]
    message: str
    details: Annotated[
        Any,
        Field(
            description="Structured detail, e.g. the field errors of `invalid_params`.",
            json_schema_extra={"tsType": "unknown"},
        ),
    ] = None


class ResponseFrame(_Frame):
    """The answer to the `request` with this `id`: exactly one of `result` (typed by
    the method: the method map's `result`) or `error`."""

    type: Literal["response"]
    id: str
    result: Annotated[
        dict[str, Any] | SkipJsonSchema[None], Field(json_schema_extra={"tsType": "unknown"})
    ] = None
    error: ResponseError | SkipJsonSchema[None] = None


class AuthedFrame(_Frame):
    """The answer to the `auth` with this `id`: its token is the connection's credential
    from now on. It comes after the `forbidden` error of every topic the token no longer
    allows (those are unsubscribed); the other subscriptions went on without a gap."""

    type: Literal["authed"]
    id: str
    auth_expires_in_s: Annotated[
        float | SkipJsonSchema[None],
        Field(
            description="Seconds from this frame until the new credential expires; absent "
            "when it does not. Refresh again before then."
        ),
    ] = None


ServerMessage = Annotated[
    HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame | ResponseFrame | AuthedFrame,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[
    HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame | ResponseFrame | AuthedFrame
] = TypeAdapter(ServerMessage)
