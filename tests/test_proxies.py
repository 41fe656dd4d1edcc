"""The service behind real reverse proxies, as deployed: Debian's nginx and HAProxy run
from `deploy/nginx.conf` and `deploy/haproxy.cfg` (tests/proxy_support.py) in front of
`python -m backend --forwarded-allow-ips 127.0.0.1`, TLS ending at the proxy.

The proxies connect to the backend from 127.0.0.1, the one trusted address; the
clients come from other loopback addresses (127.0.0.2 and up, bound with
`TCPConnector(local_addr=...)`), so each is a client of its own only if the backend
takes the address the proxy forwarded - never one a client wrote itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from aiohttp_realtime import RealtimeSettings
from tests.proxy_support import (
    REPO,
    Certificate,
    Node,
    Proxy,
    backend_node,
    deploy_file,
    haproxy,
    nginx,
    proxy_certificate,  # noqa: F401 - a fixture
    render,
    serving,
    session_from,
)
from tests.support import WsClient, free_port

#: Ten client addresses: 60 WebSockets each make 600, each address under the
#: per-address cap (256), all of them through one proxy address.
ADDRESSES = [f"127.0.0.{i}" for i in range(2, 12)]
#: The proxies of deploy/, by name.
PROXIES = {"nginx": nginx, "haproxy": haproxy}
#: Writes refill this slowly: within a test, a bucket is only ever spent.
SLOW_WRITES = ("--writes-per-s", "0.01", "--writes-burst", "2")


def behind_proxy(public_port: int, *extra: str) -> tuple[str, ...]:
    """The backend's flags behind a proxy on 127.0.0.1:`public_port`: the proxy
    (connecting from 127.0.0.1) trusted, and the public host it forwards allowed."""
    return ("--forwarded-allow-ips", "127.0.0.1", "--allow-host", f"127.0.0.1:{public_port}", *extra)


async def create_session(http: aiohttp.ClientSession, base: str, **headers: str) -> int:
    """POST /api/sessions (a write): the status."""
    async with http.post(f"{base}/api/sessions", json={"title": "through a proxy"}, headers=headers) as resp:
        await resp.read()
        return resp.status


async def opened(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> WsClient | int:
    """The client, once its WebSocket opened and said hello; else the refusal's status."""
    try:
        return await WsClient.connect(http, url, **kwargs)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def handshake_status(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    """101 when the WebSocket opens (and says hello), else the refusal's status."""
    client = await opened(http, url, **kwargs)
    if isinstance(client, int):
        return client
    await client.close()
    return 101


async def client_seen_as(node: Node, http: aiohttp.ClientSession, url: str, **headers: str) -> str:
    """The client address the backend logs for one GET of `url`."""
    marker = f"probe-{time.monotonic_ns()}"
    async with http.get(url, headers={"User-Agent": marker, **headers}) as resp:
        assert resp.status == 200, await resp.text()
    match = await node.line(rf"aiohttp\.access: (\S+) .*{marker}")
    return match.group(1)


async def logged(proxy: Proxy, text: str) -> None:
    """Until the proxy's logs hold `text` (a file: nothing to await but its content)."""
    async with asyncio.timeout(5):
        while text not in proxy.log():  # noqa: ASYNC110 - no event for a log file's growth
            await asyncio.sleep(0.02)


async def metric(node: Node, name: str) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{node.port}/metrics") as resp,
    ):
        text = await resp.text()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def test_600_websocket_clients_through_one_nginx_all_get_hello(
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    public = free_port()
    sessions = [session_from(a, proxy_certificate) for a in ADDRESSES]
    try:
        async with (
            backend_node(*behind_proxy(public)) as node,
            nginx([node.port], proxy_certificate, port=public) as proxy,
        ):
            clients = await asyncio.gather(
                *(WsClient.connect(http, proxy.ws_url()) for http in sessions for _ in range(60))
            )
            assert len(clients) == 600
            assert all(c.hello is not None and c.hello["type"] == "hello" for c in clients)
            assert await metric(node, "realtime_connections") == 600
            # The per-address cap still holds, per client: 60 from 127.0.0.2 so far, so of
            # 200 more from it 196 open and 4 are refused.
            more = await asyncio.gather(*(opened(sessions[0], proxy.ws_url()) for _ in range(200)))
            assert sum(isinstance(c, WsClient) for c in more) == 196
            assert [c for c in more if not isinstance(c, WsClient)] == [503] * 4
    finally:
        for http in sessions:
            await http.close()


@pytest.mark.parametrize("proxy_kind", PROXIES)
async def test_write_buckets_are_per_forwarded_client(
    proxy_certificate: Certificate,  # noqa: F811
    proxy_kind: str,
) -> None:
    public = free_port()
    async with (
        backend_node(*behind_proxy(public, *SLOW_WRITES)) as node,
        PROXIES[proxy_kind]([node.port], proxy_certificate, port=public) as proxy,
        session_from("127.0.0.2", proxy_certificate) as first,
        session_from("127.0.0.3", proxy_certificate) as second,
        session_from("127.0.0.2", proxy_certificate) as first_again,
    ):
        base = proxy.url("").rstrip("/")
        assert [await create_session(first, base) for _ in range(3)] == [201, 201, 429]
        assert await create_session(second, base) == 201  # a bucket of its own
        assert await create_session(first_again, base) == 429  # the address's, not the connection's
        assert await client_seen_as(node, second, proxy.url("/api/sessions")) == "127.0.0.3"


@pytest.mark.parametrize("proxy_kind", PROXIES)
async def test_a_clients_own_forwarded_headers_are_not_believed(
    proxy_certificate: Certificate,  # noqa: F811
    proxy_kind: str,
) -> None:
    """nginx appends the client's address to its X-Forwarded-For, HAProxy replaces it
    with the client's; both drop a client's `Forwarded`: the backend, reading from the
    right, gets the client, not its claim."""
    public = free_port()
    async with (
        backend_node(*behind_proxy(public, *SLOW_WRITES)) as node,
        PROXIES[proxy_kind]([node.port], proxy_certificate, port=public) as proxy,
        session_from("127.0.0.2", proxy_certificate) as first,
        session_from("127.0.0.3", proxy_certificate) as second,
    ):
        base = proxy.url("").rstrip("/")
        assert [await create_session(first, base) for _ in range(3)] == [201, 201, 429]
        # A fresh address claimed by the limited client: still its own, spent bucket.
        assert await create_session(first, base, **{"X-Forwarded-For": "6.6.6.6"}) == 429
        assert await create_session(first, base, Forwarded="for=6.6.6.6") == 429
        # The limited client's address claimed by another: that one's own bucket.
        assert await create_session(second, base, **{"X-Forwarded-For": "127.0.0.2"}) == 201
        assert await create_session(second, base, Forwarded="for=127.0.0.2") == 201
        url = proxy.url("/api/sessions")
        assert await client_seen_as(node, first, url, **{"X-Forwarded-For": "6.6.6.6"}) == "127.0.0.2"


async def test_forged_headers_sent_straight_to_the_backend_change_nothing() -> None:
    """The backend trusts only 10.9.9.9: from loopback, X-Forwarded-*/Forwarded are
    someone's claims, and the TCP peer is the client."""
    async with (
        backend_node("--forwarded-allow-ips", "10.9.9.9", *SLOW_WRITES) as node,
        session_from("127.0.0.2") as forger,
        session_from("127.0.0.3") as other,
    ):
        base = f"http://127.0.0.1:{node.port}"
        statuses = [
            await create_session(
                forger,
                base,
                **{
                    "X-Forwarded-For": f"203.0.113.{i}",
                    "Forwarded": f"for=198.51.100.{i};proto=https;host=evil.example",
                    "X-Forwarded-Host": "evil.example",
                    "X-Forwarded-Proto": "https",
                },
            )
            for i in range(3)
        ]
        # One bucket, the peer's (a believed header would give each write a fresh one;
        # a believed host would be refused: 403).
        assert statuses == [201, 201, 429]
        assert await create_session(other, base) == 201
        url = f"{base}/api/sessions"
        forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.9"}
        assert await client_seen_as(node, forger, url, **forged) == "127.0.0.2"


async def test_a_chain_of_proxies_gives_the_client_behind_the_first(
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    """Client (127.0.0.7) -> HAProxy (TLS) -> nginx (its internal plain listener) ->
    backend. Both proxies connect from 127.0.0.1, the one trusted address: the backend
    skips nginx's hop and takes the client HAProxy named - with its https scheme and
    public host, for the Origin check."""
    public = free_port()
    async with (
        backend_node(*behind_proxy(public, *SLOW_WRITES)) as node,
        nginx([node.port], proxy_certificate) as inner,
        haproxy([f"127.0.0.1:{inner.internal_port}"], proxy_certificate, port=public) as edge,
        session_from("127.0.0.7", proxy_certificate) as client,
        session_from("127.0.0.8", proxy_certificate) as other,
    ):
        url = edge.url("/api/sessions")
        forged = {"X-Forwarded-For": "6.6.6.6, 127.0.0.1"}
        assert await client_seen_as(node, client, url, **forged) == "127.0.0.7"
        # nginx had it from HAProxy (127.0.0.1), which named the client.
        await logged(inner, '127.0.0.1 "127.0.0.7" "GET /api/sessions HTTP/1.1" 200')
        base = edge.url("").rstrip("/")
        assert [await create_session(client, base) for _ in range(3)] == [201, 201, 429]
        assert await create_session(other, base, **forged) == 201
        # The scheme and host the client used, through both: the page's own origin.
        ws = await WsClient.connect(client, edge.ws_url(), origin=edge.origin)
        await ws.subscribe("sessions.state")
        snapshot = await ws.recv()
        assert snapshot["type"] == "snapshot" and len(snapshot["payload"]["sessions"]) == 3
        await ws.close()
        assert await handshake_status(client, edge.ws_url(), origin=f"http://{edge.host}") == 403


@pytest.mark.parametrize("origins", ["configured", "the page's own"])
async def test_wss_with_tls_ending_at_nginx(
    proxy_certificate: Certificate,  # noqa: F811
    origins: str,
) -> None:
    """A wss:// client trusting the test certificate gets hello and a snapshot. The
    backend sees the https scheme: `https://host:port` is allowed, `http://` refused,
    whether the origin is configured (--allow-origin) or the page's own (the forwarded
    scheme and host, with the host allowed)."""
    public = free_port()
    origin = f"https://127.0.0.1:{public}"
    extra = ("--allow-origin", origin) if origins == "configured" else ()
    async with (
        backend_node(*behind_proxy(public, *extra)) as node,
        nginx([node.port], proxy_certificate, port=public) as proxy,
        session_from("127.0.0.2", proxy_certificate) as http,
    ):
        assert proxy.origin == origin
        client = await WsClient.connect(http, proxy.ws_url(), origin=origin)
        await client.subscribe("sessions.state")
        snapshot = await client.recv()
        assert (snapshot["type"], snapshot["topic"]) == ("snapshot", "sessions.state")
        assert await create_session(http, proxy.url("").rstrip("/"), Origin=origin) == 201
        event = await client.recv()
        assert (event["type"], event["topic"]) == ("event", "sessions.state")
        await client.close()
        assert await handshake_status(http, proxy.ws_url(), origin=f"http://127.0.0.1:{public}") == 403
        assert (
            await create_session(http, proxy.url("").rstrip("/"), Origin=f"http://127.0.0.1:{public}") == 403
        )
        if origins == "the page's own":
            # Straight to the backend (http), the same Host and Origin are cross-scheme:
            # the https came from nginx's X-Forwarded-Proto.
            direct = f"ws://127.0.0.1:{node.port}/api/realtime"
            host = {"Host": f"127.0.0.1:{public}"}
            assert await handshake_status(http, direct, origin=origin, headers=host) == 403


async def idle(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> int:
    """Read nothing but the server's pings (answered) for `seconds`: how many came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pings = 0
    while (remaining := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            break
        if msg.type is not aiohttp.WSMsgType.PING:
            raise AssertionError(f"while idle: {msg.type!r} {msg.data!r} {msg.extra!r}")
        await ws.pong(msg.data)
        pings += 1
    return pings


async def next_text(ws: aiohttp.ClientWebSocketResponse) -> str:
    while (msg := await ws.receive(timeout=10)).type is aiohttp.WSMsgType.PING:
        await ws.pong(msg.data)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return str(msg.data)


@pytest.mark.timeout(150)
async def test_idle_longer_than_the_proxies_timeouts_stays_open(
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    """A subscriber that sends nothing for 65 s - past nginx's default 60 s
    proxy_read_timeout, which deploy/nginx.conf leaves as it is, and past HAProxy's 30 s
    `timeout client` - is still connected through both and gets the next event: the
    server's ping every 25 s is the traffic that keeps the proxies from timing out."""
    heartbeat_s = RealtimeSettings().heartbeat_s
    assert heartbeat_s < 60 / 2, "two pings within nginx's 60 s"
    nginx_public, haproxy_public = free_port(), free_port()
    async with (
        backend_node(
            "--forwarded-allow-ips",
            "127.0.0.1",
            "--allow-host",
            f"127.0.0.1:{nginx_public}",
            "--allow-host",
            f"127.0.0.1:{haproxy_public}",
        ) as node,
        nginx([node.port], proxy_certificate, port=nginx_public) as front,
        haproxy([node.port], proxy_certificate, port=haproxy_public) as edge,
        session_from("127.0.0.2", proxy_certificate) as http,
    ):
        assert not re.search(r"^\s*proxy_read_timeout\s", front.config, re.MULTILINE)
        sockets = []
        for proxy in (front, edge):
            client = await WsClient.connect(http, proxy.ws_url(), autoping=False)
            await client.subscribe("sessions.state")
            assert (await client.recv())["type"] == "snapshot"
            sockets.append(client.ws)
        pings = await asyncio.gather(*(idle(ws, 65) for ws in sockets))
        assert all(n >= 2 for n in pings), pings
        assert await create_session(http, f"http://127.0.0.1:{node.port}") == 201
        for ws in sockets:
            event = json.loads(await next_text(ws))
            assert (event["type"], event["topic"]) == ("event", "sessions.state")
            assert not ws.closed


def unit_service_section(text: str) -> dict[str, list[str]]:
    """The `[Service]` keys of a systemd unit (a key may repeat)."""
    section: str | None = None
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


async def test_the_systemd_units_command_serves_and_drains_within_its_stop_timeout(tmp_path: Any) -> None:
    """deploy/backend.service's ExecStart, Environment and WorkingDirectory, run as
    systemd would; its KillSignal drains the clients (1012) and the process exits
    well within TimeoutStopSec - which leaves room for the whole drain: the batches'
    spread, the closes' timeout and aiohttp's 5 s for requests in flight."""
    port = free_port()
    unit = render(deploy_file("backend.service"), {"APP_DIR": REPO, "PORT": port})
    service = unit_service_section(unit)
    stop_timeout = float(service["TimeoutStopSec"][0])
    settings = RealtimeSettings()
    assert stop_timeout >= settings.shutdown_spread_s + settings.close_timeout_s + 5 + 5  # margin
    kill_signal = signal.Signals[service["KillSignal"][0]]
    assert kill_signal is signal.SIGTERM
    [exec_start] = service["ExecStart"]
    command: Sequence[str] = shlex.split(exec_start)
    assert command[command.index("--forwarded-allow-ips") + 1] == "127.0.0.1"
    env = dict(v.split("=", 1) for v in service.get("Environment", []))
    async with (
        serving(command, port, cwd=service["WorkingDirectory"][0], env={**os.environ, **env}) as node,
        aiohttp.ClientSession() as http,
    ):
        clients = await asyncio.gather(
            *(WsClient.connect(http, f"ws://127.0.0.1:{port}/api/realtime") for _ in range(20))
        )
        started = time.monotonic()
        node.process.send_signal(kill_signal)
        closes = await asyncio.gather(*(c.ws.receive(timeout=stop_timeout) for c in clients))
        assert {(m.type, m.data) for m in closes} == {(aiohttp.WSMsgType.CLOSE, 1012)}
        assert await asyncio.wait_for(node.process.wait(), stop_timeout) == 0
        assert time.monotonic() - started < stop_timeout / 2
