# Generated from methods.json by python -m aiohttp_realtime.typegen. Do not edit.

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CreateSession(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    title: Annotated[str, Field(max_length=200, min_length=1)]


class Errors(Enum):
    """
    `not_found`: No session has this id (never created, or removed).
    """

    not_found = 'not_found'


class RemoveSession(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    id: Annotated[str, Field(max_length=128, min_length=1)]


class Role(StrEnum):
    user = 'user'
    assistant = 'assistant'
    system = 'system'


class SendMessage(BaseModel):
    """
    `POST /api/sessions/{id}/messages`'s body, with the session's id.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    role: Role
    text: Annotated[str, Field(max_length=65536, min_length=1)]
    session_id: Annotated[str, Field(max_length=128, min_length=1)]


class SessionRemoved(BaseModel):
    """
    The session with this id, its messages and its terminals are gone.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    id: str


class SessionState(StrEnum):
    idle = 'idle'
    running = 'running'
    waiting = 'waiting'
    error = 'error'
    done = 'done'


class Errors1(Enum):
    """
    `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
    """

    quota_exceeded = 'quota_exceeded'


class Errors2(Enum):
    """
    `not_found`: No session has this id (never created, or removed).
    """

    not_found = 'not_found'


class SessionsRemoveMethod(BaseModel):
    """
    Method `sessions.remove`. Delete a session, its messages and its terminals.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    params: RemoveSession
    result: SessionRemoved
    errors: Errors2
    """
    `not_found`: No session has this id (never created, or removed).
    """


class Errors3(Enum):
    """
    `not_found`: No session has this id (never created, or removed). `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
    """

    not_found = 'not_found'
    quota_exceeded = 'quota_exceeded'


class UpdateSession(BaseModel):
    """
    `PATCH /api/sessions/{id}`'s body, with the id.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    title: Annotated[str | None, Field(max_length=200, min_length=1)] = None
    state: SessionState | None = None
    id: Annotated[str, Field(max_length=128, min_length=1)]


class Message(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    id: str
    session_id: str
    role: Role
    text: Annotated[str, Field(max_length=65536)]
    streaming: bool
    """
    True while an assistant message is still being streamed.
    """
    created_at: AwareDatetime


class MessagesSendMethod(BaseModel):
    """
    Method `messages.send`. Add a message to a session's activity.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    params: SendMessage
    result: Message
    errors: Errors
    """
    `not_found`: No session has this id (never created, or removed).
    """


class Session(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    id: str
    title: str
    state: SessionState
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SessionsCreateMethod(BaseModel):
    """
    Method `sessions.create`. Create a session.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    params: CreateSession
    result: Session
    errors: Errors1
    """
    `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
    """


class SessionsUpdateMethod(BaseModel):
    """
    Method `sessions.update`. Change a session's title and/or state.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    params: UpdateSession
    result: Session
    errors: Errors3
    """
    `not_found`: No session has this id (never created, or removed). `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
    """


class Methods(BaseModel):
    """
    Each method's params, result and declared error codes (the `params` of a `request` frame, the `result` of its `response`, and the codes its `error` may carry beside the catalogue's).
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    sessions_create: Annotated[SessionsCreateMethod, Field(alias='sessions.create')]
    sessions_update: Annotated[SessionsUpdateMethod, Field(alias='sessions.update')]
    sessions_remove: Annotated[SessionsRemoveMethod, Field(alias='sessions.remove')]
    messages_send: Annotated[MessagesSendMethod, Field(alias='messages.send')]
