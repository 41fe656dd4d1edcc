"""The I/O-free core: every ordering guarantee of docs/protocol.md, without a socket.

Unit tests per rule, then hypothesis: thousands of interleavings of subscribing (the
production `core.Subscribe`, its awaited steps played between the other ops),
publishing (queued until the tick's fan-out, so runs of several events form), the
fan-out, unsubscribing and writing, checked against the promise "per topic, a snapshot
that reflects its seq, then every later event in order, or a close" - and shown to
fail when two steps of the subscribe order are swapped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiohttp_realtime.core import ClientState, Router, Subscription, snapshots
from aiohttp_realtime.core.responses import Holds, owed
from aiohttp_realtime.core.subscribe import Step, Subscribe
from aiohttp_realtime.frames import Frame, snapshot_frame

PAYLOAD = b'{"v":1}'


class Wire:
    """The client's side: what the writer took out of the outbox, in order."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self.readies = 0
        self.client = ClientState(limit, self)
        self.frames: list[dict[str, Any]] = []

    def ready(self, _client: ClientState) -> None:  # ClientIO
        self.readies += 1

    def in_flight(self) -> int:  # ClientIO: nothing below the outbox here
        return self.client.outbox.downstream

    def drain(self) -> list[dict[str, Any]]:
        taken = [json.loads(f.text) for f in self.client.outbox.take()]
        self.frames += taken
        return taken


def snapshot(topic: str, seq: int) -> Frame:
    return Frame(snapshot_frame(topic, seq, b"{}"))


def subscribed(wire: Wire, router: Router, topic: str) -> tuple[Subscription, int]:
    sub, new = wire.client.subscribe(topic)
    if new:
        router.attach(sub)
    return sub, sub.epoch


def route(router: Router, topic: str, seq: int) -> None:
    """Publish one event and run the tick's fan-out at once."""
    router.queue(topic, seq, PAYLOAD)
    router.fan_out()


def kinds(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f["type"], f["seq"]) for f in frames]


def test_events_are_held_until_the_snapshot_and_those_it_reflects_are_dropped() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    for seq in (1, 2, 3):
        route(router, "t", seq)  # held: the snapshot is being built
    assert wire.drain() == []
    assert wire.client.go_live(sub, epoch, 2, snapshot("t", 2))  # it reflects 1 and 2
    route(router, "t", 4)
    assert kinds(wire.drain()) == [("snapshot", 2), ("event", 3), ("event", 4)]


def test_a_gap_closes_the_connection_instead_of_passing_it_on() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
    route(router, "t", 1)
    route(router, "t", 3)  # 2 was lost upstream
    route(router, "t", 4)
    assert kinds(wire.drain()) == [("snapshot", 0), ("event", 1)]
    assert wire.client.close_code == 1011


def test_a_duplicate_or_old_seq_is_ignored() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    wire.client.go_live(sub, epoch, 5, snapshot("t", 5))
    route(router, "t", 5)
    route(router, "t", 6)
    route(router, "t", 6)
    assert kinds(wire.drain()) == [("snapshot", 5), ("event", 6)]
    assert not wire.client.closing


def test_resubscribing_buffers_again_and_a_stale_snapshot_never_goes_live() -> None:
    wire, router = Wire(), Router()
    sub, first = subscribed(wire, router, "t")
    same, second = subscribed(wire, router, "t")
    assert same is sub and second == first + 1 and router.count("t") == 1
    route(router, "t", 1)
    assert not wire.client.go_live(sub, first, 0, snapshot("t", 0))  # built for the old request
    assert wire.client.go_live(sub, second, 1, snapshot("t", 1))
    assert kinds(wire.drain()) == [("snapshot", 1)]


def test_unsubscribe_stops_events_and_a_late_snapshot_is_dropped() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    removed = wire.client.unsubscribe("t")
    assert removed is sub
    router.detach(sub)
    route(router, "t", 1)
    assert not wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
    assert wire.drain() == [] and router.count("t") == 0 and len(router) == 0


def test_held_events_count_against_the_budget_and_overflow_evicts() -> None:
    frame_size = len(Frame(b'{"type":"event","topic":"t","seq":1,"payload":{"v":1}}'))
    wire, router = Wire(limit=3 * frame_size), Router()
    sub, _epoch = subscribed(wire, router, "t")
    for seq in (1, 2, 3):
        route(router, "t", seq)
    assert wire.client.outbox.reserved == 3 * frame_size and not wire.client.closing
    route(router, "t", 4)
    assert wire.client.close_code == 4008
    assert wire.client.outbox.cost == 0 and sub.held == []  # freed at once


def test_a_live_event_over_the_budget_evicts() -> None:
    # The router's inlined fast path must check the budget like `deliver` does.
    wire, router = Wire(limit=200), Router()
    sub, epoch = subscribed(wire, router, "t")
    wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
    for seq in range(1, 20):
        route(router, "t", seq)
    assert wire.client.close_code == 4008
    assert wire.client.outbox.cost == 0  # the queue was dropped at once


def test_a_closing_client_is_sent_no_more_events() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
    route(router, "t", 1)
    wire.client.close(1000, "bye")
    route(router, "t", 2)
    assert kinds(wire.drain()) == [("snapshot", 0), ("event", 1)]


def test_downstream_bytes_count_too() -> None:
    wire = Wire(limit=1000)
    wire.client.outbox.set_downstream(990)  # the writer's report: transport + kernel
    wire.client.send(Frame(b"x" * 20))
    assert wire.client.close_code == 4008


def test_an_overflow_remeasures_what_is_in_flight_before_evicting() -> None:
    in_flight = [990]

    class Below:
        def ready(self, _state: ClientState) -> None:
            pass

        def in_flight(self) -> int:
            return in_flight[0]

    client = ClientState(1000, Below())
    client.outbox.set_downstream(990)  # as the last write left it
    in_flight[0] = 0  # the client has read since
    client.send(Frame(b"x" * 20))
    assert not client.closing and client.outbox.pending == 20
    in_flight[0] = 995  # a later write found it really full
    client.outbox.set_downstream(995)
    client.send(Frame(b"x" * 20))
    assert client.close_code == 4008


def test_the_writer_is_woken_once_per_burst() -> None:
    wire, router = Wire(), Router()
    sub, epoch = subscribed(wire, router, "t")
    wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
    wire.drain()
    before = wire.readies
    for seq in range(1, 51):
        route(router, "t", seq)
    assert wire.readies == before + 1
    assert len(wire.drain()) == 50


def test_one_frame_is_shared_by_every_subscriber() -> None:
    router, wires = Router(), [Wire() for _ in range(3)]
    for wire in wires:
        sub, epoch = subscribed(wire, router, "t")
        wire.client.go_live(sub, epoch, 0, snapshot("t", 0))
        wire.client.outbox.take()
    route(router, "t", 1)
    [a], [b], [c] = (w.client.outbox.take() for w in wires)
    assert a is b is c


# ---------------------------------------------------------------- the tick's fan-out


def live(wire: Wire, router: Router, topic: str, seq: int = 0) -> Subscription:
    sub, epoch = subscribed(wire, router, topic)
    assert wire.client.go_live(sub, epoch, seq, snapshot(topic, seq))
    wire.drain()
    return sub


def test_queued_events_wait_for_the_fan_out_and_a_burst_is_one_step_per_subscriber() -> None:
    router, wires = Router(), [Wire() for _ in range(3)]
    for wire in wires:
        live(wire, router, "t")
        wire.readies = 0
    assert router.queue("t", 1, PAYLOAD)  # the first since the last fan-out: schedule one
    for seq in range(2, 51):
        assert not router.queue("t", seq, PAYLOAD)
    assert all(w.client.outbox.take() == [] for w in wires)  # nothing until the tick
    assert router.fan_out() == [("t", 50, 150)]  # one run: 50 events x 3 subscribers
    batches = [w.client.outbox.take() for w in wires]
    assert [json.loads(f.text)["seq"] for f in batches[0]] == list(range(1, 51))
    assert all(a is b is c for a, b, c in zip(*batches, strict=True))  # frames shared
    assert all(w.readies == 1 for w in wires)  # each writer woken once for the burst
    assert router.fan_out() == []  # the queue is empty after


def test_events_of_different_topics_keep_their_interleaving() -> None:
    wire, router = Wire(), Router()
    live(wire, router, "a")
    live(wire, router, "b")
    for topic, seq in [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2), ("b", 3)]:
        router.queue(topic, seq, PAYLOAD)
    runs = router.fan_out()
    assert [(topic, seq) for topic, seq, _frames in runs] == [("a", 2), ("b", 1), ("a", 3), ("b", 3)]
    assert [(f["topic"], f["seq"]) for f in wire.drain()] == [
        ("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2), ("b", 3)
    ]  # fmt: skip


def test_a_run_with_a_gap_closes_like_a_single_event_would() -> None:
    wire, router = Wire(), Router()
    live(wire, router, "t")
    for seq in (1, 2, 4):  # 3 was lost upstream
        router.queue("t", seq, PAYLOAD)
    router.fan_out()
    assert kinds(wire.drain()) == [("event", 1), ("event", 2)]
    assert wire.client.close_code == 1011


def test_a_run_that_starts_before_the_snapshots_seq_delivers_only_what_is_new() -> None:
    # Queued before the subscription went live with a snapshot reflecting seq 3.
    wire, router = Wire(), Router()
    for seq in range(1, 6):
        router.queue("t", seq, PAYLOAD)
    live(wire, router, "t", seq=3)
    router.fan_out()
    assert kinds(wire.drain()) == [("event", 4), ("event", 5)]
    assert not wire.client.closing


def test_a_subscription_attached_while_events_are_queued_holds_them_until_its_snapshot() -> None:
    wire, router = Wire(), Router()
    router.queue("t", 1, PAYLOAD)
    sub, epoch = subscribed(wire, router, "t")  # buffering: its snapshot is being built
    router.queue("t", 2, PAYLOAD)
    router.fan_out()
    assert wire.drain() == []  # held
    assert wire.client.go_live(sub, epoch, 1, snapshot("t", 1))
    assert kinds(wire.drain()) == [("snapshot", 1), ("event", 2)]


def test_a_run_over_the_budget_evicts_and_one_within_it_does_not() -> None:
    size = len(Frame(b'{"type":"event","topic":"t","seq":1,"payload":{"v":1}}'))
    wire, router = Wire(limit=3 * size), Router()
    live(wire, router, "t")
    for seq in (1, 2, 3):
        router.queue("t", seq, PAYLOAD)
    router.fan_out()
    assert not wire.client.closing and len(wire.client.outbox.frames) == 3
    router.queue("t", 4, PAYLOAD)
    router.fan_out()
    assert wire.client.close_code == 4008 and wire.client.outbox.cost == 0


def test_a_closing_client_gets_nothing_from_a_run() -> None:
    wire, router = Wire(), Router()
    live(wire, router, "t")
    wire.client.close(1000, "bye")
    for seq in (1, 2):
        router.queue("t", seq, PAYLOAD)
    router.fan_out()
    assert wire.drain() == []


# ---------------------------------------------------------------- interleavings

TOPICS = ("a", "b")


@dataclass
class Model:
    """The production subscribe path (`core.Subscribe`, `core.Router`, `ClientState`)
    with its I/O played by hypothesis. Each awaited step takes two `advance` ops of its
    subscribe: the first reads the world (the broker's seq, the provider's state), the
    second hands the result to the flow - with publishes, ticks and unsubscribes
    anywhere between, as an await allows. A snapshot says which seq of the topic its
    state reflects (what was published when the provider read it)."""

    flow: type[Subscribe] = Subscribe
    #: Which events a call's response must follow (`core.responses.owed`, or a mutation).
    owes: Callable[[ClientState, dict[str, int]], dict[str, int]] = owed
    #: Which subscribers share a snapshot (`core.snapshots.key`, or a mutation).
    keys: Callable[[str, int, str], snapshots.Key] = snapshots.key
    wire: Wire = field(default_factory=Wire)
    router: Router = field(default_factory=Router)
    seqs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    #: Subscribes under way: the flow, its next step, and what that step read (if begun).
    pending: list[tuple[Subscribe, Step, Any]] = field(default_factory=list)
    #: Per topic, what the client saw, with markers where it unsubscribed.
    log: dict[str, list[tuple[str, int, int]]] = field(default_factory=lambda: {t: [] for t in TOPICS})
    #: Calls (a method's handler publishing one event): the responses held for them
    #: (`core.responses.Holds`), what each still waits for, and what it was owed.
    holds: Holds[int] = field(default_factory=Holds)
    calls: dict[int, set[str]] = field(default_factory=dict)
    owed: dict[int, dict[str, int]] = field(default_factory=dict)
    #: Everything the client saw, in order: events, responses, unsubscribe markers.
    order: list[tuple[str, str, int]] = field(default_factory=list)
    builds: int = 0
    #: Snapshots shared between subscribes, as the hub keeps them (`Hub._snapshot`).
    shared: snapshots.SnapshotCache[Frame] = field(default_factory=lambda: snapshots.SnapshotCache(1 << 20))

    def drain(self) -> None:
        for f in self.wire.drain():
            if f["type"] == "response":
                self.order.append(("response", "", int(f["id"])))
                continue
            reflects = f["payload"]["reflects"] if f["type"] == "snapshot" else f["seq"]
            self.log[f["topic"]].append((f["type"], f["seq"], reflects))
            self.order.append((f["type"], f["topic"], f["seq"]))

    def call(self, topic: str) -> None:
        """A method's handler publishes one event on `topic`; its response waits for
        what the connection is owed of it, as `Publisher.delivered` does."""
        self.seqs[topic] += 1
        self.router.queue(topic, self.seqs[topic], PAYLOAD)
        call = len(self.owed)
        seq = self.seqs[topic]
        # The promise, stated here apart from the code under test: the response follows
        # the event if the connection is live on its topic and has not had it yet.
        sub = self.wire.client.subscriptions.get(topic)
        self.owed[call] = {topic: seq} if sub is not None and sub.live and sub.last_seq < seq else {}
        owed_now = self.owes(self.wire.client, {topic: seq})
        self.calls[call] = set(owed_now)
        for owed_topic, seq in owed_now.items():
            self.holds.add(owed_topic, seq, call)
        if not owed_now:
            self.respond(call)

    def reached(self, call: int, topic: str) -> None:
        self.calls[call].discard(topic)
        if not self.calls[call]:
            self.respond(call)

    def respond(self, call: int) -> None:
        self.wire.client.send(Frame(json.dumps({"type": "response", "id": str(call), "result": {}}).encode()))

    def read(self, flow: Subscribe, step: Step) -> Any:
        """The first half of an awaited step: what it reads of the world."""
        if step is Step.READ_SEQ:
            return self.seqs[flow.topic]
        if step is Step.BUILD:  # shared by every subscribe of the same key, as the hub does
            key = self.keys(flow.topic, flow.seq, "")
            built = self.shared.get(key)
            if built is None:
                payload = json.dumps({"reflects": self.seqs[flow.topic]}).encode()
                built = Frame(snapshot_frame(flow.topic, flow.seq, payload))
                self.shared.put(key, built)
                self.shared.sized(key, built.size)
                self.builds += 1
            return built
        return True  # WATCH: the in-process broker delivers every topic; FIT: there is room

    @staticmethod
    def complete(flow: Subscribe, step: Step, value: Any) -> Step | None:
        """The second half: the awaited result handed to the flow."""
        if step is Step.WATCH:
            return flow.watched()
        if step is Step.READ_SEQ:
            return flow.seq_read(value)
        if step is Step.BUILD:
            return flow.built(value)
        if step is Step.FIT:
            return flow.fitted(value)
        raise AssertionError(f"unexpected step {step}")

    def step(self, op: str, topic: str, index: int) -> None:
        client = self.wire.client
        if op == "subscribe":
            if topic in client.subscriptions:
                # A re-subscribe ends the old subscription: a response owed on it is then
                # ordered by the new snapshot (which reflects the change), as after an
                # unsubscribe - docs/protocol.md, "Requests".
                self.drain()
                self.order.append(("unsubscribed", topic, 0))
            flow = self.flow(client, self.router, topic, None, max_snapshot_bytes=1 << 20)
            first = flow.start(known=True, max_topics=10, authorize=False)
            if first is not None:
                self.pending.append((flow, first, None))
        elif op == "advance" and self.pending:
            flow, step, value = self.pending.pop(index % len(self.pending))
            if value is None:  # the await begins: the world is read now
                self.pending.append((flow, step, self.read(flow, step)))
            else:  # ... and ends, maybe much later
                following = self.complete(flow, step, value)
                if following is not None:
                    self.pending.append((flow, following, None))
        elif op == "publish":  # queued now, fanned out at the next tick
            self.seqs[topic] += 1
            self.router.queue(topic, self.seqs[topic], PAYLOAD)
        elif op == "call":
            self.call(topic)
        elif op == "tick":
            for run_topic, last, _frames in self.router.fan_out():
                self.shared.event(run_topic)
                for call in self.holds.reached(run_topic, last):
                    self.reached(call, run_topic)
        elif op == "unsubscribe":
            sub = client.unsubscribe(topic)
            if sub is not None:
                self.router.detach(sub)
                self.drain()
                self.log[topic].append(("unsubscribed", 0, 0))
                self.order.append(("unsubscribed", topic, 0))
                for call in self.holds.release(topic):
                    self.reached(call, topic)
        elif op == "drain":
            self.drain()

    def check(self) -> None:
        """Per topic: a snapshot that reflects at least its seq, then every later event
        in order; and a live subscription has everything published."""
        assert not self.wire.client.closing  # nothing was lost, so nothing is closed
        for topic, seen in self.log.items():
            expected: int | None = None  # the next seq owed, once a snapshot arrived
            for kind, seq, reflects in seen:
                if kind == "snapshot":
                    assert reflects >= seq, f"{topic}: a snapshot older than its seq: {seen}"
                    expected = seq + 1
                elif kind == "event":
                    assert expected is not None, f"{topic}: an event before its snapshot: {seen}"
                    assert seq == expected, f"{topic}: a gap or duplicate: {seen}"
                    expected += 1
                else:
                    expected = None
            sub = self.wire.client.subscriptions.get(topic)
            if sub is not None and sub.live:  # complete: everything published since
                assert expected == self.seqs[topic] + 1, f"{topic}: events missing at the end: {seen}"
        # A response comes after the events its call published on the topics the
        # connection was live on (or after the client left such a topic).
        for position, (kind, _topic, call) in enumerate(self.order):
            if kind != "response":
                continue
            before = self.order[:position]
            for topic, seq in self.owed[call].items():
                assert ("event", topic, seq) in before or ("unsubscribed", topic, 0) in before, (
                    f"response {call} before {topic} seq {seq}: {self.order}"
                )


# Weighted towards one topic and few requests, so that races within one topic (the
# interesting ones) are dense; "b" checks that topics do not disturb each other.
OPS = st.tuples(
    st.sampled_from(
        [
            "subscribe",
            *(["advance"] * 6),
            "publish",
            "publish",
            "call",
            "call",
            "tick",
            "tick",
            "unsubscribe",
            "drain",
        ]
    ),
    st.sampled_from(["a", "a", "a", "b"]),
    st.integers(0, 2),
)


def run(
    flow: type[Subscribe],
    ops: list[Any],
    owes: Callable[..., dict[str, int]] = owed,
    keys: Callable[[str, int, str], snapshots.Key] = snapshots.key,
) -> None:
    model = Model(flow, owes, keys)
    for op in ops:
        model.step(*op)
    while model.pending:  # every subscribe runs to its end
        model.step("advance", "a", 0)
    model.router.fan_out()  # the last tick
    model.drain()
    model.check()


@settings(max_examples=2000, deadline=None)
@given(st.lists(OPS, min_size=15, max_size=60))
def test_any_interleaving_gives_a_snapshot_then_every_later_event_in_order(ops: list[Any]) -> None:
    run(Subscribe, ops)


class SeqAfterSnapshot(Subscribe):
    ORDER = (Step.REGISTER, Step.WATCH, Step.BUILD, Step.READ_SEQ)


class RegisterAfterSeq(Subscribe):
    ORDER = (Step.WATCH, Step.READ_SEQ, Step.REGISTER, Step.BUILD)


@pytest.mark.parametrize("flow", [SeqAfterSnapshot, RegisterAfterSeq])
def test_the_model_fails_when_two_steps_of_the_subscribe_order_are_swapped(flow: type[Subscribe]) -> None:
    """The model exercises the production order, and would catch a change to it: with
    the seq read after the snapshot is built (a snapshot can then lag its seq), or the
    subscription registered after the seq is read (an event in between is neither in
    the snapshot nor held), it finds an interleaving that breaks the promise."""
    found = settings(max_examples=2000, deadline=None, database=None, report_multiple_bugs=False)
    with pytest.raises(AssertionError):
        found(given(st.lists(OPS, min_size=15, max_size=60))(lambda ops: run(flow, ops)))()


def test_the_model_fails_when_a_response_does_not_wait_for_its_events() -> None:
    """The request path is the production one too (`core.responses`): a response that
    owed nothing (answered at once, as before responses waited) is caught."""
    found = settings(max_examples=2000, deadline=None, database=None, report_multiple_bugs=False)
    with pytest.raises(AssertionError):
        found(
            given(st.lists(OPS, min_size=15, max_size=60))(
                lambda ops: run(Subscribe, ops, lambda _state, _p: {})
            )
        )()


def test_the_fan_outs_inlined_budget_step_equals_outbox_extend() -> None:
    """`Router._deliver` inlines `Outbox.extend` (the one copy of the budget's
    arithmetic outside `Outbox`): the same run leaves the same outbox either way."""
    wire, router = Wire(limit=10_000), Router()
    live(wire, router, "t")
    wire.client.set_downstream(1234)
    twin = ClientState(10_000, Wire())
    twin.set_downstream(1234)
    for seq in (1, 2, 3):
        router.queue("t", seq, PAYLOAD)
    [(_topic, _last, delivered)] = router.fan_out()
    assert delivered == 3
    frames = list(wire.client.frames)
    assert twin.extend(frames, sum(f.size for f in frames))
    client = wire.client
    assert (client.pending, client.room, client.frames) == (twin.pending, twin.room, twin.frames)


def test_the_model_fails_when_a_snapshot_is_shared_across_seqs() -> None:
    """Sharing is the production rule too (`core.snapshots.key`): a snapshot reused for
    a subscribe that read another seq - one keyed by topic alone - is caught."""
    found = settings(max_examples=2000, deadline=None, database=None, report_multiple_bugs=False)
    by_topic_alone = lambda topic, _seq, view: (topic, 0, view)  # noqa: E731
    with pytest.raises(AssertionError):
        found(
            given(st.lists(OPS, min_size=15, max_size=60))(
                lambda ops: run(Subscribe, ops, keys=by_topic_alone)
            )
        )()


def test_subscribes_of_one_topic_version_share_one_snapshot_build() -> None:
    """Ten subscribes that read the same seq: one build; after an event, the next
    subscribe builds anew."""
    model = Model()
    for _ in range(10):
        model.step("subscribe", "a", 0)
    while model.pending:
        model.step("advance", "a", 0)
    assert model.builds == 1
    model.step("publish", "a", 0)
    model.step("tick", "a", 0)
    model.step("subscribe", "a", 0)
    while model.pending:
        model.step("advance", "a", 0)
    assert model.builds == 2
