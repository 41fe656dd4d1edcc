"""The demo's methods end to end over a real socket: each does what its HTTP twin does
(same service, validation, scope check, write limit and error mapping), the HTTP API
works beside them, and a subscribed caller sees a call's events before its response."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aiohttp_realtime import BearerTokens, Principal
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.memory_store import MemoryStore
from backend.store import Store
from tests.pg_support import drop_database, pg_admin_url, pg_url  # noqa: F401
from tests.support import WsClient

Client = TestClient[web.Request, web.Application]
Demo = Callable[..., Awaitable[Client]]

_ids = itertools.count()


@pytest.fixture
def demo(aiohttp_client: Any) -> Demo:
    """`await demo(store=..., **config)`: a client of the demo app without the simulator."""

    async def make(*, store: Store | None = None, **config: Any) -> Client:
        client: Client = await aiohttp_client(build_app(Config(simulate=False, **config), store=store))
        return client

    return make


async def call(ws: WsClient, method: str, params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Call `method`: its response, and every other frame received before it."""
    id = f"c{next(_ids)}"
    await ws.send({"type": "request", "id": id, "method": method, "params": params})
    before = []
    while (frame := await ws.recv())["type"] != "response" or frame["id"] != id:
        before.append(frame)
    assert set(frame) in ({"type", "id", "result"}, {"type", "id", "error"}), frame
    return frame, before


async def result(ws: WsClient, method: str, params: Any) -> Any:
    response, _ = await call(ws, method, params)
    assert "result" in response, response
    return response["result"]


async def error(ws: WsClient, method: str, params: Any) -> dict[str, Any]:
    response, _ = await call(ws, method, params)
    assert "error" in response, response
    err: dict[str, Any] = response["error"]
    return err


async def http(client: Client, method: str, path: str, status: int, body: Any = None, **kw: Any) -> Any:
    resp = await client.request(method, path, json=body, **kw)
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.status != 204 else None


async def listed(client: Client, **kw: Any) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = await http(client, "GET", "/api/sessions", 200, **kw)
    return sessions


async def subscribed(client: Client, *topics: str, **kw: Any) -> WsClient:
    ws = await WsClient.connect(client, **kw)
    await ws.subscribe(*topics)
    assert [f["type"] for f in await ws.barrier()] == ["snapshot"] * len(topics)
    return ws


# ---------------------------------------------------------------- the methods and their twins


class Http:
    """The HTTP API's writes, answering as the methods do."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def create(self, title: str) -> Any:
        return await http(self.client, "POST", "/api/sessions", 201, {"title": title})

    async def update(self, sid: str, **changes: Any) -> Any:
        return await http(self.client, "PATCH", f"/api/sessions/{sid}", 200, changes)

    async def remove(self, sid: str) -> Any:
        await http(self.client, "DELETE", f"/api/sessions/{sid}", 204)
        return {"id": sid}

    async def send(self, sid: str, role: str, text: str) -> Any:
        body = {"role": role, "text": text}
        return await http(self.client, "POST", f"/api/sessions/{sid}/messages", 201, body)

    async def send_refused(self, sid: str) -> str:
        resp = await self.client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "x"})
        return str((await resp.json())["error"])


class Socket:
    """The same writes as realtime methods, over a connection subscribed to nothing."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws

    async def create(self, title: str) -> Any:
        return await result(self.ws, "sessions.create", {"title": title})

    async def update(self, sid: str, **changes: Any) -> Any:
        return await result(self.ws, "sessions.update", {"id": sid, **changes})

    async def remove(self, sid: str) -> Any:
        return await result(self.ws, "sessions.remove", {"id": sid})

    async def send(self, sid: str, role: str, text: str) -> Any:
        return await result(self.ws, "messages.send", {"session_id": sid, "role": role, "text": text})

    async def send_refused(self, sid: str) -> str:
        params = {"session_id": sid, "role": "user", "text": "x"}
        return str((await error(self.ws, "messages.send", params))["code"])


def anonymised(value: Any) -> Any:
    """`value` with the server's ids and clocks replaced, to compare two runs."""
    text = json.dumps(value)
    text = re.sub(r"\bs-[0-9a-f]{12}\b", "<session>", text)
    text = re.sub(r"\bm-[0-9a-f]{12}\b", "<message>", text)
    text = re.sub(r'"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)"', '"<time>"', text)
    return json.loads(text)


async def _scenario(client: Client, way: Http | Socket) -> tuple[list[Any], list[dict[str, Any]]]:
    """Create, update, post, remove through `way`; what it answered (and `GET` showed)
    and what a subscriber of `sessions.state` and the session's activity received."""
    observer = await subscribed(client, "sessions.state")
    answers: list[Any] = []
    created = await way.create("  Deploy  ")
    sid = created["id"]
    answers += [created, await listed(client)]
    await observer.subscribe(f"sessions.activity:{sid}")
    frames = await observer.barrier()  # live on it before the next change
    answers.append(await way.update(sid, state="running"))
    answers.append(await way.update(sid, title="Ship", state="waiting"))
    answers.append(await way.send(sid, "user", "héllo"))
    answers.append(await http(client, "GET", f"/api/sessions/{sid}", 200))
    answers.append(await way.remove(sid))
    answers += [await listed(client), await way.send_refused(sid)]
    await observer.subscribe(f"sessions.activity:{sid}")  # gone: as a topic too
    return answers, frames + await observer.barrier()


async def test_each_method_does_what_its_http_twin_does(demo):
    over_http = await _scenario(client := await demo(), Http(client))
    over_socket = await _scenario(client := await demo(), Socket(await WsClient.connect(client)))
    assert anonymised(over_socket) == anonymised(over_http)

    answers, frames = over_socket
    created, listing, running, renamed, message, fetched, removed, after, refused = answers
    sid = created["id"]
    assert (created["title"], created["state"]) == ("Deploy", "idle")  # stripped, as over HTTP
    assert listing == [created]
    assert (running["title"], running["state"]) == ("Deploy", "running")
    assert (renamed["title"], renamed["state"]) == ("Ship", "waiting") and fetched == renamed
    assert message["session_id"] == sid and message["text"] == "héllo" and not message["streaming"]
    assert (removed, after, refused) == ({"id": sid}, [], "not_found")
    assert [(f["type"], f["topic"], f.get("payload") or f.get("code")) for f in frames] == [
        ("event", "sessions.state", {"op": "upsert", "session": created}),
        ("snapshot", f"sessions.activity:{sid}", {"session_id": sid, "messages": []}),
        ("event", "sessions.state", {"op": "upsert", "session": running}),
        ("event", "sessions.state", {"op": "upsert", "session": renamed}),
        ("event", f"sessions.activity:{sid}", {"op": "append", "message": message}),
        ("event", "sessions.state", {"op": "remove", "id": sid}),
        ("error", f"sessions.activity:{sid}", "unknown_topic"),
    ]


async def test_a_session_made_over_one_way_in_is_changed_over_the_other(demo):
    client = await demo()
    over_http, socket = Http(client), Socket(await WsClient.connect(client))
    from_http = await over_http.create("from http")
    from_socket = await socket.create("from socket")
    assert {s["id"] for s in await listed(client)} == {from_http["id"], from_socket["id"]}

    changed_by_socket = await socket.update(from_http["id"], state="done")
    changed_by_http = await over_http.update(from_socket["id"], title="renamed")
    assert (changed_by_socket["title"], changed_by_socket["state"]) == ("from http", "done")
    assert (changed_by_http["title"], changed_by_http["state"]) == ("renamed", "idle")
    assert sorted(await listed(client), key=lambda s: s["title"]) == [changed_by_socket, changed_by_http]

    by_socket = await socket.send(from_http["id"], "assistant", "one")
    by_http = await over_http.send(from_socket["id"], "user", "two")
    for sid, message in ((from_http["id"], by_socket), (from_socket["id"], by_http)):
        activity = await WsClient.connect(client)
        await activity.subscribe(f"sessions.activity:{sid}")
        [snapshot] = await activity.barrier()
        assert snapshot["payload"] == {"session_id": sid, "messages": [message]}

    assert await socket.remove(from_http["id"]) == {"id": from_http["id"]}
    await over_http.remove(from_socket["id"])
    assert await listed(client) == []
    assert await over_http.send_refused(from_http["id"]) == "not_found"
    assert await socket.send_refused(from_socket["id"]) == "not_found"


# ---------------------------------------------------------------- event, then response


async def test_the_subscribed_caller_gets_each_calls_event_before_its_response(demo):
    client = await demo()
    ws = await subscribed(client, "sessions.state")

    response, before = await call(ws, "sessions.create", {"title": "ordered"})
    session = response["result"]
    assert [(f["topic"], f["payload"]) for f in before] == [
        ("sessions.state", {"op": "upsert", "session": session})
    ]
    sid = session["id"]
    await ws.subscribe(f"sessions.activity:{sid}")
    assert [f["type"] for f in await ws.barrier()] == ["snapshot"]

    response, before = await call(ws, "sessions.update", {"id": sid, "state": "running"})
    assert [(f["topic"], f["payload"]) for f in before] == [
        ("sessions.state", {"op": "upsert", "session": response["result"]})
    ]
    response, before = await call(ws, "messages.send", {"session_id": sid, "role": "user", "text": "hi"})
    assert [(f["topic"], f["payload"]) for f in before] == [
        (f"sessions.activity:{sid}", {"op": "append", "message": response["result"]})
    ]
    response, before = await call(ws, "sessions.remove", {"id": sid})
    assert response["result"] == {"id": sid}
    assert [(f["topic"], f["payload"]) for f in before] == [("sessions.state", {"op": "remove", "id": sid})]
    assert await ws.barrier() == []  # nothing more came after the responses


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("sid", ["s-000000000000", "bad/chars:no topic"])
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("sessions.update", {"state": "done"}),
        ("sessions.update", {"title": "new"}),
        ("sessions.remove", {}),
        ("messages.send", {"role": "user", "text": "x"}),
    ],
)
async def test_an_unknown_session_is_not_found_and_nothing_changes(demo, method, params, sid):
    client = await demo()
    kept = await Http(client).create("kept")
    observer = await subscribed(client, "sessions.state")
    key = "session_id" if method == "messages.send" else "id"
    err = await error(await WsClient.connect(client), method, {key: sid, **params})
    assert (err["code"], err["message"]) == ("not_found", "no such session")
    assert sid not in json.dumps(err)
    assert await observer.barrier() == []
    assert await listed(client) == [kept]


# (method, params, HTTP twin: method, path, body, and a part of the input never echoed)
INVALID = {
    "empty title": ("sessions.create", {"title": ""}, "POST", "", {"title": ""}, None, [["title"]]),
    "blank title": ("sessions.create", {"title": " \t "}, "POST", "", {"title": " \t "}, None, [["title"]]),
    "no title": ("sessions.create", {}, "POST", "", {}, None, [["title"]]),
    "title too long": (
        "sessions.create",
        {"title": "Zq" * 101},
        "POST",
        "",
        {"title": "Zq" * 101},
        "ZqZq",
        [["title"]],
    ),
    "NUL in title": (
        "sessions.create",
        {"title": "secret\x00title"},
        "POST",
        "",
        {"title": "secret\x00title"},
        "secret",
        [["title"]],
    ),
    "unknown field": (
        "sessions.create",
        {"title": "ok", "<b>owner</b>": "mallory"},
        "POST",
        "",
        {"title": "ok", "<b>owner</b>": "mallory"},
        "mallory",
        [["?"]],
    ),
    "bad state": (
        "sessions.update",
        {"id": "{sid}", "state": "hibernating"},
        "PATCH",
        "/{sid}",
        {"state": "hibernating"},
        "hibernating",
        [["state"]],
    ),
    "NUL in new title": (
        "sessions.update",
        {"id": "{sid}", "title": "a\x00b"},
        "PATCH",
        "/{sid}",
        {"title": "a\x00b"},
        "a\\u0000b",
        [["title"]],
    ),
    "nothing to change": ("sessions.update", {"id": "{sid}"}, "PATCH", "/{sid}", {}, None, [[]]),
    "bad role": (
        "messages.send",
        {"session_id": "{sid}", "role": "overlord", "text": "x"},
        "POST",
        "/{sid}/messages",
        {"role": "overlord", "text": "x"},
        "overlord",
        [["role"]],
    ),
    "empty text": (
        "messages.send",
        {"session_id": "{sid}", "role": "user", "text": ""},
        "POST",
        "/{sid}/messages",
        {"role": "user", "text": ""},
        None,
        [["text"]],
    ),
}


def _with_sid(value: Any, sid: str) -> Any:
    return json.loads(json.dumps(value).replace("{sid}", sid))


@pytest.mark.parametrize(
    ("method", "params", "http_method", "http_path", "body", "secret", "locs"),
    INVALID.values(),
    ids=INVALID.keys(),
)
async def test_invalid_params_list_the_field_errors_as_the_http_api_does_and_change_nothing(
    demo, method, params, http_method, http_path, body, secret, locs
):
    client = await demo()
    kept = await Http(client).create("kept")
    observer = await subscribed(client, "sessions.state", f"sessions.activity:{kept['id']}")
    err = await error(await WsClient.connect(client), method, _with_sid(params, kept["id"]))
    assert (err["code"], err["message"]) == ("invalid_params", "invalid params")
    assert [d["loc"] for d in err["details"]] == locs
    assert all(set(d) == {"loc", "msg", "type"} for d in err["details"])
    if secret is not None:
        assert secret not in json.dumps(err)  # the input is never echoed
    assert await observer.barrier() == []  # nothing published ...
    assert await listed(client) == [kept]  # ... nor changed

    twin = await http(client, http_method, "/api/sessions" + _with_sid(http_path, kept["id"]), 422, body)
    assert twin["details"] == err["details"]  # the same errors, as the same details


async def test_a_full_store_is_quota_exceeded_as_over_http(demo):
    client = await demo(store=MemoryStore(max_sessions=2, max_title_bytes=10))
    ws, observer = await WsClient.connect(client), await subscribed(client, "sessions.state")
    first = await result(ws, "sessions.create", {"title": "one"})
    await Http(client).create("two")
    assert len(await observer.barrier()) == 2

    err = await error(ws, "sessions.create", {"title": "three"})
    assert err == {"code": "quota_exceeded", "message": "at most 2 sessions"}
    twin = await http(client, "POST", "/api/sessions", 409, {"title": "three"})
    assert (twin["error"], twin["message"]) == (err["code"], err["message"])

    err = await error(ws, "sessions.update", {"id": first["id"], "title": "a longer title"})
    assert err["code"] == "quota_exceeded" and "titles" in err["message"]
    twin = await http(client, "PATCH", f"/api/sessions/{first['id']}", 409, {"title": "a longer title"})
    assert (twin["error"], twin["message"]) == (err["code"], err["message"])

    assert await observer.barrier() == []
    assert [s["title"] for s in await listed(client)] == ["one", "two"]


WRITER = "writer-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
TOKENS = BearerTokens(
    {
        WRITER: Principal("writer", frozenset({"read", "write"})),
        READER: Principal("reader", frozenset({"read"})),
    }
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_without_the_write_scope_is_forbidden_every_method(demo):
    client = await demo(tokens=TOKENS)
    writer = await WsClient.connect(client, headers=bearer(WRITER))
    session = await result(writer, "sessions.create", {"title": "by the writer"})
    sid = session["id"]
    reader = await subscribed(client, "sessions.state", f"sessions.activity:{sid}", headers=bearer(READER))

    for method, params in [
        ("sessions.create", {"title": "by the reader"}),
        ("sessions.update", {"id": sid, "state": "done"}),
        ("sessions.update", {"id": "s-000000000000", "state": "done"}),  # not a not_found: no probing
        ("sessions.remove", {"id": sid}),
        ("messages.send", {"session_id": sid, "role": "user", "text": "x"}),
    ]:
        err = await error(reader, method, params)
        assert (err["code"], err["message"]) == ("forbidden", "this token may not change anything"), method
    twin = await http(client, "POST", "/api/sessions", 403, {"title": "x"}, headers=bearer(READER))
    assert twin["error"] == "forbidden"
    assert await reader.barrier() == []
    assert await listed(client, headers=bearer(READER)) == [session]

    updated = await result(writer, "sessions.update", {"id": sid, "state": "done"})  # the writer may
    assert [f["payload"] for f in await reader.barrier()] == [{"op": "upsert", "session": updated}]


async def test_socket_and_http_writes_draw_from_one_per_address_write_limit(demo):
    client = await demo(http=HttpLimits(writes_per_s=0.001, writes_burst=4))
    ws = await WsClient.connect(client)
    await Http(client).create("http 1")
    sid = (await result(ws, "sessions.create", {"title": "socket 1"}))["id"]
    await Http(client).create("http 2")
    await result(ws, "sessions.update", {"id": sid, "state": "running"})  # the 4th write: the last
    observer = await subscribed(client, "sessions.state")

    for method, params in [
        ("sessions.create", {"title": "socket 2"}),
        ("sessions.update", {"id": sid, "state": "done"}),
        ("sessions.remove", {"id": sid}),
        ("messages.send", {"session_id": sid, "role": "user", "text": "x"}),
    ]:
        err = await error(ws, method, params)
        # (the library's frame limit answers `rate_limited` too, with another message)
        assert (err["code"], err["message"]) == ("rate_limited", "too many writes; slow down"), method
    twin = await http(client, "POST", "/api/sessions", 429, {"title": "http 3"})
    assert twin["error"] == "rate_limited"
    assert await observer.barrier() == []
    assert [(s["title"], s["state"]) for s in await listed(client)] == [
        ("http 1", "idle"),
        ("socket 1", "running"),
        ("http 2", "idle"),
    ]


async def test_a_socket_write_after_http_ones_is_refused_when_they_used_the_burst(demo):
    client = await demo(http=HttpLimits(writes_per_s=0.001, writes_burst=2))
    await Http(client).create("http 1")
    await Http(client).create("http 2")
    err = await error(await WsClient.connect(client), "sessions.create", {"title": "socket"})
    assert err["code"] == "rate_limited"
    assert [s["title"] for s in await listed(client)] == ["http 1", "http 2"]


@pytest.mark.parametrize("method", ["sessions.delete", "sessions", "messages.send.now", "Sessions.Create"])
async def test_an_unknown_method_is_method_not_found(demo, method):
    client = await demo()
    observer = await subscribed(client, "sessions.state")
    err = await error(await WsClient.connect(client), method, {"title": "x"})
    assert err["code"] == "method_not_found" and method not in err["message"]
    assert await observer.barrier() == [] and await listed(client) == []


async def test_a_store_that_went_away_is_unavailable_as_over_http(pg_url, pg_admin_url, demo):  # noqa: F811
    client = await demo(database=pg_url)
    ws = await WsClient.connect(client)
    kept = await result(ws, "sessions.create", {"title": "before"})
    await drop_database(pg_url, pg_admin_url)  # every connection is cut
    for method, params in [
        ("sessions.create", {"title": "after"}),
        ("sessions.update", {"id": kept["id"], "state": "done"}),
        ("sessions.remove", {"id": kept["id"]}),
        ("messages.send", {"session_id": kept["id"], "role": "user", "text": "x"}),
    ]:
        err = await error(ws, method, params)
        assert (err["code"], err["message"]) == ("unavailable", "the store is unreachable; retry later")
    twin = await http(client, "POST", "/api/sessions", 503, {"title": "after"})
    assert twin["error"] == "unavailable"
    await ws.send({"type": "ping", "id": "p"})  # the connection serves on
    assert await ws.recv() == {"type": "pong", "id": "p"}
