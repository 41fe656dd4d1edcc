"""core.inbound.plan: what one parsed client frame asks of the connection."""

from __future__ import annotations

import json
from typing import Any

from aiohttp_realtime import RealtimeSettings
from aiohttp_realtime.core import ClientLimits
from aiohttp_realtime.core.inbound import plan
from aiohttp_realtime.errors import ErrorCode
from aiohttp_realtime.protocol import client_message_adapter


def parsed(frame: dict[str, object]) -> Any:
    return client_message_adapter.validate_python(frame)


def limits(burst: int = 5) -> ClientLimits:
    return ClientLimits(RealtimeSettings(subscribes_per_s=1.0, subscribes_burst=burst), now=0.0)


def test_a_ping_is_answered_with_its_id_and_nothing_else() -> None:
    todo = plan(parsed({"type": "ping", "id": "p1"}), limits(), 0.0)
    assert [json.loads(f.text) for f in todo.frames] == [{"type": "pong", "id": "p1"}]
    assert (todo.call, todo.subscribe, todo.unsubscribe, todo.served) == (None, [], [], True)


def test_a_request_is_handed_to_the_calls() -> None:
    todo = plan(parsed({"type": "request", "id": "r1", "method": "m"}), limits(), 0.0)
    assert todo.call is not None and todo.call.id == "r1" and todo.frames == []


def test_a_subscribes_topics_once_each_in_order_and_those_over_the_limit_refused() -> None:
    frame = {"type": "subscribe", "id": "s1", "topics": ["a", "b", "a", "c", "d"]}
    todo = plan(parsed(frame), limits(burst=2), 0.0)
    assert (todo.subscribe, todo.request_id, todo.served) == (["a", "b"], "s1", False)
    errors = [json.loads(f.text) for f in todo.frames]
    assert [(e["code"], e["topic"], e["id"]) for e in errors] == [
        ("rate_limited", "c", "s1"),
        ("rate_limited", "d", "s1"),
    ]
    assert todo.errors == [ErrorCode.RATE_LIMITED] * 2


def test_an_unsubscribes_topics_are_left() -> None:
    todo = plan(parsed({"type": "unsubscribe", "topics": ["a", "b"]}), limits(), 0.0)
    assert (todo.unsubscribe, todo.subscribe, todo.frames, todo.served) == (["a", "b"], [], [], True)
