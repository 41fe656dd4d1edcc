"""Encoding server frames to the bytes that go on the wire.

Encoded once per publish, shared by every subscriber: with compression off a
server frame is identical for every recipient, so the per-subscriber cost is a
reference, not a serialisation. `event_frame` builds the envelope by hand (it is
on the hot path) and `tests/test_frames.py` pins it to the `EventFrame` model.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii

from pydantic import BaseModel

from .errors import ErrorCode
from .protocol import PROTOCOL_VERSION, AuthedFrame, ErrorFrame, PongFrame, ResponseError, ResponseFrame
from .settings import RealtimeSettings


class Frame:
    """One encoded server frame, shared by every recipient: its JSON text, and its
    WebSocket framing, built once with it (writers join the framed bytes of all
    frames a connection has pending into one write)."""

    __slots__ = ("_sse", "_sse_chunk", "size", "text", "wire")

    def __init__(self, text: bytes) -> None:
        self.text = text
        #: Bytes this frame costs a client's budget (an attribute, not `len()`: it is
        #: read once per subscriber per event).
        self.size = len(text)
        self.wire = ws_text_frame(text)
        self._sse: bytes | None = None
        self._sse_chunk: bytes | None = None

    def __len__(self) -> int:
        return self.size

    @property
    def sse(self) -> bytes:
        """The frame as one Server-Sent Event (`data: <json>` and a blank line), built at
        the first SSE recipient's write and shared by the others, like `wire`."""
        sse = self._sse
        if sse is None:
            sse = self._sse = sse_event(self.text)
        return sse

    @property
    def sse_chunk(self) -> bytes:
        """`sse` as one HTTP/1.1 chunk (a stream with `Transfer-Encoding: chunked`):
        chunks join into a valid body, so a batch is still one shared write."""
        chunk = self._sse_chunk
        if chunk is None:
            chunk = self._sse_chunk = http_chunk(self.sse)
        return chunk


def sse_event(data: bytes, event: bytes | None = None) -> bytes:
    """One SSE event whose data is one line (the JSON text has no newline)."""
    head = b"" if event is None else b"event: " + event + b"\n"
    return head + b"data: " + data + b"\n\n"


#: The SSE heartbeat: a comment, which a client's parser skips.
SSE_PING = b": ping\n\n"


def http_chunk(data: bytes) -> bytes:
    """RFC 9112 §7.1: one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def ws_text_frame(payload: bytes) -> bytes:
    """RFC 6455 §5.2: one final, unmasked, uncompressed text frame - byte for byte
    what aiohttp writes for `send_frame(payload, TEXT)` with compression off."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def encode(frame: BaseModel) -> bytes:
    """Any server frame. Absent optional fields are omitted, never sent as null."""
    return frame.model_dump_json(exclude_none=True).encode()


def _payload_frame(kind: bytes, topic: str, seq: int, payload_json: bytes) -> bytes:
    return b"".join(
        (
            b'{"type":"',
            kind,
            b'","topic":',
            json.dumps(topic).encode(),
            b',"seq":',
            str(seq).encode(),
            b',"payload":',
            payload_json,
            b"}",
        )
    )


def event_frame(topic: str, seq: int, payload_json: bytes) -> bytes:
    """`EventFrame` from an already-serialised payload (a JSON object)."""
    return _payload_frame(b"event", topic, seq, payload_json)


def snapshot_frame(topic: str, seq: int, payload_json: bytes) -> bytes:
    """`SnapshotFrame` from an already-serialised payload (a JSON object)."""
    return _payload_frame(b"snapshot", topic, seq, payload_json)


def hello_limits(settings: RealtimeSettings, *, auth: bool) -> bytes:
    """The part of `HelloFrame` that is the same on every connection of a hub (its
    limits, and whether it authenticates): built once per hub, not per connect."""
    return (
        f',"protocol":{PROTOCOL_VERSION}'
        f',"heartbeat_s":{settings.heartbeat_s},"max_queue_bytes":{settings.max_queue_bytes}'
        f',"max_frame_bytes":{settings.max_frame_bytes},"max_topics":{settings.max_topics}'
        f',"max_snapshot_bytes":{settings.max_snapshot_bytes}'
        f',"frames_per_s":{float(settings.frames_per_s)!r}'
        f',"subscribes_per_s":{float(settings.subscribes_per_s)!r}'
        f',"auth":{"true" if auth else "false"}'
        f',"max_requests_in_flight":{settings.max_requests_in_flight}'
        f',"request_timeout_s":{float(settings.request_timeout_s)!r}'
    ).encode()


def hello_frame(
    connection_id: str,
    now_us: int,
    limits: bytes,
    *,
    principal: str | None,
    auth_expires_in_s: float | None = None,
    sse_secret: str | None = None,
) -> bytes:
    """`HelloFrame`, built by hand: it is sent on every connect, and pydantic's encoder
    cost more than the rest of the connect path (tests/test_frames.py pins it to the
    model). `now_us` is the server's time in microseconds since the epoch (UTC);
    `limits` is `hello_limits(...)` of the hub's settings; `auth_expires_in_s` the
    seconds the connection's credential has left (None: it does not expire);
    `sse_secret`, on the SSE transport only, adds `transport: "sse"` and the secret
    (the WebSocket's hello leaves both out: absent means `websocket`)."""
    sse = b"" if sse_secret is None else b',"transport":"sse","sse_secret":%s' % _ascii(sse_secret)
    who = b"" if principal is None else b',"principal":' + encode_basestring_ascii(principal).encode()
    expiry = b"" if auth_expires_in_s is None else b',"auth_expires_in_s":%r' % seconds(auth_expires_in_s)
    return b"".join(
        (
            b'{"type":"hello","connection_id":',
            encode_basestring_ascii(connection_id).encode(),
            b',"server_time":"',
            utc_text(now_us),
            b'"',
            limits,
            who,
            expiry,
            sse,
            b"}",
        )
    )


def _ascii(text: str) -> bytes:
    return encode_basestring_ascii(text).encode()


def seconds(left: float) -> float:
    """Seconds left, as the wire says them: to the millisecond, never negative."""
    return max(0.0, round(left, 3))


def authed_frame(id: str, auth_expires_in_s: float | None) -> bytes:
    """`AuthedFrame`: the answer to an `auth` whose token was accepted."""
    left = None if auth_expires_in_s is None else seconds(auth_expires_in_s)
    return encode(AuthedFrame(type="authed", id=id, auth_expires_in_s=left))


#: The last second `utc_text` formatted, and its text: connects within one second
#: share it (datetime's formatting cost more than the rest of the hello).
_second: tuple[int, bytes] = (-1, b"")


def utc_text(us: int) -> bytes:
    """ISO 8601 in UTC with microseconds and a `Z`, for a time in microseconds since
    the epoch: what pydantic accepts for a `datetime` field."""
    global _second
    second, micro = divmod(us, 1_000_000)
    if _second[0] != second:
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        _second = (second, text.encode())
    return b"%s.%06dZ" % (_second[1], micro)


def error_frame(code: ErrorCode, message: str, *, id: str | None = None, topic: str | None = None) -> bytes:
    return encode(ErrorFrame(type="error", code=code, message=message, id=id, topic=topic))


def pong_frame(id: str | None) -> bytes:
    return encode(PongFrame(type="pong", id=id))


def result_frame(id: str, result_json: bytes) -> bytes:
    """`ResponseFrame` with a `result`, from the already-serialised result (a JSON object)."""
    return b"".join((b'{"type":"response","id":', json.dumps(id).encode(), b',"result":', result_json, b"}"))


def response_error_frame(id: str, code: str, message: str, details: object = None) -> bytes:
    """`ResponseFrame` with an `error`."""
    error = ResponseError(code=code, message=message, details=details)
    return encode(ResponseFrame(type="response", id=id, error=error))
