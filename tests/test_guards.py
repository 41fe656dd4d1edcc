"""The I/O-free guards, unit-tested with the clock and the bytes passed in."""

from __future__ import annotations

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given
from hypothesis import strategies as st

from aiohttp_realtime.core import ClientLimits, TokenBucket
from aiohttp_realtime.jsonguard import depth_exceeds
from aiohttp_realtime.settings import RealtimeSettings
from aiohttp_realtime.wsguard import GuardedWebSocketResponse, MaskCheck
from tests.support import masked_frame


def test_token_bucket_allows_the_burst_then_the_rate():
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(1, 0.49) is False  # 0.98 of a token
    assert bucket.take(1, 0.5) is True
    assert bucket.take(1, 100.0) and bucket.take(2, 100.0)  # refills to the burst, no more
    assert bucket.take(1, 100.0) is False
    assert bucket.take(4, 1000.0) is False  # more than the burst never passes


def test_client_limits_are_two_buckets_and_a_strike_count():
    limits = ClientLimits(
        RealtimeSettings(frames_per_s=2, frames_burst=3, subscribes_per_s=1, subscribes_burst=2), now=0.0
    )
    # Frames: the burst, then the rate - as a TokenBucket(2, 3).
    assert [limits.take_frame(0.0) for _ in range(4)] == [True, True, True, False]
    assert limits.take_frame(0.49) is False and limits.take_frame(0.5) is True
    assert [limits.take_frame(100.0) for _ in range(4)] == [True, True, True, False]  # refills to the burst
    # Subscribes have their own bucket: spending frames did not touch it.
    assert [limits.take_subscribe(0.0) for _ in range(3)] == [True, True, False]
    assert limits.take_subscribe(0.99) is False and limits.take_subscribe(1.0) is True
    assert limits.take_subscribe(0.5) is False  # a clock that steps back refills nothing
    # Strikes: refusals in a row, `frames_burst` of them closes.
    assert [limits.refused(), limits.refused()] == [False, False] and not limits.struck_out
    limits.accepted()
    assert [limits.refused(), limits.refused(), limits.refused()] == [False, False, True]
    assert limits.struck_out


@pytest.mark.parametrize(
    ("text", "limit", "exceeds"),
    [
        ("[]", 1, False),
        ("[[]]", 1, True),
        ('{"a":{"b":[1]}}', 3, False),
        ('{"a":{"b":[1]}}', 2, True),
        ('["[[[[[[", "{{{{{{"]', 1, False),  # brackets in strings do not nest
        ('["\\"[[[[", 1]', 1, False),  # nor after an escaped quote
        ("[" * 5000, 32, True),
        ("[]" * 5000, 1, False),  # many, but flat
        ('{"a":' * 33 + "1" + "}" * 33, 32, True),
    ],
)
def test_depth_exceeds(text, limit, exceeds):
    assert depth_exceeds(text, limit) is exceeds


@given(st.recursive(st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3), max_leaves=30))
def test_depth_exceeds_agrees_with_the_parsed_depth(value):
    import json

    def depth(v: object) -> int:
        return 1 + max((depth(x) for x in v), default=0) if isinstance(v, list) else 0

    text = json.dumps(value)
    d = depth(value)
    assert depth_exceeds(text, d) is False
    if d:
        assert depth_exceeds(text, d - 1) is True


@given(
    payloads=st.lists(st.binary(max_size=70_000), min_size=1, max_size=4),
    cut=st.integers(min_value=1, max_value=5000),
)
def test_mask_check_follows_frame_boundaries_in_any_chunking(payloads, cut):
    stream = b"".join(masked_frame(0x2, p) for p in payloads)
    check = MaskCheck()
    assert all(check.feed(stream[i : i + cut]) for i in range(0, len(stream), cut))
    unmasked = bytes([0x82, 3]) + b"abc"
    assert check.feed(unmasked) is False


@given(
    payloads=st.lists(st.binary(max_size=70_000), min_size=1, max_size=4),
    bad=st.integers(min_value=0, max_value=3),
    cut=st.integers(min_value=1, max_value=5000),
)
def test_mask_check_refuses_at_the_read_that_shows_an_unmasked_frame(payloads, bad, cut):
    """Whatever the chunking: every read before the one holding the unmasked frame's
    second byte passes, that read fails."""
    bad %= len(payloads)
    frames = [masked_frame(0x2, p) for p in payloads]
    unmasked = bytearray(frames[bad])
    unmasked[1] &= 0x7F
    extended = {126: 2, 127: 8}.get(unmasked[1], 0)
    del unmasked[2 + extended : 6 + extended]  # no mask key
    frames[bad] = bytes(unmasked)
    stream = b"".join(frames)
    second = sum(len(f) for f in frames[:bad]) + 1  # where the mask bit is read
    check = MaskCheck()
    results = [check.feed(stream[i : i + cut]) for i in range(0, second + 1, cut)]
    assert results[:-1] == [True] * (len(results) - 1) and results[-1] is False


def test_mask_check_spots_an_unmasked_frame_after_masked_ones():
    check = MaskCheck()
    assert check.feed(masked_frame(0x1, b"x" * 200))
    assert check.feed(bytes([0x81])) is True  # half a header: undecided
    assert check.feed(bytes([0x05]) + b"hello") is False


async def test_a_guarded_response_closed_before_any_write_still_sends_its_handshake(aiohttp_client):
    """Its 101 headers wait for the first write (to leave with the hello): a close that
    comes first must send them, or the client would read a close frame as HTTP."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = GuardedWebSocketResponse(linger_s=1.0)
        await ws.prepare(request)
        await ws.close(code=4000, message=b"bye")
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/")
    msg = await ws.receive()
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4000, "bye")


async def test_a_guarded_response_computes_its_handshake_once_and_keeps_none_of_it(
    aiohttp_client, monkeypatch
):
    """`can_prepare` then `prepare` (the handler's order): one handshake (headers, the
    key's SHA-1), and the prepared response holds no reference to it."""
    computed: list[object] = []
    handshake = web.WebSocketResponse._handshake

    def counted(self: web.WebSocketResponse, request: web.BaseRequest) -> object:
        computed.append(request)
        return handshake(self, request)

    monkeypatch.setattr(web.WebSocketResponse, "_handshake", counted)
    held: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = GuardedWebSocketResponse(linger_s=1.0, protocols=("p1",))
        assert ws.can_prepare(request).ok
        await ws.prepare(request)
        held.append(ws._handshaken)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/", protocols=("p1",))
    assert ws.protocol == "p1"  # the reused handshake still negotiated the subprotocol
    assert (await ws.receive()).type is WSMsgType.CLOSE
    assert len(computed) == 1 and held == [None]
