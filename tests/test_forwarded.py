"""`--forwarded-allow-ips` (backend/proxies.py): forwarded headers are believed from
trusted proxies only, the right hop of a chain is the client, and every per-address
limit, the Origin/Host checks and the access log use it. (Real nginx and HAProxy in
front of a real process: tests/test_proxies.py.)"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiohttp_realtime import RealtimeSettings
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.proxies import AccessLog, ForwardedError, TrustedProxies, parse_allow_ips
from tests.support import WsClient


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"remote": request.remote, "scheme": request.scheme, "host": request.host})


async def echo_client(aiohttp_client: Any, trusted: str, header: Any = "x-forwarded") -> Any:
    proxies = TrustedProxies(parse_allow_ips(trusted.split(",")), header)
    app = web.Application(middlewares=[proxies.middleware])
    app.router.add_get("/whoami", whoami)
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLog)  # as backend/web.py serves
    return await aiohttp_client(server)


async def seen(client: Any, **headers: str) -> dict[str, Any]:
    response = await client.get("/whoami", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_a_trusted_proxy_names_the_client_its_scheme_and_host(aiohttp_client):
    client = await echo_client(aiohttp_client, "127.0.0.1")  # the test client's peer address
    got = await seen(
        client,
        **{
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
        },
    )
    assert got == {"remote": "203.0.113.7", "scheme": "https", "host": "app.example.com"}
    assert (await seen(client))["remote"] == "127.0.0.1"  # no header: the peer


async def test_a_client_cannot_get_past_the_proxies_by_writing_its_own_entries(aiohttp_client):
    # nginx appends the address it got the request from to what the client sent.
    client = await echo_client(aiohttp_client, "127.0.0.1,10.0.0.0/8")
    assert (await seen(client, **{"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}))["remote"] == "203.0.113.7"
    # A chain: the client, then a trusted inner proxy (10.1.2.3), then the peer.
    got = await seen(client, **{"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.2.3"})
    assert got["remote"] == "203.0.113.7"


async def test_an_untrusted_peers_headers_are_ignored(aiohttp_client):
    client = await echo_client(aiohttp_client, "10.9.9.9")
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    got = await seen(client, **forged)
    assert got["remote"] == "127.0.0.1" and got["scheme"] == "http" and got["host"] != "evil.example"
    forwarded = await echo_client(aiohttp_client, "10.9.9.9", "forwarded")
    assert (await seen(forwarded, Forwarded="for=6.6.6.6;proto=https"))["remote"] == "127.0.0.1"


async def test_the_rfc_7239_forwarded_header_is_walked_the_same_way(aiohttp_client):
    client = await echo_client(aiohttp_client, "127.0.0.0/8,10.0.0.0/8", "forwarded")
    header = 'for=6.6.6.6, for="203.0.113.7:4711";proto=https;host=app.example.com, for=10.1.2.3'
    assert await seen(client, Forwarded=header) == {
        "remote": "203.0.113.7",
        "scheme": "https",
        "host": "app.example.com",
    }
    assert (await seen(client, Forwarded='for="[2001:db8::7]:443"'))["remote"] == "2001:db8::7"
    # An obfuscated client is keyed by what the proxy wrote.
    assert (await seen(client, Forwarded="for=_hidden, for=10.1.2.3"))["remote"] == "_hidden"


async def test_only_the_configured_header_is_read(aiohttp_client):
    """A proxy writing X-Forwarded-For passes a client's own Forwarded through (and the
    other way round): the header the proxy does not write is the client's, ignored."""
    x_forwarded = await echo_client(aiohttp_client, "127.0.0.1")
    both = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=6.6.6.6"}
    assert (await seen(x_forwarded, **both))["remote"] == "203.0.113.7"
    assert (await seen(x_forwarded, Forwarded="for=6.6.6.6"))["remote"] == "127.0.0.1"
    forwarded = await echo_client(aiohttp_client, "127.0.0.1", "forwarded")
    assert (await seen(forwarded, **both))["remote"] == "6.6.6.6"
    assert (await seen(forwarded, **{"X-Forwarded-For": "6.6.6.6"}))["remote"] == "127.0.0.1"


async def test_a_malformed_header_from_a_trusted_proxy_is_a_json_400(aiohttp_client):
    client = await echo_client(aiohttp_client, "127.0.0.1")
    response = await client.get("/whoami", headers={"X-Forwarded-For": "not-an-address"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_forwarded_header"


def test_the_trusted_list_is_checked_when_it_is_read():
    assert parse_allow_ips(["*"]) == parse_allow_ips(["0.0.0.0/0", "::/0"])
    assert [str(n) for n in parse_allow_ips(["10.0.0.1", " 192.168.0.0/16", ""])] == [
        "10.0.0.1/32",
        "192.168.0.0/16",
    ]
    with pytest.raises(ForwardedError, match=r"'proxy\.local' is not an IP address"):
        parse_allow_ips(["proxy.local"])


async def test_the_access_log_names_the_forwarded_client(aiohttp_client, caplog):
    client = await echo_client(aiohttp_client, "127.0.0.1")
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await seen(client, **{"X-Forwarded-For": "203.0.113.9"})
        await seen(client)
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert lines[0].startswith("203.0.113.9 ") and lines[1].startswith("127.0.0.1 "), lines


async def handshake(client: Any, **headers: str) -> int:
    """The status of a WebSocket handshake (101 if it opened; then closed at once)."""
    try:
        ws = await client.ws_connect("/api/realtime", headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


def demo(trusted: str, **realtime: Any) -> web.Application:
    return build_app(
        Config(
            simulate=False,
            forwarded_allow_ips=parse_allow_ips(trusted.split(",")),
            http=HttpLimits(writes_per_s=0.001, writes_burst=1),
            realtime=RealtimeSettings(**realtime),
        )
    )


async def test_write_limits_are_per_forwarded_client(aiohttp_client):
    client = await aiohttp_client(demo("127.0.0.1"))

    async def create(address: str) -> int:
        response = await client.post(
            "/api/sessions", json={"title": "t"}, headers={"X-Forwarded-For": address}
        )
        return int(response.status)

    assert [await create("203.0.113.1"), await create("203.0.113.1")] == [201, 429]
    assert await create("203.0.113.2") == 201  # another client: its own bucket


async def test_connection_slots_are_per_forwarded_client_and_a_forged_header_from_elsewhere_changes_nothing(
    aiohttp_client,
):
    client = await aiohttp_client(demo("127.0.0.1", max_connections_per_address=1))
    first = await WsClient.connect(client, headers={"X-Forwarded-For": "203.0.113.1"})
    second = await WsClient.connect(client, headers={"X-Forwarded-For": "203.0.113.2"})
    assert await handshake(client, **{"X-Forwarded-For": "203.0.113.1"}) == 503
    await first.close()
    await second.close()

    untrusted = await aiohttp_client(demo("10.9.9.9", max_connections_per_address=1))
    one = await WsClient.connect(untrusted, headers={"X-Forwarded-For": "203.0.113.1"})
    # Forging another address from an untrusted peer does not buy another slot.
    assert await handshake(untrusted, **{"X-Forwarded-For": "203.0.113.2"}) == 503
    await one.close()


async def test_the_origin_check_uses_the_public_scheme_and_host_the_proxy_forwarded(aiohttp_client):
    client = await aiohttp_client(demo("127.0.0.1", allowed_hosts=frozenset({"app.example.com"})))
    public = {
        "X-Forwarded-For": "203.0.113.1",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
    }
    ws = await WsClient.connect(client, headers={**public, "Origin": "https://app.example.com"})
    await ws.close()
    for origin in ("http://app.example.com", "https://evil.example"):
        assert await handshake(client, **public, Origin=origin) == 403, origin
    # The same headers from an untrusted peer: the Host check sees the real Host.
    untrusted = await aiohttp_client(demo("10.9.9.9", allowed_hosts=frozenset({"app.example.com"})))
    assert await handshake(untrusted, **public, Origin="https://app.example.com") in (400, 403)
