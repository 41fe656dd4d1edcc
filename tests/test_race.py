"""Many clients subscribing while events are published at a high rate: each one's
snapshot + events must reconstruct exactly the final state, with contiguous seqs."""

from __future__ import annotations

import asyncio
import random

from tests.libapp import apply
from tests.support import WsClient

CLIENTS = 40
EVENTS = 3000
KEYS = 30


class RacingClient:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.subscribed = asyncio.Event()
        self.ws: WsClient | None = None
        self.state: dict[str, int] = {}
        self.last_seq: int | None = None
        self.snapshots = 0

    async def run(self, client) -> None:
        for _ in range(self.rng.randrange(300)):
            await asyncio.sleep(0)  # subscribe at a random point of the publishing
        self.ws = await WsClient.connect(client)
        await self.ws.subscribe("items")
        self.subscribed.set()
        resubscribe_at = self.rng.randrange(50, 500)
        while (frame := await self.ws.recv()) != {"type": "pong", "id": "final"}:
            assert frame["type"] in {"snapshot", "event"}, frame
            if frame["type"] == "event":
                assert self.last_seq is not None, "event before its snapshot"
                assert frame["seq"] == self.last_seq + 1, (self.last_seq, frame["seq"])
            else:
                self.snapshots += 1
            self.last_seq = frame["seq"]
            apply(self.state, frame)
            if frame["seq"] == resubscribe_at:
                await self.ws.subscribe("items")  # a fresh snapshot mid-stream


async def test_concurrent_subscribes_reconstruct_the_final_state(lib_client):
    client, hub, state, _ = await lib_client()
    state.provider_yields = True  # snapshot builds interleave with publishing
    rng = random.Random(1234)
    await hub.broker.watch("items")  # number every event, also those before the first subscriber
    racers = [RacingClient(random.Random(rng.random())) for _ in range(CLIENTS)]
    tasks = [asyncio.create_task(r.run(client)) for r in racers]
    for i in range(EVENTS):
        await state.set(hub, f"k{rng.randrange(KEYS)}", i)
        if i % 5 == 0:
            await asyncio.sleep(0)  # let clients connect and subscribe meanwhile
    subscribed_late = sum(not r.subscribed.is_set() for r in racers)
    await asyncio.gather(*(r.subscribed.wait() for r in racers))
    for r in racers:
        await r.ws.send({"type": "ping", "id": "final"})  # barrier after the last event
    await asyncio.wait_for(asyncio.gather(*tasks), 60)

    final_seq = await hub.broker.last_seq("items")
    assert final_seq == EVENTS
    assert subscribed_late < CLIENTS // 2, "most subscribes must race with publishing"
    for r in racers:
        assert r.last_seq == final_seq
        assert r.state == state.items["a"]
    assert sum(r.snapshots for r in racers) > CLIENTS  # some re-subscribed mid-stream
