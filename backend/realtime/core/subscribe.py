"""One subscribe, from the client's frame to a live subscription: the order of its steps.

The promise (docs/protocol.md): the topic's snapshot, then every event with a larger
seq, in order, without a gap or a duplicate - or the connection is closed. Under races
it holds because of the order, decided here and nowhere else:

1. *register* the subscription, buffering (from now on every event routed to the topic
   is held for it);
2. *watch*: the broker delivers the topic to this node (a network broker confirms its
   channel subscription) - before that, events could pass the node by;
3. *read the seq*: every event numbered after it will reach the buffer;
4. *build* the snapshot: it reflects at least every event up to that seq;
5. *fit* it into the client's budget (waiting for the client's own backlog to drain);
6. *go live*: the snapshot, then the held events it does not reflect.

Any other order loses the promise: a seq read before the watch misses events numbered
in between; a snapshot built before the seq is read can lag it and skip an event; an
event that arrives before registration is not held (tests/test_core.py's model
drives this class and fails on each swap).

`Subscribe` is a state machine without I/O. Steps that need I/O are returned for the
caller to perform (`Step`), and their outcome is fed back (`authorized`, `watched`,
`seq_read`, `built`, `fitted`, `failed`), which returns the next step, or None when the
subscribe is over. Everything else - refusals, registration, the error frames, going
live, the eviction of a client with no room - happens here.
"""

from __future__ import annotations

import enum

from ..errors import ErrorCode
from ..frames import Frame, error_frame
from .client import ClientState, Subscription
from .router import Router


class Step(enum.Enum):
    """A subscribe's steps; all but `REGISTER` are performed by the I/O layer."""

    REGISTER = "register"  # done here: the subscription, buffering
    AUTHORIZE = "authorize"  # the app's `authorize` hook for (principal, topic)
    WATCH = "watch"  # until the broker delivers the topic here (`Subscribe.first`: ask it)
    READ_SEQ = "read_seq"  # the broker's last seq of the topic
    BUILD = "build"  # the snapshot's payload, from the topic's provider
    FIT = "fit"  # until `Subscribe.snapshot` fits the client's budget, or the wait's end
    RELEASE = "release"  # give the subscription up (it failed): detach, and unwatch if last


class Subscribe:
    #: The order (the module's docstring says why). After it: fit, then live.
    ORDER: tuple[Step, ...] = (Step.REGISTER, Step.WATCH, Step.READ_SEQ, Step.BUILD)

    __slots__ = (
        "_max_snapshot_bytes",
        "_message",
        "_router",
        "_seq",
        "_state",
        "epoch",
        "error",
        "first",
        "new",
        "request_id",
        "snapshot",
        "sub",
        "topic",
    )

    def __init__(
        self,
        state: ClientState,
        router: Router,
        topic: str,
        request_id: str | None,
        *,
        max_snapshot_bytes: int,
    ) -> None:
        self._state = state
        self._router = router
        self._max_snapshot_bytes = max_snapshot_bytes
        self.topic = topic
        self.request_id = request_id
        self.sub: Subscription | None = None
        self.epoch = 0
        #: The subscription is new on this connection (metrics count it).
        self.new = False
        #: It is the topic's first on this node: the I/O layer asks the broker to watch.
        self.first = False
        self._seq = 0
        self.snapshot: Frame | None = None
        #: The error code the subscribe ended with, if it was refused or failed.
        self.error: ErrorCode | None = None
        self._message = ""

    # ------------------------------------------------------------ the steps

    def start(self, *, known: bool, max_topics: int, authorize: bool) -> Step | None:
        """The frame asks for the topic: `known` (the registry resolves it), the
        connection's topic limit, whether the app authorizes subscribes."""
        state = self._state
        if state.closing:
            return None
        if not known:
            return self._refuse(ErrorCode.UNKNOWN_TOPIC, "no such topic")
        if self.topic not in state.subscriptions and len(state.subscriptions) >= max_topics:
            return self._refuse(ErrorCode.TOO_MANY_TOPICS, f"at most {max_topics} topics per connection")
        return Step.AUTHORIZE if authorize else self._after(None)

    def authorized(self, allowed: bool) -> Step | None:
        if not allowed:
            return self._refuse(ErrorCode.FORBIDDEN, "this connection may not subscribe to this topic")
        if self._state.closing:  # closed while the hook ran
            return None
        return self._after(None)

    def _after(self, done: Step | None) -> Step | None:
        """The step that follows `done` (None: the first), registering on the way."""
        order = self.ORDER
        i = 0 if done is None else order.index(done) + 1
        while i < len(order) and order[i] is Step.REGISTER:
            self._register()
            i += 1
        return order[i] if i < len(order) else self._snapshot()

    def _register(self) -> None:
        """Step 1: buffering from here on (a re-subscribe: buffering again)."""
        sub, self.new = self._state.subscribe(self.topic)
        self.first = self.new and self._router.attach(sub)
        self.sub, self.epoch = sub, sub.epoch

    def watched(self) -> Step | None:
        """Step 2 done: the broker delivers the topic here."""
        return self._after(Step.WATCH)

    def seq_read(self, seq: int) -> Step | None:
        """Step 3 done: every event after `seq` reaches the subscription."""
        self._seq = seq
        return self._after(Step.READ_SEQ)

    @property
    def seq(self) -> int:
        """The seq read (step 3): the snapshot must reflect at least it."""
        return self._seq

    def built(self, snapshot: Frame) -> Step | None:
        """Step 4 done: the snapshot frame of `topic` at `seq` (built for this
        subscriber, or shared: `core.snapshots` says when that is the same thing)."""
        self.snapshot = snapshot
        return self._after(Step.BUILD)

    def _snapshot(self) -> Step | None:
        snapshot = self.snapshot
        assert snapshot is not None
        if snapshot.size > self._max_snapshot_bytes:
            # Evicting instead would make the client reconnect, resubscribe and be
            # evicted again, forever; queuing it would let one subscribe pin any amount
            # of memory. Refuse this topic only.
            msg = f"the snapshot ({snapshot.size} bytes) exceeds max_snapshot_bytes"
            return self.failed(ErrorCode.SNAPSHOT_TOO_LARGE, msg)
        if snapshot.size > self._state.outbox.room:
            return Step.FIT
        self._go_live()
        return None

    def fitted(self, fits: bool) -> Step | None:
        """Step 5 done: whether the snapshot fits after the client's own backlog drained
        for a while. It does not: the client does not read (a client that reads is
        never evicted here, however often it re-subscribes)."""
        if fits:
            self._go_live()
        else:
            self._state.evict("snapshot_no_room")
        return None

    def _go_live(self) -> None:
        """Step 6 (a stale epoch - re-subscribed or unsubscribed since - is dropped)."""
        assert self.sub is not None and self.snapshot is not None
        self._state.go_live(self.sub, self.epoch, self._seq, self.snapshot)

    def failed(self, code: ErrorCode, message: str) -> Step | None:
        """A step failed (the broker unreachable, the provider failed or timed out, the
        topic gone): the subscription is given up, then the client told."""
        self.error = code
        self._message = message
        return Step.RELEASE if self.sub is not None else self.released()

    def released(self) -> Step | None:
        """The subscription was given up (`Step.RELEASE`): the client is told why."""
        assert self.error is not None
        self._state.send(Frame(error_frame(self.error, self._message, id=self.request_id, topic=self.topic)))
        return None

    def _refuse(self, code: ErrorCode, message: str) -> Step | None:
        self.error, self._message = code, message
        return self.released()
