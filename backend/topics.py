"""The demo's topics: names, payload types and snapshot providers."""

from __future__ import annotations

from collections.abc import Mapping

from .models import (
    ActivityEvent,
    ActivitySnapshot,
    SessionsEvent,
    SessionsSnapshot,
    TerminalsEvent,
    TerminalsSnapshot,
)
from .realtime import Topic, TopicRegistry, UnknownTopic
from .store import SNAPSHOT_MESSAGES, Store


def build_registry(store: Store) -> TopicRegistry:
    def sessions(_params: Mapping[str, str]) -> SessionsSnapshot:
        return SessionsSnapshot(sessions=store.sessions())

    def activity(params: Mapping[str, str]) -> ActivitySnapshot:
        session_id = params["session_id"]
        if store.session(session_id) is None:
            raise UnknownTopic(session_id)
        messages = store.messages(session_id, SNAPSHOT_MESSAGES)
        return ActivitySnapshot(session_id=session_id, messages=messages)

    def terminals(_params: Mapping[str, str]) -> TerminalsSnapshot:
        return TerminalsSnapshot(terminals=store.terminals())

    registry = TopicRegistry()
    registry.add(
        Topic(
            "sessions.state",
            SessionsSnapshot,
            SessionsEvent,
            sessions,
            description="Every session and its state.",
        )
    )
    registry.add(
        Topic(
            "sessions.activity:{session_id}",
            ActivitySnapshot,
            ActivityEvent,
            activity,
            description="One session's recent messages and its streaming text.",
        )
    )
    registry.add(
        Topic(
            "terminals.state",
            TerminalsSnapshot,
            TerminalsEvent,
            terminals,
            description="Every terminal and its status.",
        )
    )
    return registry
