"""core.ChannelInterest: a node's channel subscriptions can never end deaf, however its
asks and the backplane's answers interleave (the rules, then a hypothesis model against
a fake backplane, then the model shown to catch the bug it replaced)."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiohttp_realtime.core.interest import ChannelInterest, Kind, OutOfOrder


def test_first_want_subscribes_and_is_ready_on_its_own_answer() -> None:
    interest: ChannelInterest[str] = ChannelInterest()
    assert interest.want("a", "w1") == ("subscribe", False)
    assert interest.want("a", "w2") == (None, False)  # joins the SUBSCRIBE in flight
    assert interest.answered("a", "subscribe") == ["w1", "w2"]
    assert interest.want("a", "w3") == (None, True)
    assert interest.ready("a") and len(interest) == 1


def test_a_want_after_a_drop_subscribes_again_after_the_unsubscribe() -> None:
    interest: ChannelInterest[str] = ChannelInterest()
    interest.want("a", "w1")
    interest.answered("a", "subscribe")
    assert interest.drop("a") == "unsubscribe"
    assert interest.want("a", "w2") == ("subscribe", False)  # after the UNSUBSCRIBE, in order
    # The UNSUBSCRIBE's answer does not make w2 ready: only its own SUBSCRIBE's does.
    assert interest.answered("a", "unsubscribe") == []
    assert not interest.ready("a")
    assert interest.answered("a", "subscribe") == ["w2"]
    assert interest.ready("a")


def test_a_drop_during_the_subscribe_unsubscribes_after_it_and_forgets_the_channel() -> None:
    interest: ChannelInterest[str] = ChannelInterest()
    interest.want("a", "w1")
    assert interest.drop("a") == "unsubscribe"
    assert interest.drop("a") is None  # not wanted any more: nothing to send
    assert interest.answered("a", "subscribe") == ["w1"]  # its waiter still answered
    assert interest.answered("a", "unsubscribe") == []
    assert len(interest) == 0 and interest.topics() == []


def test_an_answer_nobody_asked_for_is_out_of_order() -> None:
    interest: ChannelInterest[str] = ChannelInterest()
    with pytest.raises(OutOfOrder):
        interest.answered("a", "subscribe")
    interest.want("a", "w1")
    with pytest.raises(OutOfOrder):
        interest.answered("a", "unsubscribe")


def test_reset_returns_the_wanted_channels_and_the_waiters_and_forgets_all() -> None:
    interest: ChannelInterest[str] = ChannelInterest()
    interest.want("a", "w1")
    interest.want("b", "w2")
    interest.answered("b", "subscribe")
    interest.want("c", "w3")
    interest.drop("c")
    wanted, waiters = interest.reset()
    assert sorted(wanted) == ["a", "b"] and sorted(waiters) == ["w1", "w3"]
    assert len(interest) == 0
    assert interest.want("a", "w4") == ("subscribe", False)  # a new connection starts over


# ---------------------------------------------------------------- the model

CHANNELS = st.sampled_from(["a", "b", "c"])


class InterestModel(RuleBasedStateMachine):
    """The node (the real `ChannelInterest`) against a backplane that applies one
    connection's commands in order and answers each in order, at any pace: the wire
    both ways is a FIFO whose progress hypothesis interleaves with the node's asks.

    Properties: (1) once the wire has drained, the backplane is subscribed to exactly
    the channels the node wants - never deaf, never listening for nothing; (2) a
    waiter made ready while its want still stands finds the channel subscribed, with
    no UNSUBSCRIBE on its way; (3) nothing is answered out of order."""

    #: The bug this replaced: an UNSUBSCRIBE sent by a task of its own, after commands
    #: decided later. The mutation test sets it and expects the model to fail.
    late_unsubscribe = False

    def __init__(self) -> None:
        super().__init__()
        self.interest: ChannelInterest[int] = ChannelInterest()
        self.backplane: set[str] = set()
        self.to_backplane: deque[tuple[Kind, str]] = deque()
        self.to_node: deque[tuple[Kind, str]] = deque()
        self.deferred: list[tuple[Kind, str]] = []
        #: Per channel, a generation that a drop or a reset ends.
        self.generation: dict[str, int] = {}
        self.waiting: dict[int, tuple[str, int]] = {}
        self.next_waiter = 0

    def _send(self, kind: Kind | None, channel: str) -> None:
        if kind is None:
            return
        if kind == "unsubscribe" and self.late_unsubscribe:
            self.deferred.append((kind, channel))
        else:
            self.to_backplane.append((kind, channel))

    def _ready(self, waiter: int) -> None:
        channel, generation = self.waiting.pop(waiter)
        if generation == self.generation.get(channel, 0):
            assert channel in self.backplane, f"{channel} ready but not subscribed"
            assert ("unsubscribe", channel) not in self.to_backplane

    @rule(channel=CHANNELS)
    def want(self, channel: str) -> None:
        waiter, self.next_waiter = self.next_waiter, self.next_waiter + 1
        self.waiting[waiter] = (channel, self.generation.get(channel, 0))
        kind, ready = self.interest.want(channel, waiter)
        self._send(kind, channel)
        if ready:
            self._ready(waiter)

    @rule(channel=CHANNELS)
    def drop(self, channel: str) -> None:
        if self.interest.wanted(channel):
            self.generation[channel] = self.generation.get(channel, 0) + 1
        self._send(self.interest.drop(channel), channel)

    @precondition(lambda self: self.deferred)
    @rule()
    def a_deferred_command_goes_out(self) -> None:
        self.to_backplane.append(self.deferred.pop(0))

    @precondition(lambda self: self.to_backplane)
    @rule()
    def backplane_applies_one(self) -> None:
        kind, channel = self.to_backplane.popleft()
        if kind == "subscribe":
            self.backplane.add(channel)
        else:
            self.backplane.discard(channel)
        self.to_node.append((kind, channel))

    @precondition(lambda self: self.to_node)
    @rule()
    def node_reads_one_answer(self) -> None:
        kind, channel = self.to_node.popleft()
        for waiter in self.interest.answered(channel, kind):
            self._ready(waiter)

    @rule()
    def connection_lost(self) -> None:
        wanted, waiters = self.interest.reset()
        for waiter in waiters:
            self.waiting.pop(waiter, None)
        for channel in wanted:
            self.generation[channel] = self.generation.get(channel, 0) + 1
        self.backplane.clear()  # a new connection subscribes to nothing
        self.to_backplane.clear()
        self.to_node.clear()
        self.deferred.clear()

    @invariant()
    def never_deaf_once_the_wire_drains(self) -> None:
        after = set(self.backplane)
        for kind, channel in [*self.to_backplane, *self.deferred]:
            (after.add if kind == "subscribe" else after.discard)(channel)
        assert after == set(self.interest.topics()), (after, self.interest.topics())

    def teardown(self) -> None:
        # Drain the wire: every standing want is then ready.
        while self.to_backplane or self.to_node or self.deferred:
            if self.deferred:
                self.a_deferred_command_goes_out()
            while self.to_backplane:
                self.backplane_applies_one()
            while self.to_node:
                self.node_reads_one_answer()
        stale = {w for w, (ch, gen) in self.waiting.items() if gen != self.generation.get(ch, 0)}
        assert set(self.waiting) == stale, "a standing want was never made ready"


def test_channel_interest_never_ends_deaf_under_any_interleaving() -> None:
    run_state_machine_as_test(
        InterestModel, settings=settings(max_examples=1500, stateful_step_count=40, deadline=None)
    )


class LateUnsubscribe(InterestModel):
    late_unsubscribe = True


def test_the_model_catches_an_unsubscribe_sent_late() -> None:
    """The model can fail: with the old bug (an UNSUBSCRIBE that goes out after a later
    SUBSCRIBE) it finds a node left deaf, or answers out of the node's order."""
    with pytest.raises((AssertionError, OutOfOrder)):
        run_state_machine_as_test(
            LateUnsubscribe,
            settings=settings(
                max_examples=1500,
                stateful_step_count=40,
                deadline=None,
                database=None,
                report_multiple_bugs=False,
            ),
        )
