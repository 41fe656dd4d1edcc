"""backend/web.py's hardening: security headers on every response, a page the CSP can
hold without 'unsafe-inline', and bodies that echo nothing back: neither the bytes of a
request the HTTP parser rejected nor a traceback in debug mode."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import signal
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from backend.app import Config, build_app
from backend.web import OpaqueErrorsHandler, OpaqueErrorsRunner
from tests.support import free_port, run_until_serving

ROOT = Path(__file__).resolve().parent.parent

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": "aiohttp-realtime-demo",
}
MALFORMED_BODY = {"error": "bad_request", "message": "malformed HTTP request"}
MARKER = b"zq7marker"  # in every malformed request; no response may contain it

#: Requests aiohttp's HTTP parser rejects; aiohttp's own 400 quotes each one's bad line.
MALFORMED = {
    "bad method": b"G\x01T /" + MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad header name": b"GET / HTTP/1.1\r\nHost: a\r\nBad\x01" + MARKER + b": x\r\n\r\n",
    "bad header value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: \x7f" + MARKER + b"\r\n\r\n",
    "bad url": b"GET /\x00" + MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad version": b"GET / HTTP/1." + MARKER + b"\r\nHost: a\r\n\r\n",
}


def assert_security_headers(headers):
    for name, value in SECURITY_HEADERS.items():
        assert headers.getall(name, []) == [value], name


# --- every response the application makes ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/", {}, 200),
        ("HEAD", "/", {}, 200),
        ("GET", "/static/app.js", {}, 200),
        ("GET", "/static/style.css", {}, 200),
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/static/no-such-file.js", {}, 404),
        ("GET", "/api/sessions/no-such-id", {}, 404),
        ("DELETE", "/", {}, 405),
        ("PUT", "/api/sessions", {}, 405),
        (
            "POST",
            "/api/sessions",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("POST", "/api/sessions", {"json": {"title": ""}}, 422),
    ],
)
async def test_every_response_has_the_security_headers(demo_client, method, path, kwargs, status):
    client = await demo_client()
    resp = await client.request(method, path, **kwargs)
    assert resp.status == status, await resp.text()
    assert_security_headers(resp.headers)


async def test_csp_allows_nothing_inline_or_evaluated(demo_client):
    client = await demo_client()
    csp = (await client.get("/")).headers["Content-Security-Policy"]
    assert "unsafe" not in csp  # 'unsafe-inline', 'unsafe-eval', 'unsafe-hashes'
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    ("path", "types"),
    [("/static/app.js", {"text/javascript", "application/javascript"}), ("/static/style.css", {"text/css"})],
)
async def test_assets_have_the_types_nosniff_requires(demo_client, path, types):
    """With nosniff a browser refuses a script or stylesheet served under another type."""
    client = await demo_client()
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type in types


class InlineCode(HTMLParser):
    """Everything in a page that a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        self._in_script = tag == "script" and "src" in names
        self.found += [f"{tag} {name}=" for name, _ in attrs if name == "style" or name.startswith("on")]
        urls = [name for name, value in attrs if (value or "").startswith("javascript:")]
        self.found += [f"{tag} {name}=javascript:" for name in urls]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("code inside <script src>")


def test_inline_code_finder_finds_each_kind():
    page = InlineCode()
    page.feed(
        '<style>b{}</style><script>x()</script><script src="a.js">y()</script>'
        '<p style="color:red" onclick="z()"><a href="javascript:w()">'
    )
    assert page.found == [
        "<style>",
        "<script> without src",
        "code inside <script src>",
        "p style=",
        "p onclick=",
        "a href=javascript:",
    ]


async def test_the_page_has_no_inline_script_or_style(demo_client):
    client = await demo_client()
    resp = await client.get("/")
    page = InlineCode()
    page.feed(await resp.text())
    assert page.found == []
    assert '<script type="module" src="/static/app.js"></script>' in await resp.text()


# --- tracebacks never reach a client --------------------------------------------------


@pytest.fixture
async def debug_loop() -> AsyncIterator[None]:
    """aiohttp puts the traceback in its 500 when the loop is in debug mode."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    yield
    loop.set_debug(False)


async def _boom(_request: web.Request) -> web.Response:
    raise RuntimeError("secret-detail-7f3a")


@pytest.mark.parametrize("accept", ["text/html", "*/*"])
async def test_debug_mode_traceback_does_not_reach_the_client(aiohttp_client, debug_loop, accept, caplog):
    # Control: a bare app in this loop shows the traceback, so the check below can fail.
    bare = web.Application()
    bare.router.add_get("/boom", _boom)
    bare_client = await aiohttp_client(bare)
    assert "Traceback" in await (await bare_client.get("/boom", headers={"Accept": accept})).text()

    app = build_app(Config(simulate=False))
    app.router.add_get("/boom", _boom)
    client = await aiohttp_client(app)
    resp = await client.get("/boom", headers={"Accept": accept})
    assert resp.status == 500
    body = await resp.json()
    request_id = body.pop("request_id")
    assert body == {"error": "internal_server_error", "message": "internal server error"}
    assert_security_headers(resp.headers)
    # The id names the one log line with the details, for the operator.
    [logged] = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged.exc_info is not None and "secret-detail-7f3a" in str(logged.exc_info[1])


async def test_opaque_runner_hides_the_traceback_of_an_app_without_the_middleware(debug_loop):
    """The runner's second line: an exception no middleware caught (a bare app here)."""
    bare = web.Application()
    bare.router.add_get("/boom", _boom)
    runner = OpaqueErrorsRunner(bare)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        request = b"GET /boom HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\n\r\n"
        status, headers, body = parse(await raw_response(site.port, request))
    finally:
        await runner.cleanup()
    assert status == 500
    assert json.loads(body) == {"error": "internal_server_error", "message": "internal server error"}
    assert_security_headers(headers)


# --- the 400s aiohttp's HTTP parser answers -------------------------------------------


@pytest.fixture
async def opaque_port() -> AsyncIterator[int]:
    """The demo app served as `python -m backend` serves it: through OpaqueErrorsRunner."""
    runner = OpaqueErrorsRunner(build_app(Config(simulate=False)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site.port
    await runner.cleanup()


async def raw_response(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Send `request` on a new connection and read the answer until the server closes
    (it always does after a parser error)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def parse(data: bytes) -> tuple[int, CIMultiDict[str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return int(status_line.split(" ", 2)[1]), CIMultiDict(line.split(": ", 1) for line in lines), body


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_request_gets_a_fixed_400_with_the_headers(opaque_port, request_bytes):
    data = await raw_response(opaque_port, request_bytes)
    assert MARKER not in data, data
    status, headers, body = parse(data)
    assert status == 400
    assert json.loads(body) == MALFORMED_BODY
    assert headers["Content-Type"].startswith("application/json")
    assert_security_headers(headers)


async def test_over_long_request_line_gets_the_fixed_400(opaque_port):
    request = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
    status, headers, body = parse(await raw_response(opaque_port, request))
    assert status == 400
    assert json.loads(body) == MALFORMED_BODY
    assert_security_headers(headers)


async def test_well_formed_requests_are_unchanged_by_the_runner(opaque_port):
    host = f"127.0.0.1:{opaque_port}".encode()  # an allowed Host (others get 403: DNS rebinding)
    request = b"GET /static/style.css HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    status, headers, body = parse(await raw_response(opaque_port, request))
    assert status == 200
    assert body == (ROOT / "backend/static/style.css").read_bytes()
    assert_security_headers(headers)


async def test_stock_aiohttp_echoes_the_malformed_request(aiohttp_server):
    """Why OpaqueErrorsRunner exists: aiohttp's own runner quotes the rejected line and
    runs no on_response_prepare for it (aio-libs/aiohttp#6463). If this starts failing,
    aiohttp changed that answer: re-check whether the subclasses are still needed."""
    server = await aiohttp_server(build_app(Config(simulate=False)))
    data = await raw_response(server.port, MALFORMED["bad method"], host=server.host)
    status, headers, _ = parse(data)
    assert status == 400
    assert MARKER in data
    assert headers["Server"].startswith("Python/")


def test_handle_error_override_matches_aiohttps_signature():
    """The protocol calls handle_error(request, status, exc, message); an aiohttp upgrade
    that changes the call must fail here, not serve aiohttp's echoing 400 again."""

    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(OpaqueErrorsHandler.handle_error) == shape(web.RequestHandler.handle_error)


SERVE = """
import sys
from backend.app import Config, build_app
from backend.web import run_app
run_app(build_app(Config(simulate=False)), host="127.0.0.1", port=int(sys.argv[1]),
        shutdown_timeout=5, on_ready=lambda url: print("serving on", url, flush=True))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_app_serves_through_the_opaque_runner_and_shuts_down_on_a_signal(sig):
    port = free_port()
    cmd = [sys.executable, "-c", SERVE, str(port)]
    async with run_until_serving(cmd, cwd=ROOT) as proc, aiohttp.ClientSession() as session:
        data = await raw_response(port, MALFORMED["bad header name"])
        assert MARKER not in data, data
        status, headers, body = parse(data)
        assert status == 400
        assert json.loads(body) == MALFORMED_BODY
        assert_security_headers(headers)

        # The app's own shutdown still runs with every task alive: clients get 1012.
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
        assert (await ws.receive_json())["type"] == "hello"
        proc.send_signal(sig)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1012)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
