"""Authentication and authorization hooks of the library, end to end over a socket."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import (
    BearerTokens,
    ErrorCode,
    Principal,
    TopicDef,
    TopicRegistry,
    request_token,
    setup_realtime,
)
from aiohttp_realtime.auth import token_request
from tests.support import WsClient

ALICE = Principal("alice", frozenset({"read", "secret"}))
BOB = Principal("bob", frozenset({"read"}))
TOKENS = {"alice-token-0123456789": ALICE, "bob-token-0123456789ab": BOB}


class Whoami(BaseModel):
    principal: str | None
    topic: str


class Nothing(BaseModel):
    op: str


OPEN = TopicDef("open", Whoami, Nothing)
SECRET = TopicDef("secret.{name}", Whoami, Nothing)


def _whoami(params: Mapping[str, str], principal: Principal | None) -> Whoami:
    return Whoami(principal=principal.id if principal else None, topic=params.get("name", "open"))


async def _authorize(
    principal: Principal | None, topic: TopicDef[Any, Any], params: Mapping[str, str]
) -> bool:
    if params.get("name") == "explode":
        raise RuntimeError("a broken rule refuses, never allows")
    return topic is OPEN or (principal is not None and "secret" in principal.scopes)


@pytest.fixture
async def auth_client(aiohttp_client: Any) -> Any:
    registry = TopicRegistry()
    registry.add(OPEN, _whoami)
    registry.add(SECRET, _whoami)
    app = web.Application()
    hub = setup_realtime(app, registry, authenticate=BearerTokens(TOKENS), authorize=_authorize)
    return await aiohttp_client(app), hub


async def _upgrade_status(client: Any, **kwargs: Any) -> int:
    try:
        ws = await client.ws_connect("/api/realtime", **kwargs)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"Authorization": "Bearer alice-token-0123456789"}},
        {"protocols": ("realtime.v1", "auth.alice-token-0123456789")},
        {"headers": {"Cookie": "realtime_token=alice-token-0123456789"}},
    ],
    ids=["bearer", "subprotocol", "cookie"],
)
async def test_a_token_is_accepted_wherever_a_client_can_put_it(auth_client, kwargs):
    client, _hub = auth_client
    ws = await WsClient.connect(client, **kwargs)
    assert ws.hello is not None and (ws.hello["auth"], ws.hello["principal"]) == (True, "alice")
    if "protocols" in kwargs:
        assert ws.ws.protocol == "realtime.v1"  # the token is never echoed


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/api/realtime", {}),
        ("/api/realtime", {"headers": {"Authorization": "Bearer wrong-token-0123456789"}}),
        ("/api/realtime", {"protocols": ("realtime.v1", "auth.")}),
        ("/api/realtime?token=alice-token-0123456789", {}),  # never from the URL
        ("/api/realtime?access_token=alice-token-0123456789", {}),
    ],
)
async def test_no_valid_token_is_a_401_before_any_frame(auth_client, path, kwargs):
    client, hub = auth_client
    try:
        await client.ws_connect(path, **kwargs)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 401
        assert exc.headers is not None and exc.headers["WWW-Authenticate"] == "Bearer"
    else:
        pytest.fail("upgraded without a valid token")
    assert not hub.connections


async def test_providers_get_the_principal_and_authorize_guards_each_topic(auth_client):
    client, _hub = auth_client
    bob = await WsClient.connect(client, headers={"Authorization": "Bearer bob-token-0123456789ab"})
    await bob.send({"type": "subscribe", "topics": ["open", "secret.x", "secret.explode"], "id": "s"})
    frames = await bob.barrier()
    assert frames[0]["type"] == "snapshot" and frames[0]["payload"] == {"principal": "bob", "topic": "open"}
    assert [(f["type"], f["code"], f["topic"], f["id"]) for f in frames[1:]] == [
        ("error", ErrorCode.FORBIDDEN, "secret.x", "s"),
        ("error", ErrorCode.FORBIDDEN, "secret.explode", "s"),
    ]
    alice = await WsClient.connect(client, headers={"Authorization": "Bearer alice-token-0123456789"})
    await alice.subscribe("secret.x")
    [snap] = await alice.barrier()
    assert snap["payload"] == {"principal": "alice", "topic": "x"}


async def test_without_hooks_auth_is_off_and_said_so(lib_client):
    client, _hub, _state, _ = await lib_client()
    ws = await WsClient.connect(client, protocols=("realtime.v1",))
    assert ws.hello is not None and ws.hello["auth"] is False and "principal" not in ws.hello
    assert ws.ws.protocol == "realtime.v1"


async def test_a_failing_authenticate_hook_refuses_with_json_500(aiohttp_client):
    async def broken(_request: web.Request) -> Principal | None:
        raise RuntimeError("token store down")

    app = web.Application()
    registry = TopicRegistry()
    registry.add(OPEN, _whoami)
    setup_realtime(app, registry, authenticate=broken)
    client = await aiohttp_client(app)
    assert await _upgrade_status(client) == 500


async def test_connections_per_process_are_limited(lib_client):
    client, _hub, _state, _ = await lib_client(max_connections=2)
    held = [await WsClient.connect(client) for _ in range(2)]
    assert await _upgrade_status(client) == 503
    await held[0].close()
    assert (await WsClient.connect(client)).hello is not None


def test_request_token_prefers_the_header_and_ignores_the_url():
    from aiohttp.test_utils import make_mocked_request

    def token(path: str, headers: dict[str, str]) -> str | None:
        return request_token(make_mocked_request("GET", path, headers=headers))

    assert token("/?token=a", {}) is None
    assert token("/", {"Authorization": "Bearer  abc "}) == "abc"
    assert token("/", {"Authorization": "Basic abc"}) is None
    assert token("/", {"Sec-WebSocket-Protocol": "realtime.v1, auth.xyz"}) == "xyz"
    assert token("/", {"Cookie": "realtime_token=c1"}) == "c1"


# ---------------------------------------------------------------- expiring credentials


def test_a_principals_expiry_is_not_part_of_who_it_is():
    soon = datetime.now(UTC) + timedelta(seconds=5)
    expiring = Principal("alice", frozenset({"read"}), soon)
    assert expiring == Principal("alice", frozenset({"read"}))  # a refreshed credential: the same principal
    assert hash(expiring) == hash(Principal("alice", frozenset({"read"}), soon + timedelta(hours=1)))
    assert expiring != Principal("alice", frozenset({"read", "write"}), soon)
    left = expiring.expires_in(soon - timedelta(seconds=2))
    assert left == 2.0 and Principal("bob").expires_in(soon) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        Principal("alice", expires_at=datetime.now())  # naive: local or UTC? refused


async def test_an_expired_principal_is_a_401_and_an_expiring_one_is_told_when(aiohttp_client):
    now = datetime.now(UTC)
    principals = {
        "expired-token-0123456789": Principal("old", expires_at=now - timedelta(seconds=1)),
        "fresh-token-01234567890": Principal("new", expires_at=now + timedelta(seconds=60)),
    }
    app = web.Application()
    registry = TopicRegistry()
    registry.add(OPEN, _whoami)
    hub = setup_realtime(app, registry, authenticate=BearerTokens(principals))
    client = await aiohttp_client(app)
    headers = {"Authorization": "Bearer expired-token-0123456789"}
    assert await _upgrade_status(client, headers=headers) == 401
    assert not hub.connections
    ws = await WsClient.connect(client, headers={"Authorization": "Bearer fresh-token-01234567890"})
    assert (
        ws.hello is not None and ws.hello["principal"] == "new" and 59 < ws.hello["auth_expires_in_s"] <= 60
    )


def test_token_request_keeps_the_request_but_its_credentials():
    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request(
        "GET",
        "/api/realtime",
        headers={
            "Authorization": "Bearer old-token",
            "Cookie": "realtime_token=old-token; theme=dark",
            "Sec-WebSocket-Protocol": "realtime.v1, auth.old-token",
            "X-Trace": "t1",
        },
    )
    proxied = request.clone(
        scheme="https", host="app.example.com", remote="203.0.113.9"
    )  # a proxy's middleware
    fresh = token_request(proxied, "new-token")
    assert request_token(fresh) == "new-token"
    assert fresh.headers.getall("Authorization") == ["Bearer new-token"]
    assert "Cookie" not in fresh.headers and fresh.headers["Sec-WebSocket-Protocol"] == "realtime.v1"
    assert fresh.headers["X-Trace"] == "t1"
    assert (fresh.scheme, fresh.host, fresh.remote) == ("https", "app.example.com", "203.0.113.9")
    assert request_token(proxied) == "old-token"  # the original is untouched
