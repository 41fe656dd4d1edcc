"""What clients send to change the demo's state, validated once for both ways in:
the HTTP API's bodies (`api.py`) and the realtime methods' params (`methods.py`).

Each method's params is the matching HTTP body plus what the HTTP API takes from the
path (the session's id), so the two accept exactly the same values.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

from .models import MAX_TITLE, MessageText, Role, SessionState

_UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")


def storable(text: str) -> str:
    """No NUL and no lone surrogates: PostgreSQL's text (and UTF-8) holds neither. (Other
    control characters are kept, and counted as JSON escapes by the titles' quota.)"""
    if _UNSTORABLE.search(text):
        raise ValueError("no NUL characters or lone surrogates")
    return text


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
    AfterValidator(storable),
]
#: A session's id as a client names it (an unknown one is `not_found`, not invalid).
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(_Body):
    title: Title


class PatchSession(_Body):
    title: Title | None = None
    state: SessionState | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> PatchSession:
        if self.title is None and self.state is None:
            raise ValueError("give `title` and/or `state`")
        return self


class PostMessage(_Body):
    role: Role
    text: Annotated[MessageText, StringConstraints(min_length=1)]


# ---------------------------------------------------------------- the methods' own


class UpdateSession(PatchSession):
    """`PATCH /api/sessions/{id}`'s body, with the id."""

    id: SessionId


class RemoveSession(_Body):
    id: SessionId


class SessionRemoved(BaseModel):
    """The session with this id, its messages and its terminals are gone."""

    id: str


class SendMessage(PostMessage):
    """`POST /api/sessions/{id}/messages`'s body, with the session's id."""

    session_id: SessionId
