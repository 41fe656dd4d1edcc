# Generated from topics.json by python -m aiohttp_realtime.typegen. Do not edit.

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class MessageEnd(BaseModel):
    """
    The message is complete; `text` is its whole final text.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['end']
    message_id: str
    text: str


class Role(StrEnum):
    user = 'user'
    assistant = 'assistant'
    system = 'system'


class SessionRemove(BaseModel):
    """
    Remove the session with this id (no-op if absent).
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['remove']
    id: str


class SessionState(StrEnum):
    idle = 'idle'
    running = 'running'
    waiting = 'waiting'
    error = 'error'
    done = 'done'


class TerminalRemove(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['remove']
    id: str


class TerminalStatus(StrEnum):
    starting = 'starting'
    running = 'running'
    exited = 'exited'


class TextDelta(BaseModel):
    """
    Streamed text: the message's text from `offset` on starts with `text`.

    Apply as `text = text[:offset] + delta` when `offset + len(delta)` exceeds the
    current length, else ignore (already reflected). Deltas of one message arrive
    in order, coalesced over about 50 ms.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['delta']
    message_id: str
    offset: int
    text: str


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


class MessageAppend(BaseModel):
    """
    Insert or replace the message with this id.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['append']
    message: Message


class Session(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    id: str
    title: str
    state: SessionState
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SessionUpsert(BaseModel):
    """
    Insert or replace the session with this id.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['upsert']
    session: Session


class SessionsSnapshot(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    sessions: list[Session]


class SessionsStateTopic(BaseModel):
    """
    Topic `sessions.state`. Every session and its state.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    snapshot: SessionsSnapshot
    event: Annotated[
        SessionUpsert | SessionRemove, Field(discriminator='op', title='SessionsEvent')
    ]


class Terminal(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    id: str
    name: str
    session_id: str | None
    status: TerminalStatus
    exit_code: int | None
    updated_at: AwareDatetime


class TerminalUpsert(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    op: Literal['upsert']
    terminal: Terminal


class TerminalsSnapshot(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    terminals: list[Terminal]


class TerminalsStateTopic(BaseModel):
    """
    Topic `terminals.state`. Every terminal and its status.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    snapshot: TerminalsSnapshot
    event: Annotated[
        TerminalUpsert | TerminalRemove, Field(discriminator='op', title='TerminalsEvent')
    ]


class ActivitySnapshot(BaseModel):
    model_config = ConfigDict(
        extra='ignore',
    )
    session_id: str
    messages: list[Message]
    """
    The most recent messages, oldest first (bounded).
    """


class SessionsActivityTopic(BaseModel):
    """
    Topic `sessions.activity:{session_id}`. One session's recent messages and its streaming text.
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    snapshot: ActivitySnapshot
    event: Annotated[
        MessageAppend | TextDelta | MessageEnd, Field(discriminator='op', title='ActivityEvent')
    ]


class Topics(BaseModel):
    """
    Each topic pattern's snapshot and event payload types (the `payload` of `snapshot` and `event` frames).
    """

    model_config = ConfigDict(
        extra='ignore',
    )
    sessions_state: Annotated[SessionsStateTopic, Field(alias='sessions.state')]
    sessions_activity__session_id_: Annotated[
        SessionsActivityTopic, Field(alias='sessions.activity:{session_id}')
    ]
    terminals_state: Annotated[TerminalsStateTopic, Field(alias='terminals.state')]
