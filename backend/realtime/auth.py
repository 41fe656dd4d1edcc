"""Who is connecting, and what they may read: the hooks and the checks that run
before a WebSocket upgrade (and that an application reuses for its own HTTP routes).

- `Authenticate`: `async (request) -> Principal | None`; None refuses the request
  (401), and so does a principal whose `expires_at` has passed. Without a hook,
  authentication is off: every request is served with `principal=None`, and
  `hello.auth` says so. The same hook authenticates the token of an in-band `auth`
  frame, handed to it as `token_request(request, token)`: the upgrade request with
  `Authorization: Bearer <token>` as its only credential.
- `Authorize`: `(principal, topic, params) -> bool` (or awaitable); False refuses
  one topic with `forbidden`.
- `BearerTokens`: an `Authenticate` over a fixed table of tokens (from
  configuration); a token's principal may carry an `expires_at`. The token travels
  in `Authorization: Bearer`, in the WebSocket subprotocol offer
  `["realtime.v1", "auth.<token>"]` (what browsers can send; the server echoes only
  `realtime.v1`), or in an HttpOnly cookie - never in the URL,
  which ends up in access logs, proxies' logs, browser history and `Referer`.
- `allowed_host` / `allowed_origin`: the DNS-rebinding and cross-site checks,
  against configured lists or the loopback names on the port the request arrived
  on - never against the request's own Host header.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web
from multidict import CIMultiDict

from .principal import Principal
from .settings import RealtimeSettings
from .topics import TopicDef

#: The subprotocol of this protocol's version; the only one the server ever echoes.
SUBPROTOCOL = "realtime.v1"
#: Prefix of the subprotocol offer that carries a token (`auth.<token>`).
AUTH_PROTOCOL_PREFIX = "auth."
#: Cookie that may carry the token (set it HttpOnly, Secure, SameSite=Strict).
TOKEN_COOKIE = "realtime_token"

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


Authenticate = Callable[[web.Request], Awaitable[Principal | None]]
Authorize = Callable[[Principal | None, TopicDef[Any, Any], Mapping[str, str]], bool | Awaitable[bool]]

#: Where an application keeps a request's principal (`request[PRINCIPAL_KEY]`): a
#: typed `web.RequestKey` on aiohttp 3.14+, a plain string key before.
_RequestKey: Any = getattr(web, "RequestKey", None)
PRINCIPAL_KEY: Any = (
    _RequestKey("aiohttp_realtime.principal", Principal)
    if _RequestKey is not None
    else "aiohttp_realtime.principal"
)


def request_token(request: web.BaseRequest) -> str | None:
    """The bearer token a request carries, wherever a client can put it."""
    authorization = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for offer in offered_protocols(request):
        if offer.startswith(AUTH_PROTOCOL_PREFIX) and len(offer) > len(AUTH_PROTOCOL_PREFIX):
            return offer[len(AUTH_PROTOCOL_PREFIX) :]
    return request.cookies.get(TOKEN_COOKIE) or None


def offered_protocols(request: web.BaseRequest) -> list[str]:
    header = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
    return [p.strip() for p in header.split(",") if p.strip()]


def token_request(request: web.Request, token: str) -> web.Request:
    """A copy of `request` whose one credential is `Authorization: Bearer <token>`: how
    the token of an `auth` frame reaches the `authenticate` hook. The request's own
    credentials (its `Authorization`, its cookies, an `auth.<token>` subprotocol offer)
    are removed, so the hook can only find the new token; everything else - the app,
    the client address and host (as a trusted proxy forwarded them), the other headers,
    what the app stored on the request - is the upgrade request's."""
    headers = CIMultiDict(request.headers)
    for name in (hdrs.AUTHORIZATION, hdrs.COOKIE, hdrs.SEC_WEBSOCKET_PROTOCOL):
        headers.popall(name, None)
    kept = [p for p in offered_protocols(request) if not p.startswith(AUTH_PROTOCOL_PREFIX)]
    if kept:
        headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = ", ".join(kept)
    headers[hdrs.AUTHORIZATION] = f"Bearer {token}"
    # Scheme, host and address as this request reports them: `clone` would otherwise
    # recompute them from the transport, dropping what a proxy middleware set.
    scheme, host, remote = request.scheme, request.host, request.remote
    if remote is None:
        return request.clone(headers=headers, scheme=scheme, host=host)
    return request.clone(headers=headers, scheme=scheme, host=host, remote=remote)


def expired(principal: Principal, now: datetime | None = None) -> bool:
    """Whether the principal's credential has expired (at `now`, default: this instant)."""
    return principal.expires_at is not None and principal.expires_at <= (now or datetime.now(UTC))


class BearerTokens:
    """Authenticate against a table of tokens. Tokens are kept only as SHA-256
    digests and compared in constant time, so neither a memory dump nor response
    timing gives one away. A principal with an `expires_at` is that token's until
    then: after it the token is refused (401 at a connect, `unauthorized` for an
    `auth` frame), and a connection opened with it is closed (4001) unless it
    presented another token first."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._by_digest = {_digest(token): principal for token, principal in tokens.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    async def __call__(self, request: web.Request) -> Principal | None:
        token = request_token(request)
        if token is None:
            return None
        digest = _digest(token)
        found = None
        for known, principal in self._by_digest.items():  # no early exit: constant time
            if hmac.compare_digest(known, digest):
                found = principal
        # Expired: refused here too, not only by the endpoint (an app's own routes, such
        # as the demo's HTTP API, call this table directly).
        return None if found is None or expired(found) else found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# ---------------------------------------------------------------- host and origin


def local_port(request: web.BaseRequest) -> int | None:
    """The port the request arrived on (the socket's, not the Host header's)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


# Cached: the defaults are looked up on every handshake, and a server listens on few
# ports (the cache is bounded all the same).
@functools.lru_cache(maxsize=64)
def loopback_hosts(port: int | None) -> frozenset[str]:
    if port is None:
        return frozenset()
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port in (80, 443):
        hosts.update(LOOPBACK_NAMES)
    return frozenset(hosts)


@functools.lru_cache(maxsize=64)
def loopback_origins(port: int | None) -> frozenset[str]:
    return frozenset(f"{scheme}://{host}" for host in loopback_hosts(port) for scheme in ("http", "https"))


def allowed_host(request: web.BaseRequest, settings: RealtimeSettings) -> bool:
    """Against DNS rebinding: a page on `evil.example` whose name now resolves to this
    server sends `Host: evil.example` - refused, since only configured names pass."""
    if hdrs.HOST not in request.headers:
        return False
    # The Host header, or the public host a trusted proxy forwarded (an app's proxy
    # middleware replaces it with `request.clone(host=...)`).
    host = request.host
    allowed = settings.allowed_hosts
    if allowed is None:
        allowed = loopback_hosts(local_port(request))
    return host.lower() in allowed


def allowed_origin(request: web.BaseRequest, settings: RealtimeSettings) -> bool:
    """Browsers send `Origin` on every WebSocket handshake and cross-site POST; a
    request without one is not from a browser page and passes (it authenticates
    like any other)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    allowed = settings.allowed_origins
    if allowed is None:
        # The defaults: the loopback origins on the port served, and the page's own
        # origin - the scheme and host the request arrived with (behind a trusted
        # proxy, the public ones it forwarded) - when that host is itself allowed.
        if origin in loopback_origins(local_port(request)):
            return True
        own = f"{request.scheme}://{request.host.lower()}"
        return origin == own and allowed_host(request, settings)
    return origin in allowed


def parse_origins(values: Iterable[str]) -> frozenset[str]:
    """Normalise configured origins (`https://app.example.com/` -> without the slash)."""
    return frozenset(v.strip().rstrip("/") for v in values if v.strip())
