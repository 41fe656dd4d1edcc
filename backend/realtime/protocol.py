"""The wire protocol: the single source of truth for every frame.

Each frame is one JSON object in one WebSocket text frame. Both directions are
discriminated unions on a *required* `type` literal (no default), so generated
TypeScript narrows on it. JSON Schema (`schemas/`) and TypeScript
(`frontend-types/`) are generated from these models; never hand-edit those.

`payload` is typed per topic (see `topics.Topic.snapshot` / `.event`); the
envelope carries it as a JSON object. Its `tsType` tells the TypeScript generator
to use the union of the topics' payload types, defined next to the topic map.

Optional server fields are `str | SkipJsonSchema[None]`: `frames.encode` omits
them when None, so the published (serialization) schema says "optional string",
never "nullable".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema

from .errors import ErrorCode

PROTOCOL_VERSION = 1

Topic = Annotated[str, Field(min_length=1, max_length=200)]
RequestId = Annotated[str, Field(max_length=128)]


class _Frame(BaseModel):
    # Unknown fields from clients are an error, not silently ignored: a typo
    # in a field name should be loud.
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- client → server


class Subscribe(_Frame):
    """Subscribe to topics. Each gets a `snapshot`, then `event`s. Subscribing to a
    topic already subscribed sends a fresh snapshot (the way to resync one topic)."""

    type: Literal["subscribe"]
    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)]
    id: RequestId | None = None


class Unsubscribe(_Frame):
    """Stop a topic's events. Unsubscribing from a topic not subscribed is a no-op."""

    type: Literal["unsubscribe"]
    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)]
    id: RequestId | None = None


class Ping(_Frame):
    """Application-level ping (browsers cannot send WebSocket pings). Answered by a
    `pong` after every frame the server queued before it: a barrier."""

    type: Literal["ping"]
    id: RequestId | None = None


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
client_message_adapter: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- server → client


class Hello(_Frame):
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


class Snapshot(_Frame):
    """A topic's whole current state. Replace, don't merge. `seq` is the seq of the
    last event the state reflects; the events that follow have larger seqs."""

    type: Literal["snapshot"]
    topic: str
    seq: int
    payload: Annotated[dict[str, Any], Field(json_schema_extra={"tsType": "SnapshotPayload"})]


class Event(_Frame):
    """A delta for a topic. Per topic, `seq` grows by exactly 1 per event."""

    type: Literal["event"]
    topic: str
    seq: int
    payload: Annotated[dict[str, Any], Field(json_schema_extra={"tsType": "EventPayload"})]


class Error(_Frame):
    """A client message could not be (fully) served. The connection stays open."""

    type: Literal["error"]
    code: ErrorCode
    message: str
    id: str | SkipJsonSchema[None] = None
    topic: str | SkipJsonSchema[None] = None


class Pong(_Frame):
    """Answer to `ping`, echoing its `id`."""

    type: Literal["pong"]
    id: str | SkipJsonSchema[None] = None


ServerMessage = Annotated[Hello | Snapshot | Event | Error | Pong, Field(discriminator="type")]
server_message_adapter: TypeAdapter[Hello | Snapshot | Event | Error | Pong] = TypeAdapter(ServerMessage)
