"""The topic registry: which topic names exist, their payload types and snapshots.

A topic is registered by pattern, e.g. ``sessions.activity:{session_id}``; a
concrete name like ``sessions.activity:s-1`` resolves to that `Topic` with
``{"session_id": "s-1"}`` as parameters. Each topic declares its snapshot and
event payload models: `Hub.publish` validates against them, and the type
generator exports them as the topic map of the generated TypeScript.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, TypeAdapter

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: A parameter value: no separators, so that one name never matches two patterns.
_VALUE = r"[A-Za-z0-9_\-.]{1,128}"


class UnknownTopic(Exception):
    """Raised by a snapshot provider when the topic names nothing that exists
    (e.g. the activity of a session that was never created). The client gets an
    `unknown_topic` error, exactly as for a name that matches no pattern."""


class SnapshotProvider(Protocol):
    """Returns the topic's current state. May be sync or async.

    Contract: the state must reflect at least every event published on the topic
    before the call began. It may also reflect events published while it runs (an
    awaiting provider reading a database, a coalesced stream whose state runs
    ahead of its published deltas): those events are then delivered after the
    snapshot too, so every event payload must be idempotent (upsert / remove by
    id / write at an offset).
    """

    def __call__(self, params: Mapping[str, str]) -> BaseModel | Awaitable[BaseModel]: ...


@dataclass(frozen=True)
class Topic:
    pattern: str
    snapshot: type[BaseModel]
    event: Any  # a model, or an annotated union of models
    provider: SnapshotProvider
    description: str = ""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _event_adapter: TypeAdapter[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "".join(
            f"(?P<{part}>{_VALUE})" if i % 2 else re.escape(part)
            for i, part in enumerate(_PARAM.split(self.pattern))
        )
        object.__setattr__(self, "_regex", re.compile(regex))
        object.__setattr__(self, "_event_adapter", TypeAdapter(self.event))

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.pattern)

    def match(self, name: str) -> dict[str, str] | None:
        m = self._regex.fullmatch(name)
        return m.groupdict() if m else None

    def encode_event(self, payload: Any) -> bytes:
        """Validate an event payload against the topic's event type and serialise it.

        A wrong payload is a programming error in the publisher: it raises
        `pydantic.ValidationError` rather than sending a frame that breaks clients.
        """
        return self._event_adapter.dump_json(self._event_adapter.validate_python(payload))

    async def snapshot_json(self, params: Mapping[str, str]) -> bytes:
        state = self.provider(params)
        if inspect.isawaitable(state):
            state = await state
        if not isinstance(state, self.snapshot):
            raise TypeError(f"{self.pattern}: provider returned {type(state).__name__}")
        return state.model_dump_json().encode()


class TopicRegistry:
    """Resolves topic names to `Topic`s. Patterns must not overlap."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}

    def add(self, topic: Topic) -> Topic:
        if topic.pattern in self._topics:
            raise ValueError(f"topic {topic.pattern!r} is already registered")
        self._topics[topic.pattern] = topic
        return topic

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._topics.values())

    def resolve(self, name: str) -> tuple[Topic, dict[str, str]] | None:
        for topic in self._topics.values():
            params = topic.match(name)
            if params is not None:
                return topic, params
        return None
