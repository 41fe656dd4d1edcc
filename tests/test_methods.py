"""Request/response over the socket, on the library alone: every outcome of a call,
the limits, the event-before-response ordering, and calls whose connection drops."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Annotated, Any, Literal

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiohttp_realtime import (
    Caller,
    ErrorCode,
    Fence,
    Hub,
    MemoryBroker,
    MethodDef,
    MethodError,
    MethodRegistry,
    RealtimeSettings,
    TopicRegistry,
    setup_realtime,
)
from tests.libapp import ITEMS, ITEMS_GROUP, Gate, ItemsState
from tests.support import WsClient, until


class SetItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=20)
    value: int


class ItemWritten(BaseModel):
    key: str
    seq: int


class Empty(BaseModel):
    pass


class Calls:
    """The methods of the test app, with hooks: a gate to hold calls, a log of who called."""

    def __init__(self, state: ItemsState) -> None:
        self.state = state
        self.hub: Hub | None = None
        self.gate = Gate()
        self.callers: list[Caller] = []
        self.finished: list[str] = []
        self.cancelled = 0
        self.slow_started = 0

    async def set(self, params: SetItem, caller: Caller) -> ItemWritten:
        self.callers.append(caller)
        await self.gate.pass_()
        assert self.hub is not None
        seq = await self.state.set(self.hub, params.key, params.value)
        self.finished.append(params.key)
        return ItemWritten(key=params.key, seq=seq)

    async def fail(self, params: Empty, caller: Caller) -> Empty:
        raise RuntimeError("secret internals: password=hunter2")

    async def refuse(self, params: SetItem, caller: Caller) -> Empty:
        code = "item_locked" if params.value == 0 else "not_declared"
        raise MethodError(code, "that item is locked", details={"key": params.key})

    async def wrong(self, params: Empty, caller: Caller) -> Any:
        return {"not": "an ItemWritten"}

    async def slow(self, params: Empty, caller: Caller) -> Empty:
        self.slow_started += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Empty()


SET: MethodDef[SetItem, ItemWritten] = MethodDef("items.set", SetItem, ItemWritten)
FAIL: MethodDef[Empty, Empty] = MethodDef("items.fail", Empty, Empty)
REFUSE: MethodDef[SetItem, Empty] = MethodDef(
    "items.refuse", SetItem, Empty, errors={"item_locked": "The item is locked."}
)
WRONG: MethodDef[Empty, ItemWritten] = MethodDef("items.wrong", Empty, ItemWritten)
SLOW: MethodDef[Empty, Empty] = MethodDef("items.slow", Empty, Empty)


class LateBroker(MemoryBroker):
    """Delivers each event a few loop turns after `publish` returns its seq, as a network
    broker does (Redis: PUBLISH answers before the subscription connection delivers)."""

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        deliver, self._deliver = self._deliver, None  # numbered now, delivered later
        try:
            seq = await super().publish(topic, payload)
        finally:
            self._deliver = deliver
        if deliver is not None and seq:
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, deliver, topic, seq, payload)
        return seq


class NeverBroker(MemoryBroker):
    """Numbers events and never delivers them (a backplane that lost them silently)."""

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        deliver, self._deliver = self._deliver, None
        try:
            return await super().publish(topic, payload)
        finally:
            self._deliver = deliver


@pytest.fixture
def methods_app(aiohttp_client: Any) -> Any:
    async def make(broker: MemoryBroker | None = None, **settings: Any) -> tuple[Any, Hub, Calls]:
        state = ItemsState()
        calls = Calls(state)
        registry = TopicRegistry()
        registry.add(ITEMS, state.provider)
        registry.add(ITEMS_GROUP, state.provider)
        methods = MethodRegistry()
        methods.add(SET, lambda params, caller: calls.set(params, caller))  # patchable
        methods.add(FAIL, calls.fail)
        methods.add(REFUSE, calls.refuse)
        methods.add(WRONG, calls.wrong)
        methods.add(SLOW, calls.slow)
        app = web.Application()
        hub = setup_realtime(
            app, registry, broker=broker, settings=RealtimeSettings(**settings), methods=methods
        )
        calls.hub = hub
        return await aiohttp_client(app), hub, calls

    return make


def request(id: str, method: str, params: Any = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "request", "id": id, "method": method}
    if params is not None:
        frame["params"] = params
    return frame


async def answer(ws: WsClient, id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The response with this id, and every other frame received before it."""
    before = []
    while (frame := await ws.recv())["type"] != "response" or frame["id"] != id:
        before.append(frame)
    return frame, before


async def test_a_call_answers_its_result_with_the_request_id_and_the_caller(methods_app):
    client, _hub, calls = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r-1", "items.set", {"key": "x", "value": 3}))
    response, _ = await answer(ws, "r-1")
    assert response == {"type": "response", "id": "r-1", "result": {"key": "x", "seq": 0}}
    assert calls.state.items["a"] == {"x": 3}
    assert ws.hello is not None
    (caller,) = calls.callers
    assert (caller.principal, caller.connection_id) == (None, ws.hello["connection_id"])
    assert caller.address == "127.0.0.1"


async def test_absent_params_are_an_empty_object(methods_app):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.slow"))  # no params: Empty validates
    await ws.send(request("f", "items.fail"))
    response, _ = await answer(ws, "f")
    assert response["error"]["code"] == "internal_error"  # it ran: the params were accepted


@pytest.mark.parametrize("method", ["nope", "items", "items.set.more", "ITEMS.SET"])
async def test_an_unknown_method_is_method_not_found_and_the_connection_serves_on(methods_app, method):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", method, {}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    assert method not in response["error"]["message"]  # error texts never echo input
    await ws.subscribe("items")
    assert [f["type"] for f in await ws.barrier()] == ["snapshot"]


async def test_an_app_without_methods_answers_every_request_method_not_found(lib_client):
    client, *_ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.set", {"key": "x", "value": 1}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "method_not_found"


async def test_invalid_params_list_the_field_errors_without_echoing_input(methods_app):
    client, _hub, calls = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.set", {"key": "", "value": "many", "<script>": 1}))
    response, _ = await answer(ws, "r")
    error = response["error"]
    assert error["code"] == ErrorCode.INVALID_PARAMS
    assert {tuple(d["loc"]) for d in error["details"]} == {("key",), ("value",), ("?",)}
    assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])
    assert "<script>" not in str(response) and "many" not in str(response)
    assert calls.callers == []  # never ran


async def test_a_declared_error_is_answered_with_its_code_message_and_details(methods_app):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.refuse", {"key": "k", "value": 0}))
    response, _ = await answer(ws, "r")
    assert response["error"] == {
        "code": "item_locked",
        "message": "that item is locked",
        "details": {"key": "k"},
    }


async def test_an_undeclared_error_code_is_an_internal_error(methods_app, caplog):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.refuse", {"key": "k", "value": 1}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "internal_error"
    assert "not_declared" in caplog.text  # the bug is in the log, for the app's developer


async def test_a_crash_is_an_internal_error_logged_with_the_connection_id_and_never_shown(
    methods_app, caplog
):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    with caplog.at_level(logging.ERROR, logger="aiohttp_realtime.calls"):
        await ws.send(request("r", "items.fail", {}))
        response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "internal_error"
    assert "hunter2" not in str(response) and "RuntimeError" not in str(response)
    assert ws.hello is not None
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.__dict__["connection_id"] == ws.hello["connection_id"]
    assert "hunter2" in caplog.text  # the traceback is the server's to read
    await ws.send(request("r2", "items.set", {"key": "after", "value": 1}))  # serves on
    assert "result" in (await answer(ws, "r2"))[0]


async def test_a_result_that_is_not_the_result_model_is_an_internal_error(methods_app, caplog):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.wrong", {}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "internal_error"
    assert "ValidationError" in caplog.text


async def test_a_slow_method_is_cancelled_and_answered_timeout(methods_app):
    client, _hub, calls = await methods_app(request_timeout_s=0.2)
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.slow", {}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "timeout"
    assert calls.cancelled == 1
    assert [f["type"] for f in await ws.barrier()] == []  # still serving


async def test_calls_run_concurrently_and_answer_in_the_order_they_finish(methods_app):
    client, _hub, calls = await methods_app()
    ws = await WsClient.connect(client)
    calls.gate.armed = True
    await ws.send(request("held", "items.set", {"key": "a", "value": 1}))
    await calls.gate.reached.wait()
    await ws.send(request("quick", "items.refuse", {"key": "b", "value": 0}))
    assert (await answer(ws, "quick"))[0]["error"]["code"] == "item_locked"
    await ws.send({"type": "ping", "id": "p"})  # the receive loop is not blocked by a call
    assert (await ws.recv()) == {"type": "pong", "id": "p"}
    calls.gate.release()
    assert (await answer(ws, "held"))[0]["result"]["key"] == "a"


async def test_at_most_max_requests_in_flight_run_at_once(methods_app):
    client, hub, calls = await methods_app(max_requests_in_flight=2)
    ws = await WsClient.connect(client)
    assert ws.hello is not None and ws.hello["max_requests_in_flight"] == 2
    calls.gate.armed = True
    await ws.send(request("1", "items.set", {"key": "a", "value": 1}))
    await ws.send(request("2", "items.set", {"key": "b", "value": 1}))
    await until(lambda: len(calls.callers) == 2)
    await ws.send(request("3", "items.set", {"key": "c", "value": 1}))
    response, _ = await answer(ws, "3")
    assert response["error"]["code"] == ErrorCode.TOO_MANY_REQUESTS
    assert len(calls.callers) == 2  # the third never ran
    calls.gate.release()
    await answer(ws, "1")
    await answer(ws, "2")
    await ws.send(request("4", "items.set", {"key": "d", "value": 1}))  # room again
    assert "result" in (await answer(ws, "4"))[0]
    assert len(hub.calls) == 0 and next(iter(hub.connections)).requests == 0


async def test_requests_count_against_the_frame_rate_and_a_limited_one_still_gets_its_response(
    methods_app,
):
    client, _hub, calls = await methods_app(frames_per_s=0.001, frames_burst=3)
    ws = await WsClient.connect(client)
    for i in range(4):
        await ws.send(request(f"r{i}", "items.set", {"key": f"k{i}", "value": i}))
    responses = {}
    while len(responses) < 4:
        frame = await ws.recv()
        responses[frame["id"]] = frame
    assert [("error" in responses[f"r{i}"]) for i in range(4)] == [False, False, False, True]
    assert responses["r3"]["error"]["code"] == "rate_limited"
    assert len(calls.callers) == 3


async def test_the_event_a_call_publishes_reaches_its_subscribed_caller_before_the_response(methods_app):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    await ws.send(request("r", "items.set", {"key": "x", "value": 7}))
    response, before = await answer(ws, "r")
    assert [(f["type"], f["seq"], f["payload"]["key"]) for f in before] == [("event", 1, "x")]
    assert response["result"] == {"key": "x", "seq": 1}


async def test_the_event_comes_first_even_when_the_broker_delivers_it_after_publish_returns(
    methods_app, monkeypatch
):
    client, hub, _calls = await methods_app(broker=LateBroker())
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    for i in range(5):
        await ws.send(request(f"r{i}", "items.set", {"key": f"k{i}", "value": i}))
        response, before = await answer(ws, f"r{i}")
        assert [f["seq"] for f in before if f["type"] == "event"] == [i + 1], before
        assert response["result"]["seq"] == i + 1

    # ... and it is the wait that does it: without it the response overtakes the event.
    async def no_wait(*_args: Any) -> None:
        return None

    monkeypatch.setattr(hub, "delivered", no_wait)
    await ws.send(request("early", "items.set", {"key": "z", "value": 9}))
    _response, before = await answer(ws, "early")
    assert before == []


async def test_a_caller_not_subscribed_gets_its_response_without_waiting_for_the_event(methods_app):
    client, *_ = await methods_app(broker=LateBroker())
    subscriber = await WsClient.connect(client)
    await subscriber.subscribe("items")
    await subscriber.barrier()
    caller = await WsClient.connect(client)
    await caller.send(request("r", "items.set", {"key": "x", "value": 1}))
    response, before = await answer(caller, "r")
    assert before == [] and response["result"]["seq"] == 1
    assert [f["seq"] for f in await subscriber.barrier() if f["type"] == "event"] in ([], [1])


async def test_a_call_whose_connection_drops_runs_to_its_end_and_its_response_is_dropped(methods_app, caplog):
    client, hub, calls = await methods_app()
    observer = await WsClient.connect(client)
    await observer.subscribe("items")
    await observer.barrier()
    ws = await WsClient.connect(client)
    calls.gate.armed = True
    await ws.send(request("r", "items.set", {"key": "late", "value": 5}))
    await calls.gate.reached.wait()
    await ws.close()
    await until(lambda: len(hub.connections) == 1)
    calls.gate.release()
    await until(lambda: len(hub.calls) == 0)
    assert calls.finished == ["late"]  # not half-applied: the command completed
    assert [f["payload"]["key"] for f in await observer.barrier()] == ["late"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stopping_the_hub_cancels_the_calls_still_running(methods_app):
    client, hub, calls = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.slow", {}))
    await until(lambda: calls.slow_started == 1)
    await hub.calls.stop()
    assert calls.cancelled == 1 and len(hub.calls) == 0
    assert next(iter(hub.connections)).requests == 0


async def test_a_malformed_request_is_an_error_frame_echoing_its_id(methods_app):
    client, *_ = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send({"type": "request", "id": "r", "params": {}})  # no method
    frame = await ws.recv()
    assert (frame["type"], frame["code"], frame.get("id")) == ("error", "invalid_message", "r")
    await ws.send({"type": "request", "method": "items.set"})  # no id: nothing to answer
    frame = await ws.recv()
    assert (frame["type"], frame["code"]) == ("error", "invalid_message")
    await ws.send({"type": "request", "id": "r", "method": "items.set", "params": [1, 2]})
    frame = await ws.recv()
    assert (frame["type"], frame["code"]) == ("error", "invalid_message")


def test_declarations_refuse_what_would_break_clients() -> None:
    with pytest.raises(ValueError, match="dot-separated"):
        MethodDef("items set", Empty, Empty)
    with pytest.raises(TypeError):
        MethodDef("items.set", dict, Empty)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="catalogue code"):
        MethodDef("items.set", Empty, Empty, errors={"timeout": "mine"})
    with pytest.raises(ValueError, match="must match"):
        MethodDef("items.set", Empty, Empty, errors={"Bad Code": "x"})
    registry = MethodRegistry()

    async def handler(_p: Empty, _c: Caller) -> Empty:
        return Empty()

    registry.add(FAIL, handler)
    with pytest.raises(ValueError, match="already registered"):
        registry.add(FAIL, handler)
    assert list(registry) == [FAIL] and len(registry) == 1


# ---------------------------------------------------------------- from a review


class Tagged(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[Literal["a"] | Literal["b"], Field()] = "a"
    ref: uuid.UUID


class Shape(BaseModel):
    shape: Annotated[Circle | Square, Field(discriminator="kind")]


class Circle(BaseModel):
    kind: Literal["circle"]


class Square(BaseModel):
    kind: Literal["square"]


class Brittle(BaseModel):
    name: str

    @field_validator("name", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip()  # an app's bug: AttributeError for a number


async def test_calls_outlive_their_connection_but_hold_its_slot_until_they_end(methods_app):
    client, hub, calls = await methods_app(max_connections=1)
    ws = await WsClient.connect(client)
    calls.gate.armed = True
    await ws.send(request("r", "items.set", {"key": "k", "value": 1}))
    await calls.gate.reached.wait()
    await ws.close()
    await until(lambda: not hub.connections)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/realtime")
    assert refused.value.status == 503  # the running call still holds the slot: calls stay bounded
    calls.gate.release()
    await until(lambda: len(hub.calls) == 0)
    assert (await WsClient.connect(client)).hello is not None  # released when the call ended


async def test_a_crashing_params_validator_is_an_internal_error_and_the_connection_serves_on(aiohttp_client):
    async def handler(_params: Brittle, _caller: Caller) -> Empty:
        return Empty()

    methods = MethodRegistry()
    methods.add(MethodDef("brittle.call", Brittle, Empty), handler)
    app = web.Application()
    setup_realtime(app, TopicRegistry(), methods=methods)
    ws = await WsClient.connect(await aiohttp_client(app))
    await ws.send(request("r", "brittle.call", {"name": 5}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "internal_error"
    assert [f["type"] for f in await ws.barrier()] == []  # still open and serving


async def test_invalid_params_messages_never_quote_the_input(aiohttp_client):
    async def handler(_params: Any, _caller: Caller) -> Empty:
        return Empty()

    methods = MethodRegistry()
    methods.add(MethodDef("tagged.call", Tagged, Empty), handler)
    methods.add(MethodDef("shape.call", Shape, Empty), handler)
    app = web.Application()
    setup_realtime(app, TopicRegistry(), methods=methods)
    ws = await WsClient.connect(await aiohttp_client(app))
    evil = "<img src=x onerror=alert(1)>"
    await ws.send(request("1", "tagged.call", {"ref": evil}))
    await ws.send(request("2", "shape.call", {"shape": {"kind": evil}}))
    for rid in ("1", "2"):
        response, _ = await answer(ws, rid)
        assert response["error"]["code"] == "invalid_params"
        assert "<" not in json.dumps(response), response


async def test_the_wait_for_delivery_has_one_deadline_for_all_the_topics(methods_app, monkeypatch):
    client, _hub, calls = await methods_app(broker=NeverBroker(), request_timeout_s=0.3)
    ws = await WsClient.connect(client)
    await ws.subscribe("items", "items.b")
    await ws.barrier()

    async def set_twice(params: SetItem, caller: Caller) -> ItemWritten:
        assert calls.hub is not None
        await calls.state.set(calls.hub, params.key, params.value)
        seq = await calls.state.set(calls.hub, params.key, params.value, group="b")
        return ItemWritten(key=params.key, seq=seq)

    monkeypatch.setattr(calls, "set", set_twice)  # read at call time by the bound handler
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.send(request("r", "items.set", {"key": "k", "value": 1}))
    response, _ = await answer(ws, "r")
    # Neither event ever arrives: the response gives up after one timeout, not one per topic.
    assert "result" in response and loop.time() - started < 0.55


async def test_a_timeout_raised_by_the_handler_itself_is_an_internal_error(aiohttp_client):
    async def handler(_params: Empty, _caller: Caller) -> Empty:
        raise TimeoutError("the database did not answer")

    methods = MethodRegistry()
    methods.add(MethodDef("db.call", Empty, Empty), handler)
    app = web.Application()
    setup_realtime(app, TopicRegistry(), methods=methods)
    ws = await WsClient.connect(await aiohttp_client(app))
    await ws.send(request("r", "db.call", {}))
    response, _ = await answer(ws, "r")
    assert response["error"]["code"] == "internal_error"  # `timeout` is the server's own limit


async def test_a_call_cancelled_before_it_ran_frees_its_in_flight_slot(methods_app):
    client, hub, _calls = await methods_app()
    ws = await WsClient.connect(client)
    await ws.send(request("r", "items.slow", {}))
    await ws.send({"type": "ping", "id": "p"})
    await ws.recv()  # the pong: the request was read, its task created
    await hub.calls.stop()  # cancels it, maybe before its first step
    assert next(iter(hub.connections)).requests == 0
