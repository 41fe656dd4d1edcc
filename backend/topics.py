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
from .store import Store

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


# The snapshots are bounded in bytes by what the store keeps (`store.py`'s limits), not
# by trimming here, so that a snapshot is exactly the state events are applied to. With
# the defaults, worst cases as JSON (measured by tests/test_store.py), under the 512 KiB
# that `RealtimeSettings.max_snapshot_bytes` allows:
#
# - sessions.activity:<id>: at most 192 KiB of UTF-8 text per session. JSON escapes
#   only `"`, `\` and \n \r \t to two bytes (other C0 controls, six bytes each, are
#   refused by `models.MessageText`), so at most 384 KiB of text, plus 200 messages' ~145
#   bytes of fields: ~413 KiB. (When the newest message alone is over the budget, it is
#   kept alone: <= 64 Ki characters of <= 4 bytes each, 256 KiB.)
# - sessions.state: 1,000 sessions of ~140 bytes of fields, and titles of at most 320 KiB
#   as JSON together: ~456 KiB. (The title budget is what bounds it: 1,000 titles of 200
#   characters, the API's limit, would be ~390 KiB of JSON if they were all `"`, ~780 KiB
#   if four-byte characters, ~1.1 MiB if control characters; plus the fields.)
# - terminals.state: 200 terminals, named by the server only (not by API clients).


def build_registry(store: Store) -> TopicRegistry:
    """The topics bound to `store`'s reads. They read outside units of work: a snapshot
    may reflect a change whose event comes after it (payloads are idempotent)."""

    async def sessions(_params: Mapping[str, str]) -> SessionsSnapshot:
        return SessionsSnapshot(sessions=await store.sessions())

    async def activity(params: Mapping[str, str]) -> ActivitySnapshot:
        session_id = params["session_id"]
        if await store.session(session_id) is None:
            raise UnknownTopic(session_id)
        messages = await store.messages(session_id)
        return ActivitySnapshot(session_id=session_id, messages=messages)

    async def terminals(_params: Mapping[str, str]) -> TerminalsSnapshot:
        return TerminalsSnapshot(terminals=await store.terminals())

    registry = TopicRegistry()
    registry.add(SESSIONS, sessions)
    registry.add(ACTIVITY, activity)
    registry.add(TERMINALS, terminals)
    return registry
