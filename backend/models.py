"""The demo domain's data and topic payloads: an agent-session dashboard.

Every event payload is idempotent (upsert / remove by id / write at an offset),
because a snapshot may already reflect an event that is delivered after it
(see `aiohttp_realtime.SnapshotProvider`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypeAliasType

# Named aliases (not bare Literals) so that the schemas define them once under these
# names and the generated TypeScript exports `SessionState`, `Role`, `TerminalStatus`.
SessionState = TypeAliasType("SessionState", Literal["idle", "running", "waiting", "error", "done"])
Role = TypeAliasType("Role", Literal["user", "assistant", "system"])
TerminalStatus = TypeAliasType("TerminalStatus", Literal["starting", "running", "exited"])

MAX_TEXT = 64 * 1024
MAX_TITLE = 200

# C0 controls other than \t \n \r, and lone surrogates (which UTF-8 cannot encode).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def no_control_characters(text: str) -> str:
    """Refuse C0 control characters other than \\n, \\r and \\t (and lone surrogates).

    JSON escapes each of them as six bytes (`\\u0001`): allowed, they would make a
    snapshot six times the bytes of the text it carries, and the stores' byte budgets
    (counted in UTF-8) would not bound what clients receive. Without them, JSON is at
    most twice the UTF-8 (`"` and `\\` escape to two bytes)."""
    found = _FORBIDDEN.search(text)
    if found is not None:
        char = f"U+{ord(found.group()):04X}"
        raise ValueError(f"{char} at index {found.start()}: no control characters but \\n, \\r and \\t")
    return text


#: A message's text as the server keeps and publishes it; an API body adds `min_length`.
MessageText = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(no_control_characters)]


class _Model(BaseModel):
    # extra="forbid" also makes the published schema say `additionalProperties: false`:
    # the server sends exactly these fields, and the schema contract test relies on it.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Session(_Model):
    id: str
    title: str
    state: SessionState
    created_at: datetime
    updated_at: datetime


class Message(_Model):
    id: str
    session_id: str
    role: Role
    text: MessageText
    streaming: bool = Field(description="True while an assistant message is still being streamed.")
    created_at: datetime


class Terminal(_Model):
    id: str
    name: str
    session_id: str | None
    status: TerminalStatus
    exit_code: int | None
    updated_at: datetime


# ---------------------------------------------------------------- sessions.state


class SessionsSnapshot(_Model):
    sessions: list[Session]


class SessionUpsert(_Model):
    """Insert or replace the session with this id."""

    op: Literal["upsert"]
    session: Session


class SessionRemove(_Model):
    """Remove the session with this id (no-op if absent)."""

    op: Literal["remove"]
    id: str


SessionsEvent = Annotated[SessionUpsert | SessionRemove, Field(discriminator="op")]


# ---------------------------------------------------------------- sessions.activity:{session_id}


class ActivitySnapshot(_Model):
    session_id: str
    messages: list[Message] = Field(description="The most recent messages, oldest first (bounded).")


class MessageAppend(_Model):
    """Insert or replace the message with this id."""

    op: Literal["append"]
    message: Message


class TextDelta(_Model):
    """Streamed text: the message's text from `offset` on starts with `text`.

    Apply as `text = text[:offset] + delta` when `offset + len(delta)` exceeds the
    current length, else ignore (already reflected). Deltas of one message arrive
    in order, coalesced over about 50 ms."""

    op: Literal["delta"]
    message_id: str
    offset: int
    text: str


class MessageEnd(_Model):
    """The message is complete; `text` is its whole final text."""

    op: Literal["end"]
    message_id: str
    text: str


ActivityEvent = Annotated[MessageAppend | TextDelta | MessageEnd, Field(discriminator="op")]


# ---------------------------------------------------------------- terminals.state


class TerminalsSnapshot(_Model):
    terminals: list[Terminal]


class TerminalUpsert(_Model):
    op: Literal["upsert"]
    terminal: Terminal


class TerminalRemove(_Model):
    op: Literal["remove"]
    id: str


TerminalsEvent = Annotated[TerminalUpsert | TerminalRemove, Field(discriminator="op")]
