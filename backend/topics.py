"""The demo's topics: declared once (typed handles the service publishes through and
the type generator reads), and bound to the store's snapshots by `build_registry`."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp_realtime import TopicDef, TopicRegistry, UnknownTopic

from .models import (
    ActivityEvent,
    ActivitySnapshot,
    SessionsEvent,
    SessionsSnapshot,
    TerminalsEvent,
    TerminalsSnapshot,
)
from .store import SNAPSHOT_MESSAGES, Store

SESSIONS: TopicDef[SessionsSnapshot, SessionsEvent] = TopicDef(
    "sessions.state", SessionsSnapshot, SessionsEvent, description="Every session and its state."
)
ACTIVITY: TopicDef[ActivitySnapshot, ActivityEvent] = TopicDef(
    "sessions.activity:{session_id}",
    ActivitySnapshot,
    ActivityEvent,
    description="One session's recent messages and its streaming text.",
)
TERMINALS: TopicDef[TerminalsSnapshot, TerminalsEvent] = TopicDef(
    "terminals.state", TerminalsSnapshot, TerminalsEvent, description="Every terminal and its status."
)

#: What the type generator publishes: `--topics backend.topics:TOPICS`.
TOPICS = (SESSIONS, ACTIVITY, TERMINALS)


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
    registry.add(SESSIONS, sessions)
    registry.add(ACTIVITY, activity)
    registry.add(TERMINALS, terminals)
    return registry
