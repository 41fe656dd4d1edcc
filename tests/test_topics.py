from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
import pytest
from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import Hub, TopicDef, TopicRegistry, setup_realtime


class Snap(BaseModel):
    n: int


class Ev(BaseModel):
    op: Literal["x"]


def _provider(_params: Mapping[str, str]) -> Snap:
    return Snap(n=1)


PLAIN = TopicDef("a.state", Snap, Ev)
PARAM = TopicDef("a.activity:{id}", Snap, Ev)
TWO = TopicDef("b:{org}:{repo}", Snap, Ev)


def test_patterns_resolve_with_parameters() -> None:
    reg = TopicRegistry()
    for topic in (PLAIN, PARAM, TWO):
        reg.add(topic, _provider)
    assert list(reg) == [PLAIN, PARAM, TWO]

    def resolved(name: str) -> tuple[TopicDef[Any, Any], dict[str, str]] | None:
        found = reg.resolve(name)
        return None if found is None else (found[0].topic, found[1])

    assert resolved("a.state") == (PLAIN, {})
    assert resolved("a.activity:s-1.x_Y") == (PARAM, {"id": "s-1.x_Y"})
    assert resolved("b:acme:web") == (TWO, {"org": "acme", "repo": "web"})
    assert PARAM.params == ("id",)
    for bad in ("a.statex", "a_state", "a.activity:", "a.activity:a/b", "a.activity:a:b", "b:acme", ""):
        assert resolved(bad) is None, bad


def test_duplicate_pattern_is_refused() -> None:
    reg = TopicRegistry()
    reg.add(PLAIN, _provider)
    with pytest.raises(ValueError):
        reg.add(TopicDef("a.state", Snap, Ev), _provider)


def test_at_builds_the_concrete_name_and_checks_its_parameters() -> None:
    assert TWO.at(org="acme", repo="web").name == "b:acme:web"
    assert PLAIN.ref().name == "a.state"
    assert TWO.match(TWO.at(org="o", repo="r").name) == {"org": "o", "repo": "r"}
    with pytest.raises(ValueError, match="takes parameters"):
        TWO.at(org="acme")
    with pytest.raises(ValueError, match="takes parameters"):
        PARAM.at(id="x", extra="y")
    with pytest.raises(ValueError, match="must match"):
        PARAM.at(id="a:b")  # a separator would let one name match two patterns
    with pytest.raises(ValueError, match="takes parameters"):
        PARAM.ref()
    with pytest.raises(ValueError, match="twice"):
        TopicDef("c:{x}:{x}", Snap, Ev)


def test_event_payload_is_validated_before_publishing() -> None:
    assert PLAIN.encode_event(Ev(op="x")) == b'{"op":"x"}'
    with pytest.raises(pydantic.ValidationError):
        PLAIN.encode_event({"op": "y"})  # type: ignore[arg-type]


async def test_provider_must_return_the_declared_snapshot_model() -> None:
    reg = TopicRegistry()
    reg.add(PLAIN, lambda _p: Ev(op="x"))  # type: ignore[arg-type,return-value]
    found = reg.resolve("a.state")
    assert found is not None
    with pytest.raises(TypeError):
        await found[0].snapshot_json({})


def _hub(*topics: TopicDef[Any, Any]) -> Hub:
    reg = TopicRegistry()
    for topic in topics:
        reg.add(topic, _provider)
    return setup_realtime(web.Application(), reg)


async def test_publish_takes_typed_handles_and_names() -> None:
    hub = _hub(PLAIN, PARAM)
    await hub.broker.watch("a.state")  # as a subscriber would: unwatched topics number nothing
    await hub.broker.watch("a.activity:s1")
    assert await hub.publish(PLAIN, Ev(op="x")) == 1
    assert await hub.publish(PLAIN.ref(), Ev(op="x")) == 2
    assert await hub.publish(PARAM.at(id="s1"), Ev(op="x")) == 1
    assert await hub.publish("a.activity:s1", {"op": "x"}) == 2  # same topic as the handle
    assert await hub.broker.last_seq("a.activity:s1") == 2


async def test_publish_refuses_topics_the_hub_does_not_serve() -> None:
    hub = _hub(PLAIN)
    with pytest.raises(LookupError):
        await hub.publish(TWO.at(org="o", repo="r"), Ev(op="x"))
    with pytest.raises(LookupError):  # same pattern, but not the declaration registered
        await hub.publish(TopicDef("a.state", Snap, Ev), Ev(op="x"))
    with pytest.raises(LookupError):
        await hub.publish("nope", {"op": "x"})
    with pytest.raises(ValueError):  # a pattern with parameters is not a topic
        await hub.publish(PARAM, Ev(op="x"))
