"""The demo's HTTP front door: what every request passes before a handler runs.

In order, for every request:
1. `Host` must be an allowed name (the realtime settings' list, or the loopback
   names on the port the request arrived on): against DNS rebinding, where a
   hostile page's own name is pointed at this server. Never derived from `Host`.
2. Under ``/api/`` (the realtime endpoint checks for itself): a bearer token when
   authentication is on (401), kept as ``request[PRINCIPAL_KEY]``.
3. Writes (POST, PUT, PATCH, DELETE) under ``/api/``: an ``Origin``, when sent, must be
   allowed (403) - browsers send it on every cross-site request; a body must be
   ``application/json`` (415) - browsers send text/plain, form and multipart
   bodies cross-site without a preflight, JSON never; the principal must hold the
   ``write`` scope (403); and the client address must be within its write rate (429).

Bodies are read by `read_json`: size-bounded by aiohttp (`client_max_size`, 413),
time-bounded here (a total deadline that grows with the declared length at a
minimum rate: a trickled upload gets 408), depth-bounded before parsing (400).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from aiohttp import hdrs, web

from aiohttp_realtime import (
    HUB_KEY,
    PRINCIPAL_KEY,
    Authenticate,
    Principal,
    allowed_host,
    allowed_origin,
    depth_exceeds,
)
from aiohttp_realtime.core import TokenBucket

from .access import may_write
from .health import HEALTH_PATHS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITES = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH, hdrs.METH_DELETE})
REALTIME_PATH = "/api/realtime"


@dataclass(frozen=True)
class HttpLimits:
    #: Writes per second per client address (token bucket), and the burst allowed.
    writes_per_s: float = 20.0
    writes_burst: int = 40
    #: Client addresses whose write rate is tracked at once (least recent dropped).
    tracked_addresses: int = 10_000
    #: A body must arrive within `body_grace_s` + its length at `body_min_rate` bytes
    #: per second, and never take longer than `body_timeout_s`.
    body_grace_s: float = 2.0
    body_min_rate: int = 16 * 1024
    body_timeout_s: float = 30.0
    #: Deepest nesting of a JSON body.
    max_json_depth: int = 32


class Guard:
    def __init__(self, authenticate: Authenticate | None, limits: HttpLimits) -> None:
        self.authenticate = authenticate
        self.limits = limits
        self._writers: OrderedDict[str, TokenBucket] = OrderedDict()

    def write_allowed(self, address: str) -> bool:
        now = asyncio.get_running_loop().time()
        bucket = self._writers.get(address)
        if bucket is None:
            bucket = self._writers[address] = TokenBucket(
                self.limits.writes_per_s, self.limits.writes_burst, now
            )
            if len(self._writers) > self.limits.tracked_addresses:
                self._writers.popitem(last=False)
        else:
            self._writers.move_to_end(address)
        return bucket.take(1, now)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = request.app[HUB_KEY].settings
        if request.path in HEALTH_PATHS:
            return await handler(request)  # probed by address, by balancers: any Host
        if not allowed_host(request, settings):
            return json_error(403, "host_not_allowed", "this Host is not served here")
        path = request.path
        if not path.startswith("/api/") or path == REALTIME_PATH:
            return await handler(request)
        if request.match_info.http_exception is not None:
            return await handler(request)  # no such route or method: its 404 / 405
        principal: Principal | None = None
        if self.authenticate is not None:
            principal = await self.authenticate(request)
            if principal is None:
                return json_error(401, "unauthorized", "a valid bearer token is required", auth=True)
        request[PRINCIPAL_KEY] = principal
        if request.method in WRITES:
            if not allowed_origin(request, settings):
                return json_error(403, "origin_not_allowed", "this Origin may not change anything here")
            if request.method != hdrs.METH_DELETE and _content_type(request) != "application/json":
                return json_error(415, "unsupported_media_type", "send the body as application/json")
            if not may_write(principal):
                return json_error(403, "forbidden", "this token may not change anything")
            if not self.write_allowed(request.remote or ""):
                return json_error(429, "rate_limited", "too many writes; slow down", retry_after=1)
        return await handler(request)


GUARD_KEY = web.AppKey("http_guard", Guard)


def _content_type(request: web.Request) -> str | None:
    """The body's media type; None for a header the parser cannot read (aiohttp's
    `content_type` raises IndexError on some, e.g. `;a*`)."""
    try:
        return request.content_type
    except (IndexError, ValueError):
        return None


def json_error(
    status: int, error: str, message: str, *, auth: bool = False, retry_after: int = 0
) -> web.Response:
    headers = {}
    if auth:
        headers["WWW-Authenticate"] = "Bearer"
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


def _refused(kind: type[web.HTTPException], error: str, message: str) -> web.HTTPException:
    """A refused body, raised out of the handler as a JSON error."""
    return kind(text=json.dumps({"error": error, "message": message}), content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request's body as parsed JSON, within the limits above."""
    limits: HttpLimits = request.app[GUARD_KEY].limits
    length = request.content_length
    budget = limits.body_timeout_s
    if length is not None:
        budget = min(budget, limits.body_grace_s + length / limits.body_min_rate)
    try:
        async with asyncio.timeout(budget):
            raw = await request.read()
    except TimeoutError:
        log.debug("%s %s: body not received within %.1f s", request.method, request.path, budget)
        if request.protocol is not None:
            request.protocol.close()  # after the 408 (and a short lingering read: LINGER_S)
        raise _refused(web.HTTPRequestTimeout, "request_timeout", "the body did not arrive in time") from None
    except web.RequestPayloadError:
        log.debug("%s %s: the body could not be decoded", request.method, request.path)
        # The rest of this body cannot be parsed either: no lingering read of it (which
        # would raise the same error again, logged by aiohttp), and no next request on
        # this connection.
        request.content.feed_eof()
        if request.protocol is not None:
            request.protocol.close()
        raise _refused(web.HTTPBadRequest, "invalid_body_encoding", "the body could not be decoded") from None
    except ConnectionError:
        log.debug("%s %s: the client left during the body", request.method, request.path)
        raise _refused(web.HTTPBadRequest, "body_aborted", "the body was cut short") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise _refused(web.HTTPBadRequest, "invalid_json", "body is not UTF-8") from None
    if depth_exceeds(text, limits.max_json_depth):
        msg = f"body nests deeper than {limits.max_json_depth} levels"
        raise _refused(web.HTTPBadRequest, "invalid_json", msg)
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        raise _refused(web.HTTPBadRequest, "invalid_json", "body is not JSON") from None
