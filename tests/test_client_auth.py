"""Tokens in the Python client and `python -m backend tail`: sent as `Authorization:
Bearer`, with the subprotocol `realtime.v1` offered, never in the URL; a refusal (HTTP
401 before the upgrade) is an `UnauthorizedError` at once, not a hang.

Against a tiny server that records each handshake, so the tests see exactly what the
client sent, whatever the real server accepts."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import BearerTokens, Principal, TopicDef, TopicRegistry, setup_realtime
from aiohttp_realtime.client import SUBPROTOCOL, SnapshotFrame, UnauthorizedError, connect
from backend.tail import parse_args, tail

TOKEN = "dG9rZW4-base64url_"

HELLO = {
    "type": "hello",
    "connection_id": "c1",
    "server_time": "2026-01-01T00:00:00Z",
    "protocol": 1,
    "heartbeat_s": 25,
    "max_queue_bytes": 1 << 20,
    "max_frame_bytes": 65536,
    "max_topics": 100,
    "max_snapshot_bytes": 1 << 19,
    "frames_per_s": 20,
    "subscribes_per_s": 50,
    "auth": True,
    "max_requests_in_flight": 16,
    "request_timeout_s": 10.0,
    "principal": "alice",
}


@dataclass(frozen=True)
class Handshake:
    authorization: str | None
    offered: tuple[str, ...]
    path_qs: str
    origin: str | None = None


class Recorder:
    """The server: 401 JSON (like the real one) unless `Authorization: Bearer TOKEN`
    (any request when `token` is None: auth off); after the upgrade, hello, and a
    snapshot per subscribed topic followed by a normal close."""

    def __init__(self, token: str | None = TOKEN) -> None:
        self.token = token
        self.handshakes: list[Handshake] = []

    async def handler(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Sec-WebSocket-Protocol", "")
        self.handshakes.append(
            Handshake(
                authorization=request.headers.get("Authorization"),
                offered=tuple(p.strip() for p in header.split(",") if p.strip()),
                path_qs=request.path_qs,
                origin=request.headers.get("Origin"),
            )
        )
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            body = {"error": "unauthorized", "message": "a valid token is required"}
            return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,))
        await ws.prepare(request)
        await ws.send_json(HELLO)
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["type"] == "subscribe":
                for topic in frame["topics"]:
                    await ws.send_json({"type": "snapshot", "topic": topic, "seq": 0, "payload": {}})
                await ws.close()
        return ws


@pytest.fixture
def serve(aiohttp_server: Any) -> Any:
    """`await serve(token=...)` -> (the realtime URL, the recorder)."""

    async def make(token: str | None = TOKEN) -> tuple[str, Recorder]:
        recorder = Recorder(token)
        app = web.Application()
        app.router.add_get("/api/realtime", recorder.handler)
        server = await aiohttp_server(app)
        return str(server.make_url("/api/realtime")), recorder

    return make


async def test_the_token_goes_in_the_authorization_header_with_realtime_v1_offered(serve):
    url, server = await serve()
    async with connect(url, token=TOKEN) as rt:
        assert rt.hello.principal == "alice"
        assert rt.ws.protocol == "realtime.v1"
    assert server.handshakes == [Handshake(f"Bearer {TOKEN}", ("realtime.v1",), "/api/realtime")]


async def test_without_a_token_no_authorization_header_and_still_realtime_v1(serve):
    url, server = await serve(token=None)
    async with connect(url) as rt:
        assert rt.ws.protocol == "realtime.v1"
    assert server.handshakes == [Handshake(None, ("realtime.v1",), "/api/realtime")]


async def test_the_token_joins_headers_given_by_the_caller(serve):
    url, server = await serve()
    headers = {"Origin": "http://app.example", "authorization": "Basic stale"}
    async with connect(url, token=TOKEN, headers=headers):
        pass
    (handshake,) = server.handshakes
    assert (handshake.authorization, handshake.origin) == (f"Bearer {TOKEN}", "http://app.example")


@pytest.mark.parametrize(
    ("token", "why"),
    [("wrong", "did not accept the token"), (None, "wants a token")],
)
async def test_a_refused_token_raises_unauthorized_at_once(serve, token, why):
    url, server = await serve()
    async with asyncio.timeout(5):  # a refusal must not hang
        with pytest.raises(UnauthorizedError) as refused:
            async with connect(url, token=token):
                pytest.fail("connected without a valid token")
    assert refused.value.status == 401
    assert isinstance(refused.value, aiohttp.ClientError)  # existing `except ClientError` still catch it
    assert why in str(refused.value)
    assert "wrong" not in str(refused.value)
    assert len(server.handshakes) == 1


@pytest.mark.parametrize("token", ["", "Bearer abc", "two words", "line\r\nX-Injected: 1", "näive"])
async def test_a_token_no_header_can_carry_is_refused_before_connecting(serve, token):
    url, server = await serve()
    with pytest.raises(ValueError, match="visible ASCII") as invalid:
        async with connect(url, token=token):
            pass
    assert token == "" or token not in str(invalid.value)
    assert server.handshakes == []


class Count(BaseModel):
    n: int


COUNT = TopicDef("count", Count, Count)


@pytest.fixture
def library_server(aiohttp_server: Any) -> Any:
    """The library's own endpoint with `BearerTokens`: the client against the real contract."""

    async def make() -> str:
        async def provider(_params: Any) -> Count:
            return Count(n=1)

        registry = TopicRegistry()
        registry.add(COUNT, provider)
        app = web.Application()
        setup_realtime(app, registry, authenticate=BearerTokens({TOKEN: Principal("alice")}))
        server = await aiohttp_server(app)
        return str(server.make_url("/api/realtime"))

    return make


async def test_the_library_endpoint_accepts_the_token_and_selects_realtime_v1(library_server):
    url = await library_server()
    async with connect(url, token=TOKEN) as rt:
        assert (rt.hello.auth, rt.hello.principal, rt.ws.protocol) == (True, "alice", "realtime.v1")
        await rt.subscribe("count")
        (snapshot,) = await rt.barrier()
        assert isinstance(snapshot, SnapshotFrame) and snapshot.payload == {"n": 1}
    async with asyncio.timeout(5):
        for token in (None, "wrong"):
            with pytest.raises(UnauthorizedError):
                async with connect(url, token=token):
                    pass


class _Out(io.StringIO):
    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


async def test_tail_sends_the_token(serve):
    url, server = await serve()
    out, err = _Out(), _Out()
    async with asyncio.timeout(10):
        assert await tail(url, ["sessions.state"], out, err, token=TOKEN) == 0
    assert [json.loads(line)["type"] for line in out.lines()] == ["snapshot"]
    assert server.handshakes[0].authorization == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("token", "why"),
    [(None, "a token is required: set BACKEND_TOKEN"), ("wrong", "the token was not accepted")],
)
async def test_tail_says_what_a_401_means_and_fails(serve, token, why):
    url, _server = await serve()
    out, err = _Out(), _Out()
    async with asyncio.timeout(10):
        assert await tail(url, ["sessions.state"], out, err, token=token) == 1
    assert out.getvalue() == ""
    (line,) = err.lines()
    assert "HTTP 401" in line and why in line and "wrong" not in line


def test_tail_takes_the_token_from_backend_token_or_the_option(monkeypatch, capsys):
    monkeypatch.delenv("BACKEND_TOKEN", raising=False)
    assert parse_args(["t"]).token is None
    monkeypatch.setenv("BACKEND_TOKEN", "from-env")
    assert parse_args(["t"]).token == "from-env"
    assert parse_args(["t", "--token", "from-option"]).token == "from-option"
    monkeypatch.setenv("BACKEND_TOKEN", "")
    assert parse_args(["t"]).token is None
    monkeypatch.setenv("BACKEND_TOKEN", "Bearer s3cret")
    with pytest.raises(SystemExit) as exited:
        parse_args(["t"])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert "BACKEND_TOKEN" in stderr and "s3cret" not in stderr
