"""Who the client is behind reverse proxies: `--forwarded-allow-ips`.

Behind nginx, HAProxy, a cloud load balancer or an ingress, every connection comes
from the proxy, so every per-address limit (connections, writes) would be shared by
all users. A proxy says who it forwards in `Forwarded` (RFC 7239) or
`X-Forwarded-For` / `-Proto` / `-Host`; anyone can send those headers, so they are
believed only when the TCP peer is one of the trusted proxies (the addresses and
networks given, as uvicorn's and gunicorn's `--forwarded-allow-ips`; `*` trusts every
peer, for a network where only the proxy can reach the service). From any other peer
they are ignored: the peer is the client.

In a chain of proxies each appends the address it received the request from, so the
list is read from the right: trusted proxies are skipped and the first address that
is not one is the client (a client cannot get past them by writing its own entries on
the left). Its protocol and host, as the proxy at that hop saw them, become the
request's `scheme` and `host` (the Origin and Host checks of the WebSocket use them).
`X-Forwarded-*` is parsed and walked by aiohttp-remotes (`XForwardedFiltered`, run
only for a trusted peer); `Forwarded` by aiohttp (`request.forwarded`), walked here the
same way. Which of the two is read is a setting (`forwarded_header`, default
`x-forwarded`), never both: a proxy that writes one passes the other through as the
client sent it, so reading "whichever is present" would believe a client's forgery.
A malformed header from a trusted
proxy is answered 400 `invalid_forwarded_header`.

The request handlers get a clone of the request with `remote`, `scheme` and `host`
replaced; the access log reads the client from `CLIENT_KEY` (`AccessLog`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal

from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp_remotes import XForwardedFiltered

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The client address a trusted proxy gave, kept on the original request for the log.
#: A typed `web.RequestKey` on aiohttp 3.14+, a plain string key before.
_RequestKey: Any = getattr(web, "RequestKey", None)
CLIENT_KEY: Any = (
    _RequestKey("backend.forwarded_client", str) if _RequestKey is not None else "backend.forwarded_client"
)
EVERYONE: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class ForwardedError(ValueError):
    """A trusted-proxy list that does not parse (names the bad entry)."""


def parse_allow_ips(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks (`10.0.0.0/8`, `::1`), or `*` for every peer."""
    networks: list[Network] = []
    for value in (v.strip() for v in values):
        if not value:
            continue
        if value == "*":
            return EVERYONE
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ForwardedError(f"{value!r} is not an IP address or network") from None
    return tuple(networks)


class TrustedProxies:
    """The middleware: believe forwarded headers from `trusted` peers only."""

    def __init__(
        self, trusted: Sequence[Network], header: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    ) -> None:
        self.trusted = tuple(trusted)
        self.header = header
        self._x_forwarded = XForwardedFiltered(set(self.trusted))

    def is_trusted(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:  # a Unix socket's peer: no address to trust
            return False
        return any(ip in network for network in self.trusted)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.trusted or not self.is_trusted(_peer(request)):
            return await handler(request)  # anyone's own headers: ignored
        if self.header == "forwarded":
            if not request.headers.getall("Forwarded", []):
                return await handler(request)
            return await self._forwarded(request, handler)
        if "X-Forwarded-For" not in request.headers:
            return await handler(request)
        entered = False

        async def inner(clone: web.Request) -> web.StreamResponse:
            nonlocal entered
            entered = True
            if clone.remote:
                request[CLIENT_KEY] = clone.remote
            return await handler(clone)

        try:
            return await self._x_forwarded.middleware(request, inner)
        except web.HTTPBadRequest:
            if entered:  # the handler's own 400, not the header's
                raise
            return _invalid("X-Forwarded-For, -Proto or -Host")

    async def _forwarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            elements = request.forwarded
        except ValueError:
            return _invalid("Forwarded")
        chosen: Any = None
        for element in reversed(elements):
            chosen = element
            node = _node_ip(element.get("for"))
            if node is None or not any(node in network for network in self.trusted):
                break  # the first hop that is not a trusted proxy: the client
        if chosen is None:
            return await handler(request)
        node = _node_ip(chosen.get("for"))
        # An obfuscated or `unknown` client (RFC 7239 §6.2-6.3) is keyed by what the
        # proxy wrote: such clients share their limits, as the proxy chose.
        remote = str(node) if node is not None else str(chosen.get("for") or "unknown")
        overrides: dict[str, str] = {"remote": remote}
        if chosen.get("proto"):
            overrides["scheme"] = chosen["proto"]
        if chosen.get("host"):
            overrides["host"] = chosen["host"]
        request[CLIENT_KEY] = remote
        return await handler(request.clone(**overrides))  # type: ignore[arg-type]


def _peer(request: web.BaseRequest) -> str | None:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return peer[0] if isinstance(peer, tuple) and peer else None


def _node_ip(node: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """RFC 7239 §6: `192.0.2.43`, `"192.0.2.43:47011"`, `"[2001:db8::1]:4711"`; an
    obfuscated or `unknown` node is not an address (None)."""
    if not node:
        return None
    node = node.strip('"')
    if node.startswith("["):
        node = node[1 : node.find("]")] if "]" in node else ""
    elif node.count(":") == 1:
        node = node.split(":", 1)[0]
    try:
        return ipaddress.ip_address(node)
    except ValueError:
        return None


def _invalid(header: str) -> web.Response:
    from .guard import json_error  # the demo's JSON error shape

    return json_error(400, "invalid_forwarded_header", f"a trusted proxy sent a malformed {header} header")


class AccessLog(AccessLogger):
    """aiohttp's access log line, with the client a trusted proxy named as `%a`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        client = request.get(CLIENT_KEY) if request is not None else None
        super().log(request.clone(remote=client) if client else request, response, time)
