"""Micro-benchmarks of the fan-out hot paths (pytest-benchmark), small enough for every run.

pytest-benchmark times each target and prints a table at the end of the session; to
compare two versions of the library, save a run and compare against it::

    .venv/bin/python -m pytest tests/test_bench_micro.py --benchmark-autosave
    .venv/bin/python -m pytest tests/test_bench_micro.py --benchmark-compare

The rounds are few (each benchmark stays well under a second), so the figures are
indicative; `scripts/bench-fanout` measures the whole server. As everywhere in this
project, no test asserts on time: each asserts only that its target did its job.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp_realtime import TopicDef
from aiohttp_realtime.core.client import ClientState
from aiohttp_realtime.core.outbox import Outbox
from aiohttp_realtime.core.router import Router
from aiohttp_realtime.frames import Frame, event_frame, ws_text_frame
from scripts.bench.common import TOPIC, tick
from scripts.bench.server import Tick, Ticks  # the same payload as scripts/bench-fanout

SUBSCRIBERS = 1_000
TICKS: TopicDef[Ticks, Tick] = TopicDef(TOPIC, Ticks, Tick)
PAYLOAD = json.dumps(tick(1, 0), separators=(",", ":")).encode()


def test_outbox_push_then_take_a_burst_of_50(benchmark: Any) -> None:
    frames = [Frame(event_frame(TOPIC, seq, PAYLOAD)) for seq in range(1, 51)]
    outbox = Outbox(1 << 20)

    def burst() -> list[Frame]:
        for frame in frames:
            outbox.push(frame)
        return outbox.take()

    taken = benchmark.pedantic(burst, rounds=200, iterations=5, warmup_rounds=5)
    assert taken == frames  # all of them, in order, and nothing left behind
    assert not outbox.frames and outbox.pending == 0


class Subscribers:
    """`SUBSCRIBERS` live subscriptions to one topic, as the hub builds them."""

    def __init__(self, n: int) -> None:
        self.router = Router()
        self.readies = 0
        self.clients = [ClientState(1 << 20, self) for _ in range(n)]
        for client in self.clients:
            sub, _new = client.subscribe(TOPIC)
            self.router.attach(sub)
            assert client.go_live(sub, sub.epoch, 0, Frame(b"{}"))
        self.seq = 0

    def ready(self, _client: ClientState) -> None:  # ClientIO
        self.readies += 1

    def in_flight(self) -> int:  # ClientIO
        return 0

    def drain(self) -> None:
        for client in self.clients:
            client.outbox.take()
        self.readies = 0

    def route_next(self, events: int = 1) -> None:
        """Publish `events` more, then the tick's fan-out."""
        for _ in range(events):
            self.seq += 1
            self.router.queue(TOPIC, self.seq, PAYLOAD)
        self.router.fan_out()


def test_router_fan_out_one_event_to_1000_subscribers(benchmark: Any) -> None:
    subs = Subscribers(SUBSCRIBERS)
    # Each round routes the next seq to outboxes emptied by the (untimed) setup, as
    # after a flush: one append per subscriber, and each client marked ready once.
    benchmark.pedantic(subs.route_next, setup=subs.drain, rounds=60, warmup_rounds=2)
    assert subs.readies == SUBSCRIBERS
    for client in subs.clients:
        (frame,) = client.outbox.take()
        assert json.loads(frame.text)["seq"] == subs.seq
    assert subs.router.count(TOPIC) == SUBSCRIBERS


def test_router_fan_out_a_burst_of_50_to_1000_subscribers(benchmark: Any) -> None:
    subs = Subscribers(SUBSCRIBERS)
    benchmark.pedantic(subs.route_next, args=(50,), setup=subs.drain, rounds=20, warmup_rounds=1)
    assert subs.readies == SUBSCRIBERS  # each woken once for the whole burst
    for client in subs.clients:
        frames = client.outbox.take()
        assert [json.loads(f.text)["seq"] for f in frames] == list(range(subs.seq - 49, subs.seq + 1))


def test_topic_encode_event(benchmark: Any) -> None:
    payload = tick(7, 0)
    encoded = benchmark.pedantic(TICKS.encode_event, args=(payload,), rounds=200, iterations=10)
    assert json.loads(encoded) == payload


def test_event_frame(benchmark: Any) -> None:
    text = benchmark.pedantic(event_frame, args=(TOPIC, 12345, PAYLOAD), rounds=200, iterations=20)
    assert json.loads(text) == {"type": "event", "topic": TOPIC, "seq": 12345, "payload": tick(1, 0)}


def test_frame_wire(benchmark: Any) -> None:
    text = event_frame(TOPIC, 1, PAYLOAD)
    wire = benchmark.pedantic(lambda: Frame(text).wire, rounds=200, iterations=20)
    assert wire == ws_text_frame(text)
    assert wire[0] == 0x81 and wire[1] == 126 and int.from_bytes(wire[2:4], "big") == len(text)
