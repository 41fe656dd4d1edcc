"""A broker on Redis, for several processes or hosts serving one topic space.

Numbering and fan-out in one atomic step: a Lua script INCRs the topic's seq key and
PUBLISHes ``<seq> <payload>`` on the topic's channel. Redis runs scripts one at a time
and delivers one channel's messages in publish order, so every node sees each
topic's events with the same seqs, in seq order (docs/scaling.md).

A node SUBSCRIBEs to a topic's channel when its first local subscriber arrives
(`watch`, which returns once Redis confirmed the subscription, so a seq read after
it is followed by every later event) and UNSUBSCRIBEs after its last (`unwatch`):
no node receives topics nobody on it reads.

Redis pub/sub is at-most-once: what is published while a node's subscription
connection is down is gone. So the node never reconnects silently: when that
connection fails, every watched topic is reported `lost` (the hub closes its
subscribers with 1013, and they resync from fresh snapshots), then the node
reconnects with backoff by itself. While Redis is unreachable, `watch`, `last_seq`
and `publish` raise `BrokerUnavailable` within `timeout_s` instead of hanging.

Needs the `redis` extra: ``pip install aiohttp-realtime[redis]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .broker import BrokerUnavailable, Deliver, Lost

log = logging.getLogger(__name__)

_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. ' ' .. ARGV[1])
return seq
"""


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "realtime:",
        timeout_s: float = 2.0,
        reconnect_max_s: float = 5.0,
    ) -> None:
        """`prefix` namespaces every key and channel (one per deployment, or per test)."""
        self._url = url
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._reconnect_max_s = reconnect_max_s
        self._commands = self._client()
        self._publish_script = self._commands.register_script(_PUBLISH)
        self._pubsub: Any = None
        self._deliver: Deliver | None = None
        self._lost: Lost | None = None
        self._reader: asyncio.Task[None] | None = None
        #: Watched topics: done once Redis confirmed the subscription.
        self._watched: dict[str, asyncio.Future[None]] = {}
        self._connected = asyncio.Event()

    def _client(self) -> aioredis.Redis:
        # No retries: a retried publish would number an event twice, and a silently
        # reconnected subscription would hide the events lost meanwhile. A pooled
        # connection idle for a second is PINGed before use instead, so one left over
        # from before a Redis restart is replaced before a command is sent on it.
        return aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout_s,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=1,
        )

    # ------------------------------------------------------------ names

    def _seq_key(self, topic: str) -> str:
        return f"{self._prefix}seq:{topic}"

    def _channel(self, topic: str) -> str:
        return f"{self._prefix}ch:{topic}"

    @property
    def _control(self) -> str:
        return f"{self._prefix}control"

    # ------------------------------------------------------------ lifecycle

    @property
    def healthy(self) -> bool:
        """Whether the subscription connection is up (for readiness checks)."""
        return self._connected.is_set()

    async def start(self, deliver: Deliver, lost: Lost | None = None) -> None:
        self._deliver, self._lost = deliver, lost
        self._reader = asyncio.create_task(self._run(), name="redis-broker")
        # Serve even if Redis is down at start: subscribes fail fast until it is up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await self._connected.wait()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._close_pubsub()
        await self._commands.aclose()

    # ------------------------------------------------------------ the contract

    async def watch(self, topic: str) -> None:
        if not self._connected.is_set():
            raise BrokerUnavailable("redis is unreachable")
        confirmed = self._watched.get(topic)
        if confirmed is None or (confirmed.done() and confirmed.exception() is not None):
            confirmed = self._watched[topic] = asyncio.get_running_loop().create_future()
            try:
                await self._pubsub.subscribe(self._channel(topic))
            except (RedisError, OSError) as exc:
                self._watched.pop(topic, None)
                raise BrokerUnavailable(f"redis: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(confirmed)
        except TimeoutError:
            raise BrokerUnavailable("redis did not confirm the subscription in time") from None

    def unwatch(self, topic: str) -> None:
        if self._watched.pop(topic, None) is not None and self._connected.is_set():
            task = asyncio.get_running_loop().create_task(self._unsubscribe(self._channel(topic)))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _unsubscribe(self, channel: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(channel)

    async def publish(self, topic: str, payload: bytes) -> int:
        try:
            async with asyncio.timeout(self._timeout_s):
                seq = await self._publish_script(
                    keys=[self._seq_key(topic), self._channel(topic)], args=[payload]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"redis: {exc!r}") from exc
        return int(seq)

    async def last_seq(self, topic: str) -> int:
        for attempt in (1, 2):  # a read: safe to try again on a fresh connection
            try:
                async with asyncio.timeout(self._timeout_s):
                    value = await self._commands.get(self._seq_key(topic))
                return int(value) if value is not None else 0
            except (RedisError, OSError, TimeoutError) as exc:
                if attempt == 2:
                    raise BrokerUnavailable(f"redis: {exc!r}") from exc
        raise AssertionError("unreachable")

    def __len__(self) -> int:
        """Topics watched by this node."""
        return len(self._watched)

    # ------------------------------------------------------------ the subscription connection

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._connect()
                delay = 0.05
                await self._read()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._connected.is_set():
                    log.warning(
                        "redis subscription lost (%s): resyncing %d topic(s)", exc, len(self._watched)
                    )
                self._on_disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max_s)

    async def _connect(self) -> None:
        await self._close_pubsub()
        self._pubsub = self._client().pubsub()
        async with asyncio.timeout(self._timeout_s):
            await self._pubsub.subscribe(self._control)
            while True:  # until the control channel's confirmation: the connection works
                message = await self._pubsub.get_message(timeout=self._timeout_s)
                if message is not None and message["type"] == "subscribe":
                    break
        self._connected.set()
        log.info("redis subscription connection up")

    async def _read(self) -> None:
        deliver = self._deliver
        prefix = len(self._channel(""))
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "message":
                seq, _, payload = message["data"].partition(b" ")
                if deliver is not None:
                    deliver(channel[prefix:], int(seq), payload)
            elif kind == "subscribe" and channel != self._control:
                confirmed = self._watched.get(channel[prefix:])
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)

    def _on_disconnect(self) -> None:
        self._connected.clear()
        topics = list(self._watched)
        error = BrokerUnavailable("redis connection lost")
        for confirmed in self._watched.values():
            if not confirmed.done():
                confirmed.set_exception(error)
                confirmed.exception()  # retrieved: each waiter gets it
        self._watched.clear()
        if self._lost is not None:
            for topic in topics:
                self._lost(topic)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.connection_pool.aclose()
