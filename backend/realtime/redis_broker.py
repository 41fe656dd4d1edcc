"""A broker on Redis, for several processes or hosts serving one topic space.

Numbering and fan-out in one atomic step: a Lua script INCRs the topic's seq key and
PUBLISHes ``<seq> <payload>`` on the topic's channel. Redis runs scripts one at a time
and delivers one channel's messages in publish order, so every node sees each
topic's events with the same seqs, in seq order (docs/scaling.md).

A fenced publish (`fence`, the demo's outbox row id: it grows with the topic's commit
order) is numbered only if its fence is above the topic's last one, in the same
script: a publisher that timed out, or lost its database lock, and reaches Redis late
cannot put an older state after a newer one, nor publish one event twice.

A node SUBSCRIBEs to a topic's channel when its first local subscriber arrives
(`watch`, which returns once Redis confirmed *that* subscription, so a seq read after
it is followed by every later event) and UNSUBSCRIBEs after its last (`unwatch`): no
node receives topics nobody on it reads. The subscription connection, and how it
never goes deaf without saying so, is `redis_subscription.Subscription`.

Redis pub/sub is at-most-once: what is published while a node's subscription
connection is down is gone. So the node never reconnects silently: when that
connection fails or falls silent, every watched topic is reported `lost` (the hub
closes its subscribers with 1013, and they resync from fresh snapshots), then the
node reconnects with backoff by itself. While Redis is unreachable, `watch`,
`last_seq`, `publish` and `check` raise `BrokerUnavailable` within `timeout_s`
instead of hanging. Commands share a bounded pool: past `max_connections` a command
waits for a connection (within its timeout) instead of failing - a burst of
subscribes queues, it does not answer `unavailable`.

Nodes also reach each other directly, for the SSE transport's POSTs (sse_forward.py):
each node listens on a channel of its own, ``<prefix>sse:<node>``, on the same
subscription connection (`listen_node`), and `send_to_node` publishes there. Like the
topics', those messages are at-most-once: the forwarding protocol acknowledges each.

Needs the `redis` extra: ``pip install aiohttp-realtime[redis]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import metrics
from .broker import BrokerUnavailable, Deliver, Fence, Lost
from .redis_subscription import NodeMessage, Subscription

#: KEYS: seq, channel, fence. ARGV: payload, fence token ('' for none), the fence key's
#: lifetime in seconds. Returns the seq, or 0 when the token is not above the topic's
#: last one in the fence's scope (nothing numbered or published).
log = logging.getLogger(__name__)

_PUBLISH = """
if ARGV[2] ~= '' then
  local fence = tonumber(ARGV[2])
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  if fence <= last then
    return 0
  end
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. ' ' .. ARGV[1])
return seq
"""


#: How long a topic's fence outlives its last fenced publish. A late publisher arrives
#: within seconds (its publish's timeout); the lifetime bounds the keys of topics and
#: scopes no longer written.
_FENCE_TTL_S = 24 * 3600


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "realtime:",
        timeout_s: float = 2.0,
        reconnect_max_s: float = 5.0,
        ping_interval_s: float = 2.0,
        audit_interval_s: float = 4.0,
        max_connections: int = 64,
    ) -> None:
        """`prefix` namespaces every key and channel (one per deployment, or per test).
        `timeout_s` bounds every command (and a subscription's confirmation);
        `ping_interval_s` and `audit_interval_s` bound how long a node can be deaf
        (`redis_subscription`); `max_connections` sizes the command pool."""
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._commands = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                socket_timeout=None,
                # A pooled connection idle for a second is PINGed before use, so one left
                # over from before a Redis restart is replaced before a command is sent.
                health_check_interval=1,
            ),
            # No retries: a retried publish could number an event twice.
            retry=Retry(NoBackoff(), 0),
        )
        self._publish_script = self._commands.register_script(_PUBLISH)
        self._subscription = Subscription(
            url,
            channel=self._channel,
            seq_key=self._seq_key,
            control=f"{prefix}control",
            commands=self._commands,
            timeout_s=timeout_s,
            reconnect_max_s=reconnect_max_s,
            ping_interval_s=ping_interval_s,
            audit_interval_s=audit_interval_s,
        )

    # ------------------------------------------------------------ names

    def _seq_key(self, topic: str) -> str:
        return f"{self._prefix}seq:{topic}"

    def _fence_key(self, topic: str, scope: str) -> str:
        return f"{self._prefix}fence:{scope}:{topic}"

    def _channel(self, topic: str) -> str:
        return f"{self._prefix}ch:{topic}"

    def _node_channel(self, node: str) -> str:
        return f"{self._prefix}sse:{node}"

    # ------------------------------------------------------------ lifecycle

    @property
    def healthy(self) -> bool:
        """Whether the subscription connection is up and heard from (readiness)."""
        return self._subscription.healthy

    async def start(self, deliver: Deliver, lost: Lost | None = None) -> None:
        await self._subscription.start(deliver, lost)

    async def stop(self) -> None:
        await self._subscription.stop()
        await self._commands.aclose()
        await self._commands.connection_pool.aclose()  # a pool passed in is not closed with the client

    # ------------------------------------------------------------ the contract

    async def watch(self, topic: str) -> None:
        await self._subscription.watch(topic)

    def unwatch(self, topic: str) -> None:
        self._subscription.unwatch(topic)

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        if fence is None:
            # Not retried: a retry of a publish that did reach Redis would number it twice.
            keys = [self._seq_key(topic), self._channel(topic), self._channel(topic)]
            return int(await self._command(self._publish_script, keys, [payload, "", 0], attempts=1))
        # Retried once (a stale pooled connection fails its first use): a publish that
        # did reach Redis the first time is refused the second, by its own fence.
        keys = [self._seq_key(topic), self._channel(topic), self._fence_key(topic, fence.scope)]
        seq = int(await self._command(self._publish_script, keys, [payload, fence.token, _FENCE_TTL_S]))
        if not seq:
            metrics.publish_refused()
            msg = "%s: a publish fenced at %s:%d was refused (a newer one went out)"
            log.info(msg, topic, fence.scope, fence.token)
        return seq

    async def last_seq(self, topic: str) -> int:
        value = await self._command(self._commands.get, self._seq_key(topic))
        seq = int(value) if value is not None else 0
        self._subscription.read_seq(topic, seq)
        return seq

    async def check(self) -> None:
        if not self._subscription.healthy:
            raise BrokerUnavailable("the redis subscription connection is down or silent")
        await self._command(self._commands.ping)

    async def _command(self, command: Callable[..., Awaitable[Any]], *args: Any, attempts: int = 2) -> Any:
        """A command within `timeout_s`. Commands that may be repeated (reads, fenced
        publishes) are tried again once after a connection error - a pooled connection
        left over from before a Redis restart fails its first use at once - but never
        after a timeout: a slow Redis is not asked twice (a unit holding its topics'
        locks would hold them twice as long)."""
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await command(*args)
            except (TimeoutError, RedisTimeoutError) as exc:
                raise BrokerUnavailable(f"redis: {exc!r}") from exc
            except (RedisError, OSError) as exc:
                if attempt == attempts:
                    raise BrokerUnavailable(f"redis: {exc!r}") from exc
        raise AssertionError("unreachable")

    def __len__(self) -> int:
        """Topics watched by this node."""
        return len(self._subscription)

    # ------------------------------------------------------------ node to node

    @property
    def timeout_s(self) -> float:
        """What bounds every command (and an answer from another node)."""
        return self._timeout_s

    def listen_node(self, node: str, receive: NodeMessage) -> None:
        """Before `start`: messages published to `node` (`send_to_node`) go to
        `receive`, on the event loop, in publish order; the channel is subscribed with
        the connection (and again after each reconnect). Must not await or raise."""
        self._subscription.listen(self._node_channel(node), receive)

    async def send_to_node(self, node: str, message: bytes) -> int:
        """Publish `message` to `node`'s channel: how many nodes listen there (0: no
        such node now). Not retried (the receiver acts on it); at most once."""
        return int(await self._command(self._commands.publish, self._node_channel(node), message, attempts=1))
