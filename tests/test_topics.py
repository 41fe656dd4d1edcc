from __future__ import annotations

from typing import Literal

import pydantic
import pytest
from pydantic import BaseModel

from backend.realtime import Topic, TopicRegistry


class Snap(BaseModel):
    n: int


class Ev(BaseModel):
    op: Literal["x"]


def _provider(_params):
    return Snap(n=1)


def test_patterns_resolve_with_parameters():
    reg = TopicRegistry()
    plain = reg.add(Topic("a.state", Snap, Ev, _provider))
    param = reg.add(Topic("a.activity:{id}", Snap, Ev, _provider))
    two = reg.add(Topic("b:{org}:{repo}", Snap, Ev, _provider))
    assert reg.resolve("a.state") == (plain, {})
    assert reg.resolve("a.activity:s-1.x_Y") == (param, {"id": "s-1.x_Y"})
    assert reg.resolve("b:acme:web") == (two, {"org": "acme", "repo": "web"})
    assert param.params == ["id"]
    for bad in ("a.statex", "a_state", "a.activity:", "a.activity:a/b", "a.activity:a:b", "b:acme", ""):
        assert reg.resolve(bad) is None, bad


def test_duplicate_pattern_is_refused():
    reg = TopicRegistry()
    reg.add(Topic("a", Snap, Ev, _provider))
    with pytest.raises(ValueError):
        reg.add(Topic("a", Snap, Ev, _provider))


def test_event_payload_is_validated_before_publishing():
    topic = Topic("a", Snap, Ev, _provider)
    assert topic.encode_event(Ev(op="x")) == b'{"op":"x"}'
    assert topic.encode_event({"op": "x"}) == b'{"op":"x"}'
    with pytest.raises(pydantic.ValidationError):
        topic.encode_event({"op": "y"})


async def test_provider_must_return_the_declared_snapshot_model():
    topic = Topic("a", Snap, Ev, lambda _p: Ev(op="x"))
    with pytest.raises(TypeError):
        await topic.snapshot_json({})
