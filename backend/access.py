"""Who may do what in the demo: its tokens and its one authorization rule.

Authentication is off by default on loopback (`principal` is None everywhere and
everything is allowed). With a tokens file, every WebSocket and HTTP API request
needs a bearer token, and each token carries scopes:

- ``read``: the ``sessions.*`` topics, and the HTTP API's reads;
- ``terminals``: the ``terminals.state`` topic;
- ``write``: the HTTP API's writes (create, change, delete, post).

The same `authorize` rule guards subscribing (the hub asks it for every topic) and
the HTTP API (`may_read_sessions`, `may_write`), so one token reads the same data
through both.

The tokens file is JSON::

    {"tokens": [{"token": "…", "id": "alice", "scopes": ["read", "write", "terminals"]},
                {"token": "…", "id": "wallboard", "scopes": ["read"]},
                {"token": "…", "id": "alice", "scopes": ["read"],
                 "expires_at": "2026-12-31T23:00:00Z"}]}

A token with `expires_at` (ISO 8601 with a time zone: `Z` or `+01:00`) is refused
from then on, and a connection opened with it is closed with 4001 at that moment
unless the client presented another token of the same id first (an `auth` frame).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp_realtime import BearerTokens, Principal, TopicDef

from .topics import TERMINALS

READ, WRITE, TERMINAL_SCOPE = "read", "write", "terminals"
SCOPES = frozenset({READ, WRITE, TERMINAL_SCOPE})
#: Shortest token accepted from configuration (a guessable token is no token).
MIN_TOKEN_LENGTH = 16


def authorize(principal: Principal | None, topic: TopicDef[Any, Any], _params: Mapping[str, str]) -> bool:
    if principal is None:
        return True  # authentication off: local development
    needed = TERMINAL_SCOPE if topic is TERMINALS else READ
    return needed in principal.scopes


def may_read_sessions(principal: Principal | None) -> bool:
    return principal is None or READ in principal.scopes


def may_write(principal: Principal | None) -> bool:
    return principal is None or WRITE in principal.scopes


class TokensFileError(ValueError):
    """The tokens file is unreadable or malformed; the message says where."""


def load_tokens(path: Path) -> BearerTokens:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TokensFileError(f"{path}: {exc}") from None
    entries = raw.get("tokens") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        shape = '{"tokens": [{"token", "id", "scopes", "expires_at"?}, ...]}'
        raise TokensFileError(f"{path}: expected {shape}")
    table: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise TokensFileError(f"{where}: expected an object")
        token, pid, scopes = entry.get("token"), entry.get("id"), entry.get("scopes", [READ])
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or not _token_chars(token):
            raise TokensFileError(
                f"{where}: token must be at least {MIN_TOKEN_LENGTH} characters of A-Z a-z 0-9 - _ . ~"
            )
        if not isinstance(pid, str) or not pid:
            raise TokensFileError(f"{where}: id must be a non-empty string")
        if not isinstance(scopes, list) or not set(scopes) <= SCOPES:
            raise TokensFileError(f"{where}: scopes must be a list drawn from {sorted(SCOPES)}")
        if token in table:
            raise TokensFileError(f"{where}: duplicate token")
        table[token] = Principal(pid, frozenset(scopes), _expires_at(entry.get("expires_at"), where))
    return BearerTokens(table)


def _expires_at(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    when = None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            pass
    if when is None or when.utcoffset() is None:
        raise TokensFileError(
            f'{where}: expires_at must be an ISO 8601 time with a time zone, e.g. "2026-12-31T23:00:00Z"'
        )
    return when


def _token_chars(token: str) -> bool:
    """Characters that survive a header, a cookie and a WebSocket subprotocol."""
    return all(c.isascii() and (c.isalnum() or c in "-_.~") for c in token)
