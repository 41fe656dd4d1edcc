# Generated from client-message.json by python -m aiohttp_realtime.typegen. Do not edit.

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class RequestId(RootModel[str]):
    root: Annotated[str, Field(max_length=128)]


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
    id: RequestId | None = None


class PingFrame(BaseModel):
    """
    Application-level ping (browsers cannot send WebSocket pings). Answered by a
    `pong` after every frame the server queued before it: a barrier.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    type: Literal['ping']
    id: RequestId | None = None


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
    id: RequestId | None = None


class ClientMessage(RootModel[SubscribeFrame | UnsubscribeFrame | PingFrame]):
    root: Annotated[
        SubscribeFrame | UnsubscribeFrame | PingFrame,
        Field(discriminator='type', title='ClientMessage'),
    ]
    """
    A frame a client sends (validation mode: what the server accepts).
    """
