"""The hand-built hot-path frames are exactly what the protocol models produce."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aiohttp_realtime import RealtimeSettings
from aiohttp_realtime.frames import (
    encode,
    error_frame,
    event_frame,
    hello_frame,
    hello_limits,
    pong_frame,
    response_error_frame,
    result_frame,
    snapshot_frame,
    utc_text,
)
from aiohttp_realtime.protocol import (
    EventFrame,
    HelloFrame,
    ResponseError,
    ResponseFrame,
    SnapshotFrame,
    server_message_adapter,
)


def test_event_frame_matches_the_model():
    payload = {"op": "upsert", "text": 'quote " and ünïcode'}
    raw = event_frame('topic:"x"', 42, json.dumps(payload).encode())
    parsed = server_message_adapter.validate_json(raw)
    assert parsed == EventFrame(type="event", topic='topic:"x"', seq=42, payload=payload)
    assert json.loads(raw) == json.loads(encode(parsed))


def test_snapshot_frame_matches_the_model():
    raw = snapshot_frame("t", 0, b'{"items":[]}')
    assert server_message_adapter.validate_json(raw) == SnapshotFrame(
        type="snapshot", topic="t", seq=0, payload={"items": []}
    )


@pytest.mark.parametrize("principal", [None, 'alice "a"'])
def test_hello_frame_matches_the_model(principal):
    settings = RealtimeSettings(
        max_queue_bytes=123, max_topics=7, frames_per_s=2.5, max_requests_in_flight=3, request_timeout_s=1.5
    )
    now = datetime(2026, 11, 22, 8, 30, 1, 250, tzinfo=UTC)
    limits = hello_limits(settings, auth=principal is not None)
    now_us = int(now.timestamp()) * 1_000_000 + now.microsecond
    raw = hello_frame('id"-1', now_us, limits, principal=principal)
    model = HelloFrame(
        type="hello",
        connection_id='id"-1',
        server_time=now,
        protocol=1,
        heartbeat_s=settings.heartbeat_s,
        max_queue_bytes=123,
        max_frame_bytes=settings.max_frame_bytes,
        max_topics=7,
        max_snapshot_bytes=61,
        frames_per_s=2.5,
        subscribes_per_s=settings.subscribes_per_s,
        max_requests_in_flight=3,
        request_timeout_s=1.5,
        auth=principal is not None,
        principal=principal,
    )
    assert server_message_adapter.validate_json(raw) == model
    # Key for key what pydantic would send (its datetime text may drop zero microseconds).
    assert list(json.loads(raw)) == list(json.loads(encode(model)))
    assert json.loads(raw)["server_time"] == "2026-11-22T08:30:01.000250Z"


def test_result_frame_matches_the_model():
    raw = result_frame('r"1', b'{"id":"s-1","n":2}')
    model = ResponseFrame(type="response", id='r"1', result={"id": "s-1", "n": 2})
    assert server_message_adapter.validate_json(raw) == model
    assert json.loads(raw) == json.loads(encode(model))


def test_response_errors_omit_what_they_lack():
    assert json.loads(response_error_frame("r", "timeout", "slow")) == {
        "type": "response",
        "id": "r",
        "error": {"code": "timeout", "message": "slow"},
    }
    raw = response_error_frame("r", "invalid_params", "bad", [{"loc": ["a"]}])
    assert server_message_adapter.validate_json(raw) == ResponseFrame(
        type="response",
        id="r",
        error=ResponseError(code="invalid_params", message="bad", details=[{"loc": ["a"]}]),
    )


def test_optional_fields_are_omitted_not_null():
    assert json.loads(pong_frame(None)) == {"type": "pong"}
    assert json.loads(error_frame("unknown_topic", "m", topic="t")) == {
        "type": "error",
        "code": "unknown_topic",
        "message": "m",
        "topic": "t",
    }


class _Capture:
    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += bytes(data)

    def writelines(self, chunks):
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self):
        return False

    def get_write_buffer_size(self):
        return 0


async def test_prebuilt_websocket_frame_is_what_aiohttp_writes():
    from unittest.mock import Mock

    from aiohttp import WSMsgType
    from aiohttp._websocket.writer import WebSocketWriter

    from aiohttp_realtime.frames import ws_text_frame

    for size in (0, 1, 125, 126, 65535, 65536, 200_000):
        payload = b"x" * size
        transport = _Capture()
        writer = WebSocketWriter(Mock(_paused=False), transport, use_mask=False)
        await writer.send_frame(payload, WSMsgType.TEXT)
        assert ws_text_frame(payload) == transport.data, size


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 22, 8, 30, 1, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 30, 1, 999_999, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 30, 2, 7, tzinfo=UTC),  # the next second: not the cached one
        datetime(1999, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 30, 1, 42, tzinfo=UTC),  # back to an earlier second
    ],
)
def test_utc_text_is_the_iso_time_of_the_instant(when):
    us = int(when.timestamp()) * 1_000_000 + when.microsecond
    expected = when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert utc_text(us).decode() == expected
