"""Topics: declared once as typed values, bound to snapshot providers separately.

A `TopicDef` is a declaration: a name pattern (``sessions.activity:{session_id}``)
and the snapshot and event payload types. It is a plain value that the type
generator reads without building anything, and that publishers use as a typed
handle::

    ACTIVITY: TopicDef[ActivitySnapshot, ActivityEvent] = TopicDef(
        "sessions.activity:{session_id}", ActivitySnapshot, ActivityEvent)
    await hub.publish(ACTIVITY.at(session_id=sid), MessageAppend(...))  # checked by mypy

A `TopicRegistry` binds each declaration to a `SnapshotProvider` for one running
app; the hub resolves client-supplied names through it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, TypeAdapter

from .principal import Principal

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: A parameter value: no separators, so that one name never matches two patterns.
PARAM_VALUE = re.compile(r"[A-Za-z0-9_\-.]{1,128}")

S = TypeVar("S", bound=BaseModel)
E = TypeVar("E")


class UnknownTopic(Exception):
    """Raised by a snapshot provider when the topic names nothing that exists
    (e.g. the activity of a session that was never created). The client gets an
    `unknown_topic` error, exactly as for a name that matches no pattern."""


#: Returns the topic's current state, from the topic's parameters. May be async.
#:
#: Contract: the state must reflect at least every event published on the topic
#: before the call began. It may also reflect events published while it runs (an
#: awaiting provider reading a database, a coalesced stream whose state runs ahead
#: of its published deltas): those events are then delivered after the snapshot
#: too, so every event payload must be idempotent (upsert / remove by id / write
#: at an offset).
#:
#: A provider that takes a second argument gets the connection's `Principal` (None
#: with authentication off), to shape the state by who asks:
#: `def provider(params, principal): ...`.
SnapshotProvider = (
    Callable[[Mapping[str, str]], S | Awaitable[S]]
    | Callable[[Mapping[str, str], Principal | None], S | Awaitable[S]]
)


#: How a topic's snapshot varies with who asks, which decides who may share one
#: (`core.snapshots`): subscribers of one topic version share a snapshot when their
#: views are equal.
#:
#: - ``"nothing"``: one snapshot for everyone (the provider ignores the principal).
#: - ``"principal"``: one per principal (compared whole: id and scopes).
#: - a function of the principal (None with authentication off) returning a hashable
#:   key, e.g. ``lambda p: p.id.split("/")[0]`` for one snapshot per tenant: the app
#:   promises that principals with equal keys get equal snapshots.
#:
#: The default is safe: ``"principal"`` for a provider that takes the principal,
#: ``"nothing"`` for one that cannot see it. Authorization is per subscriber either
#: way (the `authorize` hook runs for each before any snapshot is handed over).
View = Literal["nothing", "principal"] | Callable[[Principal | None], Hashable]


def _nobody(_principal: Principal | None) -> None:
    return None


def _whole(principal: Principal | None) -> Hashable:
    return principal


class TopicDef(Generic[S, E]):
    """A topic's declaration: its name pattern and payload types, no behaviour.

    `event` is a model or an annotated union of models (a discriminated union);
    for a union, annotate the variable (`X: TopicDef[Snap, Union] = TopicDef(...)`),
    since a union is not a class mypy can infer `E` from.
    """

    __slots__ = ("_event_adapter", "_regex", "description", "event", "params", "pattern", "snapshot")

    @overload
    def __init__(self, pattern: str, snapshot: type[S], event: type[E], *, description: str = "") -> None: ...
    @overload  # an annotated union: `E` comes from the variable's annotation
    def __init__(self, pattern: str, snapshot: type[S], event: Any, *, description: str = "") -> None: ...

    def __init__(self, pattern: str, snapshot: type[S], event: Any, *, description: str = "") -> None:
        self.pattern = pattern
        self.snapshot = snapshot
        self.event: Any = event
        self.description = description
        self.params: tuple[str, ...] = tuple(_PARAM.findall(pattern))
        if len(set(self.params)) != len(self.params):
            raise ValueError(f"{pattern!r}: a parameter appears twice")
        self._regex = re.compile(
            "".join(
                f"(?P<{part}>{PARAM_VALUE.pattern})" if i % 2 else re.escape(part)
                for i, part in enumerate(_PARAM.split(pattern))
            )
        )
        self._event_adapter: TypeAdapter[Any] = TypeAdapter(event)

    def __repr__(self) -> str:
        return f"TopicDef({self.pattern!r})"

    def match(self, name: str) -> dict[str, str] | None:
        """The parameters if `name` is an instance of this pattern, else None."""
        m = self._regex.fullmatch(name)
        return m.groupdict() if m else None

    def at(self, **params: str) -> TopicRef[S, E]:
        """The concrete topic for these parameters (exactly the pattern's)."""
        if set(params) != set(self.params):
            raise ValueError(f"{self.pattern!r} takes parameters {list(self.params)}, got {sorted(params)}")
        for key, value in params.items():
            if not PARAM_VALUE.fullmatch(value):
                raise ValueError(f"{self.pattern!r}: {key}={value!r} must match {PARAM_VALUE.pattern}")
        return TopicRef(self, _PARAM.sub(lambda m: params[m.group(1)], self.pattern))

    def ref(self) -> TopicRef[S, E]:
        """This topic as a `TopicRef`; only for a pattern without parameters."""
        return self.at()

    def encode_event(self, payload: E) -> bytes:
        """Validate an event payload against the event type and serialise it.

        A wrong payload is a programming error in the publisher: it raises
        `pydantic.ValidationError` rather than sending a frame that breaks clients.
        """
        return self._event_adapter.dump_json(self._event_adapter.validate_python(payload))

    def encode_snapshot(self, state: object) -> bytes:
        if not isinstance(state, self.snapshot):
            raise TypeError(f"{self.pattern}: provider returned {type(state).__name__}")
        return state.model_dump_json().encode()


@dataclass(frozen=True, slots=True)
class TopicRef(Generic[S, E]):
    """A concrete topic name with its declaration: what `Hub.publish` takes."""

    topic: TopicDef[S, E]
    name: str


@dataclass(frozen=True, slots=True)
class BoundTopic:
    """A declaration bound to the provider of its snapshots, in one registry."""

    topic: TopicDef[Any, Any]
    provider: SnapshotProvider[Any]
    wants_principal: bool = False
    #: The view of a principal (`View`): subscribers with equal views share snapshots.
    view: Callable[[Principal | None], Hashable] = _nobody

    async def snapshot_json(
        self, params: Mapping[str, str], *, timeout: float, principal: Principal | None = None
    ) -> bytes:
        """The provider's state, serialised. An async provider slower than `timeout`
        raises TimeoutError (a sync one cannot be interrupted, so it pays no timer)."""
        provider: Any = self.provider
        state = provider(params, principal) if self.wants_principal else provider(params)
        if inspect.isawaitable(state):
            state = await _within(state, timeout)
        return self.topic.encode_snapshot(state)


async def _within(awaitable: Awaitable[Any], timeout: float) -> Any:
    """`awaitable`'s result, or TimeoutError at `timeout`: then, not once the cancelled
    provider has unwound (a read stuck on a database that does not answer may wait on
    it again in its cleanup). It unwinds on its own; its outcome is dropped."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait((task,), timeout=timeout)
    finally:
        if not task.done():  # too slow, or the subscribe itself was cancelled
            task.cancel()
            task.add_done_callback(_drop_outcome)
    if not task.done():
        raise TimeoutError(f"no snapshot within {timeout:g} s")
    return task.result()


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: asyncio does not log it as lost


def _takes_two(provider: Callable[..., Any]) -> bool:
    """Whether a provider accepts (params, principal) rather than (params)."""
    try:
        signature = inspect.signature(provider)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)


class TopicRegistry:
    """The topics one app serves: each declaration bound to its snapshot provider.

    Resolves client-supplied names. Patterns must not overlap (parameter values
    contain no separator, so distinct literal parts keep them apart).
    """

    def __init__(self) -> None:
        self._bound: dict[str, BoundTopic] = {}

    def add(
        self, topic: TopicDef[S, Any], provider: SnapshotProvider[S], *, view: View | None = None
    ) -> TopicDef[S, Any]:
        """Bind `topic` to `provider`. `view` says how its snapshot varies with who asks
        (`View`; default: by principal if the provider takes one, else not at all)."""
        if topic.pattern in self._bound:
            raise ValueError(f"topic {topic.pattern!r} is already registered")
        wants_principal = _takes_two(provider)
        if view is None:
            view = "principal" if wants_principal else "nothing"
        if view == "nothing":
            of: Callable[[Principal | None], Hashable] = _nobody
        elif view == "principal":
            of = _whole
        elif callable(view):
            of = view
        else:
            raise ValueError(f"{topic.pattern!r}: view must be 'nothing', 'principal' or a function")
        self._bound[topic.pattern] = BoundTopic(topic, provider, wants_principal, of)
        return topic

    def __iter__(self) -> Iterator[TopicDef[Any, Any]]:
        return (bound.topic for bound in self._bound.values())

    def __contains__(self, topic: object) -> bool:
        bound = self._bound.get(topic.pattern) if isinstance(topic, TopicDef) else None
        return bound is not None and bound.topic is topic

    def resolve(self, name: str) -> tuple[BoundTopic, dict[str, str]] | None:
        for bound in self._bound.values():
            params = bound.topic.match(name)
            if params is not None:
                return bound, params
        return None
