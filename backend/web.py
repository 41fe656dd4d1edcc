"""The demo page (`GET /`, `backend/static/`) and the HTTP hardening every response gets.

Two layers, because aiohttp answers some requests outside the application:

- `setup_web` registers the security headers (`on_response_prepare`) and a middleware that
  answers an uncaught exception with a fixed 500. That covers every response the
  application makes, under any runner (tests, `python -m backend`, gunicorn).
- A request the HTTP parser rejects never reaches the application: aiohttp answers it from
  `RequestHandler.handle_error`, with no middleware and no signal (aio-libs/aiohttp#6463,
  #3287), and the body quotes the rejected bytes ("Invalid method encountered: b'...'").
  `run_app` serves the demo through `OpaqueErrorsRunner`, whose connections answer those
  with a fixed JSON 400 carrying the same headers. aiohttp has no parameter for the
  handler class, hence the three small subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from aiohttp import web
from aiohttp.log import access_logger, server_logger

from .proxies import AccessLog

STATIC = Path(__file__).parent / "static"

#: No 'unsafe-inline' anywhere: the page's script and styles are files under /static/.
#: `connect-src 'self'` admits the page's own ws:/wss: origin (CSP Level 3; Chromium,
#: Firefox, and WebKit since 2022) without trusting the request's Host header.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = MappingProxyType(
    {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Server": "aiohttp-realtime-demo",  # aiohttp's default names its and Python's versions
    }
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def react_index(_request: web.Request) -> web.FileResponse:
    """The same dashboard written with React (examples/react-dashboard/, built into static/react/)."""
    return web.FileResponse(STATIC / "react" / "index.html", headers={"Cache-Control": "no-cache"})


def setup_web(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/react/", react_index)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(_add_security_headers)
    app.middlewares.insert(0, _opaque_crashes)  # outermost: it also covers the other middlewares


async def _add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Every response the application prepares, errors and the WebSocket 101 included."""
    response.headers.update(SECURITY_HEADERS)


def error_response(status: int, request_id: str | None = None) -> web.Response:
    """A fixed JSON body per status: nothing from the request, no traceback. A
    `request_id` (for a crash) names the log line that has the details."""
    if status == HTTPStatus.BAD_REQUEST:
        error, message = "bad_request", "malformed HTTP request"
    else:
        phrase = HTTPStatus(status).phrase
        error, message = phrase.lower().replace(" ", "_"), phrase.lower()
    body = {"error": error, "message": message}
    if request_id is not None:
        body["request_id"] = request_id
    response = web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=SECURITY_HEADERS,
    )
    response.force_close()
    return response


@web.middleware
async def _opaque_crashes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer an exception a handler lets escape with a fixed 500, and log it here.

    aiohttp's own 500 carries the traceback when the event loop runs in debug mode
    (PYTHONASYNCIODEBUG, `python -X dev`, aiohttp-devtools).
    """
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        if request.writer.output_size > 0:
            raise  # a response has begun (a WebSocket): aiohttp closes the connection
        request_id = secrets.token_hex(8)
        server_logger.exception(
            "request %s: error handling %s %r", request_id, request.method, request.raw_path
        )
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, request_id)


class OpaqueErrorsHandler(web.RequestHandler):
    """aiohttp's connection protocol, with fixed bodies for the errors it answers itself.

    `handle_error` answers a request the parser rejected (400), a handler's exception that
    no middleware caught (500) and a handler timeout (504). aiohttp's version still logs
    and still refuses when a response has begun; only its body is replaced.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)
        return error_response(status)


class OpaqueErrorsServer(web.Server):
    """`web.Server` whose connections are `OpaqueErrorsHandler`s."""

    def __call__(self) -> web.RequestHandler:
        return OpaqueErrorsHandler(self, loop=self._loop, **self._kwargs)


class OpaqueErrorsRunner(web.AppRunner):
    """`web.AppRunner` serving through `OpaqueErrorsServer`, with the server aiohttp built."""

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()
        return OpaqueErrorsServer(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **built._kwargs,
        )


#: After a response to a request whose body was not read (or was cut off), how long
#: aiohttp goes on reading and discarding it before closing (its default is 10 s).
LINGER_S = 0.5


def server_options(keepalive_timeout: float) -> dict[str, Any]:
    """The demo's options for aiohttp's request handler (one place: `run_app` and the
    tests that serve the app the same way use them)."""
    return {
        # Also the bound on a request's headers: aiohttp closes a connection whose
        # request has not fully arrived when it runs out (slowloris).
        "keepalive_timeout": keepalive_timeout,
        "lingering_time": LINGER_S,
        # A handler whose client left runs on (aiohttp's default), so that it ends
        # through its own error path (one debug line), not a cancellation.
        "handler_cancellation": False,
    }


def run_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    on_ready: Callable[[str], None],
    keepalive_timeout: float = 75.0,
    sock: socket.socket | None = None,
    access_log: bool = True,
) -> None:
    """`web.run_app` for one TCP site, served through `OpaqueErrorsRunner` (run_app takes
    no runner). `on_ready` gets the site's URL, its bound port included. With `sock`
    (a listening socket inherited from `python -m backend --workers`) it serves that
    socket instead of binding `host:port`. `access_log=False`: no line per request
    (aiohttp's `aiohttp.access` logger).

    SIGINT and SIGTERM shut the app down and return, as they do `web.run_app`'s.
    """
    with contextlib.suppress(KeyboardInterrupt):  # a SIGINT before the handlers are set
        asyncio.run(_serve(app, host, port, shutdown_timeout, on_ready, keepalive_timeout, sock, access_log))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout: float,
    on_ready: Callable[[str], None],
    keepalive_timeout: float,
    sock: socket.socket | None = None,
    access_log: bool = True,
) -> None:
    """Serve until SIGINT or SIGTERM, then clean up while every task still runs.

    The signals set an event instead of raising out of the loop (as aiohttp's
    `handle_signals` does): `asyncio.run` would then cancel every task, WebSocket
    handlers included, before `runner.cleanup()` could close their sockets with 1012.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner = OpaqueErrorsRunner(
        app,
        shutdown_timeout=shutdown_timeout,
        access_log=access_logger if access_log else None,
        access_log_class=AccessLog,  # the client a trusted proxy named (backend/proxies.py)
        **server_options(keepalive_timeout),
    )
    await runner.setup()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site: web.BaseSite = web.TCPSite(runner, host, port) if sock is None else web.SockSite(runner, sock)
        await site.start()
        on_ready(site.name)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
