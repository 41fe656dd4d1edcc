"""What one parsed client frame asks of the connection: the decisions, without I/O.

The handler parses a text frame (`protocol.client_message_adapter`) and hands it here
with the connection's `ClientLimits` and the clock; `plan` answers what to do, and the
handler (`handler.py`) does it:

- `ping`: a `pong` with its id, queued at once (`Plan.frames`);
- `request`: the call, for `calls.Calls` to run (`Plan.call`);
- `subscribe`: its topics, each once, in the frame's order (`Plan.subscribe`), each
  charged to the subscribe rate limit when the frame arrives; a topic over the limit
  gets a `rate_limited` error instead and is a strike (`Plan.frames`, `Plan.served`);
- `unsubscribe`: its topics (`Plan.unsubscribe`);
- `auth`: the frame, for the handler to authenticate its token (`Plan.auth`), charged
  to the `auth_per_minute` limit; over it, a `rate_limited` error with its id instead,
  and a strike.

A frame's subscribes are charged together, when it arrives: what the client asked
for at once is judged at once, whatever the snapshots of its first topics cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ErrorCode
from ..frames import Frame, error_frame, pong_frame
from ..protocol import AuthFrame, ClientMessage, PingFrame, RequestFrame, SubscribeFrame
from .ratelimit import ClientLimits

#: What a subscribe over the rate limit is told.
SLOW_DOWN = "too many subscribes; slow down"
#: What an `auth` over its rate limit is told.
AUTH_SLOW_DOWN = "too many auth frames; refresh once per token lifetime"


@dataclass(slots=True)
class Plan:
    #: Frames to queue at once (a pong, rate-limit errors), in order.
    frames: list[Frame] = field(default_factory=list)
    #: Error codes of `frames` that are errors (for metrics).
    errors: list[ErrorCode] = field(default_factory=list)
    call: RequestFrame | None = None
    #: Topics to subscribe to, one after the other, and the frame's id for their answers.
    subscribe: list[str] = field(default_factory=list)
    request_id: str | None = None
    unsubscribe: list[str] = field(default_factory=list)
    #: A new token to authenticate (the handler does: it awaits the app's hook).
    auth: AuthFrame | None = None
    #: False if any of it was refused by a rate limit (a strike: a client that keeps
    #: subscribing while limited is closed like one that keeps sending).
    served: bool = True


def plan(message: ClientMessage, limits: ClientLimits, now: float) -> Plan:
    result = Plan()
    if isinstance(message, PingFrame):
        result.frames.append(Frame(pong_frame(message.id)))
    elif isinstance(message, RequestFrame):
        result.call = message
    elif isinstance(message, SubscribeFrame):
        result.request_id = message.id
        for topic in dict.fromkeys(message.topics):  # each topic once, in order
            if limits.take_subscribe(now):
                result.subscribe.append(topic)
                continue
            result.served = False
            limits.refused()
            code = ErrorCode.RATE_LIMITED
            result.frames.append(Frame(error_frame(code, SLOW_DOWN, id=message.id, topic=topic)))
            result.errors.append(code)
    elif isinstance(message, AuthFrame):
        if limits.take_auth(now):
            result.auth = message
        else:
            result.served = False
            limits.refused()
            code = ErrorCode.RATE_LIMITED
            result.frames.append(Frame(error_frame(code, AUTH_SLOW_DOWN, id=message.id)))
            result.errors.append(code)
    else:
        result.unsubscribe.extend(message.topics)
    return result
