"""Idempotent writes end to end (backend/idempotency.py): every demo write, over HTTP
(`Idempotency-Key`) and over the socket (`idempotency_key`), on both stores. A resend
with the same key answers the first outcome and changes nothing; another request under
the key is refused; failures keep nothing; keys are per principal; concurrent resends
write once; and a write that committed but whose publish failed (503 / `unavailable`)
is answered by its resend with the first outcome, saved once - also as the Python
client resends it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from aiohttp_realtime import BearerTokens, BrokerUnavailable, Principal
from aiohttp_realtime.client import RequestError, connect
from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.store import Store
from tests.pg_support import new_database, pg_admin_url  # noqa: F401 - fixtures
from tests.store_support import RecordingBroker, dump, make_store
from tests.support import WsClient

Client = TestClient[web.Request, web.Application]
_ids = itertools.count()
NO_SESSION = "s-000000000000"


@pytest.fixture(params=["memory", "postgres"])
async def database(request: Any) -> AsyncIterator[str | None]:
    """The store kind's database: None for the in-memory store, else a fresh one. Set up
    before the app (and so dropped after it is closed)."""
    if request.param == "memory":
        yield None
        return
    async with new_database(request.getfixturevalue("pg_admin_url")) as url:
        yield url


@dataclass
class Demo:
    client: Client
    broker: RecordingBroker
    url: str | None

    @property
    def store(self) -> Store:
        return self.client.app[SERVICE_KEY].store


MakeDemo = Callable[..., Awaitable[Demo]]


@pytest.fixture
def demo(database: str | None, aiohttp_client: Any) -> MakeDemo:
    """`await demo(limits={...}, **config)`: the demo app on the parameter's store, its
    broker recording (and able to fail) every publish."""

    async def make(*, limits: dict[str, Any] | None = None, **config: Any) -> Demo:
        store = make_store("memory" if database is None else "postgres", database, **(limits or {}))
        broker = RecordingBroker()
        app = build_app(Config(simulate=False, **config), store=store, broker=broker)
        return Demo(await aiohttp_client(app), broker, database)

    return make


# ---------------------------------------------------------------- the two ways in

Answer = tuple[str, Any]  # ("ok", the result) or (the error code, None)
_HTTP_OK = {"create": 201, "update": 200, "remove": 204, "send": 201}


class Http:
    def __init__(self, client: Client, token: str | None = None) -> None:
        self.client, self.token = client, token

    async def write(self, op: str, args: dict[str, Any], key: str | None, **headers: str) -> Answer:
        args = dict(args)
        sid = args.pop("id", None) or args.pop("session_id", None)
        method, path = {
            "create": ("POST", "/api/sessions"),
            "update": ("PATCH", f"/api/sessions/{sid}"),
            "remove": ("DELETE", f"/api/sessions/{sid}"),
            "send": ("POST", f"/api/sessions/{sid}/messages"),
        }[op]
        sent = CIMultiDict(headers)
        if key is not None:
            sent["Idempotency-Key"] = key
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        resp = await self.client.request(method, path, json=None if op == "remove" else args, headers=sent)
        if resp.status == _HTTP_OK[op]:
            return "ok", (None if resp.status == 204 else await resp.json())
        body = await resp.json()  # every refusal is JSON
        assert (body["error"], resp.status) in _STATUS, (body, resp.status)
        return body["error"], None


_STATUS = {
    ("idempotency_key_reused", 422),
    ("invalid_idempotency_key", 400),
    ("quota_exceeded", 409),
    ("not_found", 404),
    ("unavailable", 503),
}


class Socket:
    def __init__(self, ws: WsClient) -> None:
        self.ws = ws

    async def write(self, op: str, args: dict[str, Any], key: str | None) -> Answer:
        method = {"create": "sessions.create", "update": "sessions.update"}.get(op)
        method = method or {"remove": "sessions.remove", "send": "messages.send"}[op]
        rid = f"c{next(_ids)}"
        frame = {"type": "request", "id": rid, "method": method, "params": args}
        await self.ws.send(frame if key is None else {**frame, "idempotency_key": key})
        while (answer := await self.ws.recv()).get("id") != rid:
            pass
        if answer["type"] == "error":  # the frame itself was refused
            return answer["code"], None
        return ("ok", answer["result"]) if "result" in answer else (answer["error"]["code"], None)


Way = Http | Socket


@contextlib.asynccontextmanager
async def way_in(kind: str, client: Client, token: str | None = None) -> AsyncIterator[Way]:
    if kind == "http":
        yield Http(client, token)
        return
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    ws = await WsClient.connect(client, headers=headers)
    try:
        yield Socket(ws)
    finally:
        await ws.close()


ways = pytest.mark.parametrize("way", ["http", "socket"])


def key() -> str:
    return f"key-{next(_ids)}"


async def created(d: Demo, title: str = "target") -> str:
    sid: str = (await Http(d.client).write("create", {"title": title}, None))[1]["id"]
    return sid


# ---------------------------------------------------------------- a resend is answered, not run


@ways
@pytest.mark.parametrize("op", ["create", "update", "remove", "send"])
async def test_a_resend_with_the_same_key_answers_the_first_outcome_and_changes_nothing(demo, way, op):
    d = await demo()
    sid = await created(d)
    args = {
        "create": {"title": "once"},
        "update": {"id": sid, "state": "running"},
        "remove": {"id": sid},
        "send": {"session_id": sid, "role": "user", "text": "once"},
    }[op]
    k = key()
    async with way_in(way, d.client) as w:
        first = await w.write(op, args, k)
        assert first[0] == "ok"
        state, published = await dump(d.store), len(d.broker.published)
        for _ in range(2):
            assert await w.write(op, args, k) == first
        assert await dump(d.store) == state  # nothing created, changed or deleted again
        assert len(d.broker.published) == published  # and nothing published
        # Without a key (or with a fresh one) the same request runs again.
        if op in ("create", "send"):
            again = await w.write(op, args, key())
            assert again[0] == "ok" and again[1]["id"] != first[1]["id"]


@ways
async def test_the_key_of_another_request_is_refused_and_changes_nothing(demo, way):
    d = await demo()
    sid = await created(d)
    k = key()
    async with way_in(way, d.client) as w:
        assert (await w.write("create", {"title": "first"}, k))[0] == "ok"
        state = await dump(d.store)
        for op, args in [
            ("create", {"title": "another title"}),
            ("update", {"id": sid, "title": "first"}),
            ("remove", {"id": sid}),
            ("send", {"session_id": sid, "role": "user", "text": "first"}),
        ]:
            assert await w.write(op, args, k) == ("idempotency_key_reused", None), op
        assert await dump(d.store) == state


async def test_one_key_is_one_request_over_http_and_over_the_socket(demo):
    d = await demo()
    k = key()
    async with way_in("http", d.client) as http, way_in("socket", d.client) as socket:
        first = await http.write("create", {"title": "either way"}, k)
        assert await socket.write("create", {"title": "either way"}, k) == first
        sid = first[1]["id"]
        message = await socket.write("send", {"session_id": sid, "role": "user", "text": "hi"}, k + "m")
        assert await http.write("send", {"session_id": sid, "role": "user", "text": "hi"}, k + "m") == message
    assert len(await d.store.sessions()) == 1 and len(await d.store.messages(sid)) == 1


@ways
async def test_a_failed_write_keeps_nothing_so_its_resend_runs_again(demo, way):
    d = await demo(limits={"max_sessions": 1})
    sid = await created(d)
    k = key()
    async with way_in(way, d.client) as w:
        assert await w.write("create", {"title": "over the quota"}, k) == ("quota_exceeded", None)
        send = {"session_id": NO_SESSION, "role": "user", "text": "x"}
        assert await w.write("send", send, k) == ("not_found", None)  # the key is still free
        assert (await w.write("remove", {"id": sid}, None))[0] == "ok"
        ok = await w.write("create", {"title": "over the quota"}, k)
        assert ok[0] == "ok"
        assert [s.id for s in await d.store.sessions()] == [ok[1]["id"]]


async def test_keys_are_per_principal(demo):
    tokens = {"alice-token-0123456789abcdef": "alice", "bob-token-0123456789abcdefgh": "bob"}
    d = await demo(
        tokens=BearerTokens({t: Principal(p, frozenset({"read", "write"})) for t, p in tokens.items()})
    )
    alice, bob = tokens
    k = key()
    async with way_in("http", d.client, alice) as a, way_in("socket", d.client, bob) as b:
        mine = await a.write("create", {"title": "same"}, k)
        theirs = await b.write("create", {"title": "same"}, k)
        assert mine[0] == theirs[0] == "ok" and mine[1]["id"] != theirs[1]["id"]  # not alice's
        assert await b.write("create", {"title": "same"}, k) == theirs
        assert await a.write("create", {"title": "same"}, k) == mine
        assert (await b.write("create", {"title": "bob's own"}, key()))[0] == "ok"
    assert len(await d.store.sessions()) == 3


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize("database", ["memory"], indirect=True)
@pytest.mark.parametrize("bad", ["", "  ", "x" * 256, "caf\u00e9", "tab\there"])
async def test_an_invalid_header_key_is_a_json_400_and_changes_nothing(demo, bad):
    # (Other control characters never reach the app: aiohttp's parser refuses the request.)
    d = await demo()
    assert await Http(d.client).write("create", {"title": "x"}, bad) == ("invalid_idempotency_key", None)
    assert await d.store.sessions() == []


@pytest.mark.parametrize("database", ["memory"], indirect=True)
@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "line\nbreak", "\x7f", "\x00"])
async def test_an_invalid_frame_key_is_invalid_message_and_changes_nothing(demo, bad):
    d = await demo()
    async with way_in("socket", d.client) as socket:
        assert await socket.write("create", {"title": "x"}, bad) == ("invalid_message", None)
    assert await d.store.sessions() == []


@pytest.mark.parametrize("database", ["memory"], indirect=True)
async def test_keys_that_are_valid_and_two_headers_that_are_not(demo):
    d = await demo()
    http = Http(d.client)
    longest, spaced = "k" * 255, "a key ~ with spaces!"
    for k in (longest, spaced):
        first = await http.write("create", {"title": k[:20]}, k)
        assert first[0] == "ok" and await http.write("create", {"title": k[:20]}, k) == first
    quoted = await http.write("create", {"title": "quoted"}, '"sf-string"')  # the draft's form
    assert await http.write("create", {"title": "quoted"}, "sf-string") == quoted
    two = CIMultiDict([("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    resp = await d.client.post("/api/sessions", json={"title": "two keys"}, headers=two)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_idempotency_key"
    assert len(await d.store.sessions()) == 3


# ---------------------------------------------------------------- concurrency


@ways
async def test_concurrent_requests_with_one_key_write_once(demo, way):
    d = await demo()
    sid = await created(d)
    async with contextlib.AsyncExitStack() as stack:
        # Several connections (or HTTP requests) at once: each its own task.
        ins = [await stack.enter_async_context(way_in(way, d.client)) for _ in range(4)]
        k, m = key(), key()
        answers = await asyncio.gather(*(w.write("create", {"title": "racing"}, k) for w in ins))
        assert answers[0][0] == "ok" and answers == [answers[0]] * 4
        send = {"session_id": sid, "role": "user", "text": "racing"}
        answers = await asyncio.gather(*(w.write("send", send, m) for w in ins))
        assert answers[0][0] == "ok" and answers == [answers[0]] * 4
    assert [s.title for s in await d.store.sessions()] == ["target", "racing"]
    assert [x.text for x in await d.store.messages(sid)] == ["racing"]


# ---------------------------------------------------------------- committed, not published


@ways
async def test_a_write_saved_but_not_published_is_a_503_whose_resend_answers_the_first_outcome(demo, way):
    """The broker fails after the commit: the client gets 503 / `unavailable`, but the
    session and its outcome are saved together; the resend (broker back) answers it."""
    d = await demo()
    k = key()

    async def down(_topic: str, _payload: Any) -> None:
        raise BrokerUnavailable("the broker went away after the commit")

    async with way_in(way, d.client) as w:
        d.broker.before_publish = down
        assert await w.write("create", {"title": "unknown outcome"}, k) == ("unavailable", None)
        saved = await d.store.sessions()
        assert [s.title for s in saved] == ["unknown outcome"]  # committed all the same
        d.broker.before_publish = None
        answer = await w.write("create", {"title": "unknown outcome"}, k)
        assert answer == ("ok", saved[0].model_dump(mode="json"))  # the first outcome
        assert await w.write("create", {"title": "unknown outcome"}, k) == answer
    assert [s.id for s in await d.store.sessions()] == [saved[0].id]
    if d.url is not None:  # in the database itself: one row, and the outcome beside it
        conn = await asyncpg.connect(d.url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM sessions") == 1
            assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", k) == 1
        finally:
            await conn.close()


async def test_the_python_client_resends_an_unavailable_call_with_its_key(demo):
    d = await demo()
    once = [BrokerUnavailable("down for one publish")]

    async def down_once(_topic: str, _payload: Any) -> None:
        if once:
            raise once.pop()

    d.broker.before_publish = down_once
    async with connect(str(d.client.make_url("/api/realtime")), session=d.client.session) as rt:
        # Answered `unavailable` (saved, not published), resent with its key: the first outcome.
        created = await rt.request("sessions.create", {"title": "resent"})
        assert once == [] and [s.id for s in await d.store.sessions()] == [created["id"]]
        k = key()
        mine = await rt.request("sessions.create", {"title": "my key"}, idempotency_key=k)
        assert await Http(d.client).write("create", {"title": "my key"}, k) == ("ok", mine)
        once.append(BrokerUnavailable("down again"))
        with pytest.raises(RequestError) as refused:
            await rt.request("sessions.create", {"title": "not resent"}, retries=0)
        assert refused.value.code == "unavailable"
