"""The I/O-free core: what to send to whom, in which order, and when to give up on a client.

No asyncio, no aiohttp, no sockets: events in, decisions out, in the manner of
python-websockets' and h11's protocol objects. The aiohttp layer around it
(`..connection`, `..writer`) only moves bytes and reports how many are still in
flight. Every ordering guarantee of docs/protocol.md is kept here and unit-tested
here (`tests/test_core.py`, with hypothesis-generated interleavings).

- `Outbox`: one connection's encoded frames waiting for the next write, bounded in
  bytes together with what is already downstream (transport and kernel).
- `ClientState`: one connection's subscriptions, each a small state machine
  (buffering while its snapshot is built → live), writing into its outbox.
- `Router`: topic → subscriptions; routing an event is an append per subscriber.
- `TokenBucket`, `Strikes`: the per-connection rate limits, with the clock passed in.
"""

from .client import ClientState, Subscription
from .outbox import Outbox
from .ratelimit import Strikes, TokenBucket
from .router import Router

__all__ = ["ClientState", "Outbox", "Router", "Strikes", "Subscription", "TokenBucket"]
