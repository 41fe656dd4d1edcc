"""A node's subscription connection to Redis: the channels it listens to, and proof that
it still hears them.

Three ways a node can go deaf to a topic while its subscribers stay "live", and what
closes each:

1. A SUBSCRIBE overtaken by an older UNSUBSCRIBE (a subscribe racing the last
   unsubscribe). Every command is decided by `core.ChannelInterest`, in the order the
   node asked, and sent by one task (`_send`), in that order, on this one connection:
   the last command Redis applies is always the node's wish.
2. A connection dead without a FIN (a half-open cut: a middlebox dropping idle flows,
   a failover). Redis answers a PING on a subscribed connection with a `pong` message,
   so the reader hears *something* at least every `ping_interval_s`; silence for
   `ping_interval_s + timeout_s` ends the connection (`_keepalive`), as TCP keepalive
   also would, more slowly. Everything it carried is reported `lost` - the hub closes
   those subscribers with 1013 and they resync - and the node reconnects.
3. Anything else that loses messages silently (a bug, a proxy). Every
   `audit_interval_s` the node reads the seq of each channel it is confirmed on
   (`_audit`: one MGET) and compares with the previous read: an event that was
   numbered before the previous read and has still not arrived a whole interval later
   is lost, and the topic is resynced (its subscribers closed, the channel subscribed
   anew by the next one). A seq jump between two delivered events is closed by each
   subscription's own gap check (`core.ClientState`).

So a node is deaf to a topic for at most `ping_interval_s + timeout_s` (plus one
reconnect) after a cut, and at most two audit intervals otherwise; never indefinitely
(docs/scaling.md states the bounds with the defaults).

The same connection carries the node's own channel (`listen`: the SSE transport's
forwarded POSTs, sse_forward.py), subscribed with the control channel on every
connect, so it is back whenever the connection is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import metrics
from .broker import BrokerUnavailable, Deliver, Lost
from .core.interest import ChannelInterest, Kind, OutOfOrder

log = logging.getLogger(__name__)

#: How many seq keys one audit reads per MGET.
_AUDIT_BATCH = 1000

#: A message on the node's own channel (its data). Must not await or raise.
NodeMessage = Callable[[bytes], None]


async def _uncancelled(command: Awaitable[Any]) -> None:
    """Await a redis-py command, and raise the cancellation it may swallow (redis-py 8
    returns normally from a pub/sub command cancelled mid-send): a task told to stop
    must stop, or `stop()` waits for it forever."""
    await command
    _stop_if_cancelled()


def _stop_if_cancelled() -> None:
    """Raise the current task's pending cancellation, if something swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Deaf(Exception):
    """The subscription connection went silent: it cannot be trusted any more."""


class Subscription:
    """The subscription connection, its channels and its liveness; `RedisBroker` owns one."""

    def __init__(
        self,
        url: str,
        *,
        channel: Callable[[str], str],
        seq_key: Callable[[str], str],
        control: str,
        commands: aioredis.Redis,
        timeout_s: float,
        reconnect_max_s: float,
        ping_interval_s: float,
        audit_interval_s: float,
    ) -> None:
        self._url = url
        self._channel = channel
        self._seq_key = seq_key
        self._control = control
        self._commands = commands
        self._timeout_s = timeout_s
        self._reconnect_max_s = reconnect_max_s
        self._ping_interval_s = ping_interval_s
        self._audit_interval_s = audit_interval_s
        self._pubsub: Any = None
        self._deliver: Deliver | None = None
        self._lost: Lost | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._interest: ChannelInterest[asyncio.Future[None]] = ChannelInterest()
        #: Commands decided by `_interest`, not yet sent: (kind, topic), in order.
        self._outgoing: list[tuple[Kind, str]] = []
        self._wake_sender = asyncio.Event()
        self._connected = asyncio.Event()
        #: When the connection last brought anything (a message, a reply, a pong).
        self._heard_at = 0.0
        #: Topic → the last seq delivered here.
        self._heard: dict[str, int] = {}
        #: Topic → [the seq first read after the channel was confirmed, the seq read at
        #: the previous audit]; a new list each time the topic is watched anew, so an
        #: audit read that started before can tell (identity) and is skipped.
        self._audited: dict[str, list[int]] = {}
        #: The node's own channel and what receives its messages (`listen`).
        self._node_channel: bytes | None = None
        self._node_receive: NodeMessage | None = None

    def listen(self, channel: str, receive: NodeMessage) -> None:
        """Subscribe `channel` with the control channel at every connect (set before
        `start`); its messages go to `receive`."""
        self._node_channel, self._node_receive = channel.encode(), receive

    # ------------------------------------------------------------ lifecycle

    @property
    def healthy(self) -> bool:
        """Connected, and heard from within the keepalive's bound."""
        silent = time.monotonic() - self._heard_at
        return self._connected.is_set() and silent <= self._ping_interval_s + self._timeout_s

    async def start(self, deliver: Deliver, lost: Lost | None) -> None:
        self._deliver, self._lost = deliver, lost
        self._runner = asyncio.create_task(self._run(), name="redis-subscription")
        # Serve even if Redis is down at start: subscribes fail fast until it is up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await self._connected.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._close()

    # ------------------------------------------------------------ interest

    async def watch(self, topic: str) -> None:
        if not self._connected.is_set():
            raise BrokerUnavailable("redis is unreachable")
        waiter = asyncio.get_running_loop().create_future()
        command, ready = self._interest.want(topic, waiter)
        if command is not None:
            self._queue(command, topic)
        if ready:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            raise BrokerUnavailable("redis did not confirm the subscription in time") from None

    def unwatch(self, topic: str) -> None:
        self._forget(topic)
        command = self._interest.drop(topic)
        if command is not None and self._connected.is_set():
            self._queue(command, topic)

    def _queue(self, command: Kind, topic: str) -> None:
        self._outgoing.append((command, topic))
        self._wake_sender.set()

    def read_seq(self, topic: str, seq: int) -> None:
        """The topic's seq, read after its channel was confirmed (the hub reads it right
        after `watch`, for the first subscriber's snapshot): the audit's starting point -
        every event numbered after it must arrive here."""
        if topic not in self._audited and self._interest.ready(topic):
            self._audited[topic] = [seq, seq]

    def _forget(self, topic: str) -> None:
        self._heard.pop(topic, None)
        self._audited.pop(topic, None)

    def __len__(self) -> int:
        return len(self._interest)

    # ------------------------------------------------------------ the connection

    async def _run(self) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                await self._connect()
                delay = 0.05
                await self._serve()
            except (RedisError, OSError, TimeoutError, Deaf, OutOfOrder) as exc:
                if self._connected.is_set():
                    log.warning("redis subscription lost (%r): resyncing %d topic(s)", exc, len(self))
                    metrics.backplane_resynced("silent" if isinstance(exc, Deaf) else "lost")
                self._on_disconnect()
            except Exception:
                log.exception("redis subscription failed: resyncing %d topic(s)", len(self))
                self._on_disconnect()
            if self._stopping:  # a cancel that redis-py swallowed
                raise asyncio.CancelledError
            await asyncio.sleep(delay)  # a backoff between attempts, not a synchronisation
            delay = min(delay * 2, self._reconnect_max_s)

    async def _serve(self) -> None:
        """The connection's four loops, until one fails (none returns)."""
        tasks = [
            asyncio.create_task(loop()) for loop in (self._read, self._send, self._keepalive, self._audit)
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    def _client(self) -> aioredis.Redis:
        # No retries and no redis-py health checks: a silently reconnected connection
        # would hide what was lost meanwhile, and redis-py swallows its own pongs,
        # which are this connection's proof of life (`_keepalive`). TCP keepalive is a
        # second, slower net.
        tcp: dict[str, Any] = {}
        if not self._url.startswith("unix:"):  # a Unix socket has no TCP keepalive
            options = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3}
            tcp = {"socket_keepalive": True, "socket_keepalive_options": options}
        return aioredis.Redis.from_url(
            self._url, socket_connect_timeout=self._timeout_s, retry=Retry(NoBackoff(), 0), **tcp
        )

    async def _connect(self) -> None:
        await self._close()
        self._pubsub = self._client().pubsub()
        channels = [self._control]
        if self._node_channel is not None:
            channels.append(self._node_channel.decode())
        async with asyncio.timeout(self._timeout_s):
            await self._pubsub.subscribe(*channels)
            confirmed = 0
            while confirmed < len(channels):  # every confirmation: the connection works
                message = await self._pubsub.get_message(timeout=self._timeout_s)
                if message is not None and message["type"] == "subscribe":
                    confirmed += 1
        self._heard_at = time.monotonic()
        self._connected.set()
        log.info("redis subscription connection up")

    async def _read(self) -> None:
        deliver, interest, heard = self._deliver, self._interest, self._heard
        prefix = len(self._channel(""))
        node_channel, node_receive = self._node_channel, self._node_receive
        while True:
            message = await self._pubsub.get_message(timeout=None)
            self._heard_at = time.monotonic()
            if message is None:
                continue
            kind = message["type"]
            if kind == "message" and message["channel"] == node_channel:
                if node_receive is not None:
                    node_receive(message["data"])
            elif kind == "message":
                topic = message["channel"].decode()[prefix:]
                seq, _, payload = message["data"].partition(b" ")
                if deliver is not None and interest.wanted(topic):
                    heard[topic] = int(seq)
                    deliver(topic, int(seq), payload)
            elif kind in ("subscribe", "unsubscribe"):
                channel = message["channel"].decode()
                if channel != self._control and message["channel"] != node_channel:
                    for waiter in interest.answered(channel[prefix:], kind):
                        if not waiter.done():
                            waiter.set_result(None)

    async def _send(self) -> None:
        """Sends the decided commands in order; consecutive ones of a kind as one
        command (SUBSCRIBE a b c answers a, b, c in order, like three commands)."""
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            outgoing, self._outgoing = self._outgoing, []
            i = 0
            while i < len(outgoing):
                kind = outgoing[i][0]
                j = i
                while j < len(outgoing) and outgoing[j][0] == kind:
                    j += 1
                channels = [self._channel(topic) for _kind, topic in outgoing[i:j]]
                command = self._pubsub.subscribe if kind == "subscribe" else self._pubsub.unsubscribe
                # A write that cannot finish in time (a full send buffer: Redis frozen,
                # or the connection cut) ends the connection, like silence does.
                async with asyncio.timeout(self._timeout_s):
                    await _uncancelled(command(*channels))
                i = j

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval_s)  # a period, not a synchronisation
            silent = time.monotonic() - self._heard_at
            if silent > self._ping_interval_s + self._timeout_s:
                raise Deaf(f"nothing heard for {silent:.1f} s")
            if silent >= self._ping_interval_s:
                async with asyncio.timeout(self._timeout_s):  # a write that blocks is silence too
                    await _uncancelled(self._pubsub.ping())  # answered by a `pong` message, read by `_read`

    async def _audit(self) -> None:
        while True:
            await asyncio.sleep(self._audit_interval_s)  # a period, not a synchronisation
            audited = list(self._audited.items())  # started by `read_seq`, after confirmation
            for start in range(0, len(audited), _AUDIT_BATCH):
                batch = audited[start : start + _AUDIT_BATCH]
                try:
                    async with asyncio.timeout(self._timeout_s):
                        values = await self._commands.mget([self._seq_key(topic) for topic, _ in batch])
                except (RedisError, OSError, TimeoutError) as exc:
                    # The command pool's trouble (busy, a stale connection, a slow
                    # Redis), not this connection's: skip this round. The next one
                    # compares with the last good read, so nothing is missed.
                    log.info("seq audit skipped: %r", exc)
                    break
                for (topic, marks), value in zip(batch, values, strict=True):
                    # Skipped if the topic was given up (and maybe watched anew) meanwhile.
                    if self._audited.get(topic) is marks and self._interest.ready(topic):
                        self._check(topic, marks, int(value) if value is not None else 0)

    def _check(self, topic: str, marks: list[int], seq: int) -> None:
        """One audit of `topic`: everything numbered by the previous audit (and after the
        seq first read once Redis had confirmed the channel) must have arrived."""
        floor, owed = marks
        heard = max(self._heard.get(topic, 0), floor)
        if heard < owed:
            log.warning("%s: seq %d was numbered but only %d arrived; resyncing", topic, owed, heard)
            metrics.backplane_resynced("audit")
            self.unwatch(topic)
            if self._lost is not None:
                self._lost(topic)
            return
        marks[1] = seq

    def _on_disconnect(self) -> None:
        self._connected.clear()
        self._outgoing.clear()
        self._heard.clear()
        self._audited.clear()
        topics, waiters = self._interest.reset()
        error = BrokerUnavailable("redis connection lost")
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: the watcher gets it, or nobody needs it
        if self._lost is not None:
            for topic in topics:
                self._lost(topic)

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.connection_pool.aclose()
