"""The I/O-free core: what to send to whom, in which order, and when to give up on a client.

No asyncio, no aiohttp, no sockets: events in, decisions out, in the manner of
python-websockets' and h11's protocol objects. The aiohttp layer around it
(`..connection`, `..writer`) only moves bytes and reports how many are still in
flight. Every ordering guarantee of docs/protocol.md is kept here and unit-tested
here (`tests/test_core.py`, with hypothesis-generated interleavings).

- `Outbox`: one connection's encoded frames waiting for the next write, bounded in
  bytes together with what is already downstream (transport and kernel).
- `ClientState`: one connection's subscriptions, each a small state machine
  (buffering while its snapshot is built → live), writing into its outbox - which
  it is (a subclass: one object per connection, not two).
- `Router`: topic → subscriptions; events are queued as published and fanned out
  once per tick, a run of one topic's events as one step per subscriber.
- `inbound.plan`: what one parsed client frame asks (a pong, a call, topics to
  subscribe to - each charged to the rate limit - or to leave, refusals).
- `subscribe.Subscribe`: one subscribe's steps and their order (registered, watched,
  seq read, snapshot built, fitted, live); the hub performs the steps that await.
- `responses`: which events a call's response must follow (`owed`), and the
  responses held until the fan-out routed them (`Holds`).
- `ChannelInterest`: a node's wish for each backplane channel and the SUBSCRIBE /
  UNSUBSCRIBE commands that keep the backplane's state equal to it, in order
  (`tests/test_interest.py`: a hypothesis model against a fake backplane).
- `ClientLimits`: a connection's rate limits (two token buckets and its strikes),
  with the clock passed in; `TokenBucket`: one bucket, for an app's own limits.
"""

from .client import ClientState, Subscription
from .interest import ChannelInterest
from .outbox import Outbox
from .ratelimit import ClientLimits, TokenBucket
from .router import Router

__all__ = [
    "ChannelInterest",
    "ClientLimits",
    "ClientState",
    "Outbox",
    "Router",
    "Subscription",
    "TokenBucket",
]
