"""The catalogue of WebSocket close codes the server sends, and what a client does.

There is no replay: whatever the code, a client that reconnects re-subscribes and
resyncs from fresh snapshots. The catalogue only tells it *when* to reconnect.
1006 never appears on the wire (RFC 6455 §7.4.1): a client sees it locally when
the TCP connection dropped without a close frame and treats it as `backoff`.

After 4001 (`auth_expired`, advice `new_token`) the client first gets a new token from
its provider (the one it had expired), then reconnects at once, as after `now`.

A close whose advice is `now` (1001, 1012) may carry a window in its reason,
`...; reconnect_within_ms=N` (`reconnect_hint`): the client reconnects after a delay
drawn uniformly from [0, N) ms (full jitter), N capped at 60 s. A restarting server
closes its clients in batches and gives that window, so a deploy spreads the
reconnects instead of answering them all in one instant.
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum
from typing import Any

from .catalogue import catalogue_schema


class Reconnect(StrEnum):
    NOW = "now"  # reconnect at once (with a little jitter to spread a herd)
    BACKOFF = "backoff"  # reconnect with exponential backoff and full jitter
    NEVER = "never"  # do not reconnect automatically: something must change first
    NEW_TOKEN = "new_token"  # get a new token from your provider, then reconnect at once


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    AUTH_EXPIRED = 4001
    SLOW_CONSUMER = 4008

    @classmethod
    def __get_pydantic_json_schema__(cls, _core_schema: Any, _handler: Any) -> dict[str, Any]:
        """Each code's advice is in `x-reconnect` too, so clients read it as data."""
        return catalogue_schema(
            "CloseCode",
            "A WebSocket close code the server sends. Codes not listed here "
            "(including 1006, seen locally on a dropped connection): reconnect with backoff.",
            (
                (code, f"{meaning} Reconnect: {advice}.", {"x-reconnect": advice.value})
                for code, (advice, meaning) in ((c, CLOSE_CODE_DOCS[c]) for c in cls)
            ),
        )


#: (advice, meaning) per code. Exported to TypeScript as doc comments.
CLOSE_CODE_DOCS: dict[CloseCode, tuple[Reconnect, str]] = {
    CloseCode.NORMAL: (Reconnect.NEVER, "Normal closure, asked for by the client."),
    CloseCode.GOING_AWAY: (
        Reconnect.NOW,
        "The server is going away (shutting down). Reconnect and resync after a short random "
        "delay (within `reconnect_within_ms=N` when the reason gives it); another node (or "
        "the restarted one) will answer. A restarting server sends 1012.",
    ),
    CloseCode.PROTOCOL_ERROR: (
        Reconnect.BACKOFF,
        "The client broke the WebSocket protocol (for example an unmasked frame). Fix the "
        "client; reconnect with backoff.",
    ),
    CloseCode.INVALID_PAYLOAD: (
        Reconnect.BACKOFF,
        "The client sent a text frame that is not valid UTF-8. Fix the client; reconnect with backoff.",
    ),
    CloseCode.POLICY_VIOLATION: (
        Reconnect.BACKOFF,
        "The client kept sending while rate limited (`rate_limited` errors were ignored). "
        "Reconnect with backoff and send less.",
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        Reconnect.BACKOFF,
        "The client sent a frame larger than `hello.max_frame_bytes`. Fix the client; "
        "reconnect with backoff.",
    ),
    CloseCode.INTERNAL_ERROR: (Reconnect.BACKOFF, "Unexpected server error. Reconnect with backoff."),
    CloseCode.SERVICE_RESTART: (
        Reconnect.NOW,
        "The server is restarting (a deploy, a worker restart) and closes its clients in "
        "batches. Reconnect and resync after a random delay within the window the close "
        "reason gives (`reconnect_within_ms=N`; the client's own window when absent), so "
        "that every tab does not come back in the same instant.",
    ),
    CloseCode.TRY_AGAIN_LATER: (
        Reconnect.BACKOFF,
        "The server lost its backplane (several nodes share events through it), so events "
        "of this connection's topics may be missing. Reconnect with backoff and resync from "
        "fresh snapshots.",
    ),
    CloseCode.AUTH_EXPIRED: (
        Reconnect.NEW_TOKEN,
        "The connection's credential expired (`hello.auth_expires_in_s` after its `hello`, or "
        "the `authed` that last refreshed it) and no `auth` frame presented a new token in "
        "time. Get a new token from your provider, then reconnect at once and resync from "
        "fresh snapshots; refresh in band before the next expiry to keep the subscriptions.",
    ),
    CloseCode.SLOW_CONSUMER: (
        Reconnect.BACKOFF,
        "The client read too slowly and its outbound buffer (`hello.max_queue_bytes`) "
        "overflowed. Reconnect with backoff and resync from fresh snapshots.",
    ),
}


#: In a close reason: spread the reconnect uniformly over this many milliseconds.
RECONNECT_HINT = re.compile(r"\breconnect_within_ms=(\d{1,9})\b", re.ASCII)  # as JS reads it
#: A hint above this is read as this: a hostile or broken server cannot park clients.
MAX_RECONNECT_WITHIN_MS = 60_000


def reconnect_hint(reason: str, within_ms: int) -> str:
    """`reason` with the reconnect window appended, as clients parse it (`RECONNECT_HINT`)."""
    return f"{reason}; reconnect_within_ms={within_ms}"


def reconnect_within_ms(reason: str) -> int | None:
    """The window a close reason gives (capped at `MAX_RECONNECT_WITHIN_MS`), or None."""
    m = RECONNECT_HINT.search(reason)
    return None if m is None else min(int(m.group(1)), MAX_RECONNECT_WITHIN_MS)


def reconnect_advice(code: int) -> Reconnect:
    """Advice for any code a client may observe, including ones not in the catalogue."""
    try:
        return CLOSE_CODE_DOCS[CloseCode(code)][0]
    except ValueError:
        return Reconnect.BACKOFF
