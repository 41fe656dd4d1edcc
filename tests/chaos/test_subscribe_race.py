"""Case 1: on node X, a client unsubscribes from `sessions.activity:<id>` (X's last
subscriber of it leaves: X unsubscribes its Redis channel) in the same moment another
client of X subscribes to it (X's first subscriber again: X subscribes the channel),
over and over. After each pair a message is posted to the session on node Y, and the
new subscriber must receive its event. A new subscriber that got its snapshot and then
hears nothing is deaf: X's UNSUBSCRIBE overtook its SUBSCRIBE in Redis, and the client
believes it is live. Done when: 0 deaf in 1,000 pairs (long form; 200 in the short)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.nodes import Node
from tests.chaos.profile import DELIVERY_S, PROFILE
from tests.chaos.results import Report
from tests.chaos.sockets import Frame, RawSocket

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

LANES = 8
#: Addresses each lane posts from, in turn (the per-address write limit is 20/s).
POST_ADDRESSES = 3
SNAPSHOT_S = 10.0


class Subscriber:
    """One connection following one topic, or not, as the lane says."""

    def __init__(self, socket: RawSocket, topic: str) -> None:
        self.socket = socket
        self.topic = topic
        self.live = False
        self.seq = 0
        self.appended: set[str] = set()
        self.gaps: list[str] = []
        self.answered = asyncio.Event()
        self.answer: Frame | None = None
        self.arrived = asyncio.Event()
        socket.read_into(self._on_frame)

    def _on_frame(self, frame: Frame) -> None:
        if frame.get("topic") != self.topic:
            return
        kind = frame["type"]
        if kind in ("snapshot", "error") and not self.answered.is_set():
            self.answer = frame
            self.answered.set()
        if kind == "snapshot":
            self.live, self.seq = True, frame["seq"]
        elif kind == "event" and self.live:
            if frame["seq"] != self.seq + 1:
                self.gaps.append(f"expected seq {self.seq + 1}, got {frame['seq']}")
            self.seq = frame["seq"]
            if frame["payload"]["op"] == "append":
                self.appended.add(frame["payload"]["message"]["id"])
                self.arrived.set()

    async def send_subscribe(self) -> None:
        self.answered.clear()
        self.answer = None
        self.appended.clear()
        await self.socket.send({"type": "subscribe", "topics": [self.topic]})

    async def send_unsubscribe(self) -> None:
        self.live = False  # whatever still arrives for the topic belongs to the old subscription
        await self.socket.send({"type": "unsubscribe", "topics": [self.topic]})

    async def subscribed(self) -> str:
        """ "snapshot", an error code, "closed" or "no answer"."""
        waiting = asyncio.ensure_future(self.answered.wait())
        closing = asyncio.ensure_future(self.socket.closed.wait())
        try:
            await asyncio.wait({waiting, closing}, timeout=SNAPSHOT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            closing.cancel()
        if self.answer is not None:
            return "snapshot" if self.answer["type"] == "snapshot" else str(self.answer.get("code"))
        return "closed" if self.socket.closed.is_set() else "no answer"

    async def received(self, message_id: str) -> str:
        """ "received", "closed" or "deaf" (neither within DELIVERY_S)."""
        deadline = time.monotonic() + DELIVERY_S
        while message_id not in self.appended:
            if self.socket.closed.is_set():
                return "closed"
            left = deadline - time.monotonic()
            if left <= 0:
                return "deaf"
            self.arrived.clear()
            arrived = asyncio.ensure_future(self.arrived.wait())
            closing = asyncio.ensure_future(self.socket.closed.wait())
            try:
                await asyncio.wait({arrived, closing}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrived.cancel()
                closing.cancel()
        return "received"


async def _post(http: aiohttp.ClientSession, node: Node, session_id: str, text: str) -> str:
    """The new message's id; a rate-limited post waits and is sent again (bounded)."""
    for _ in range(20):
        async with http.post(
            f"{node.url}/api/sessions/{session_id}/messages", json={"role": "user", "text": text}
        ) as resp:
            if resp.status == 429:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))  # as the server asks
                continue
            assert resp.status == 201, (resp.status, await resp.text())
            message_id: str = (await resp.json())["id"]
            return message_id
    raise AssertionError("still rate limited after 20 tries")


async def _lane(
    d: Deployment, x: Node, y: Node, lane: int, session_id: str, pairs: int, tally: Callable[[str], None]
) -> list[str]:
    topic = f"sessions.activity:{session_id}"
    ws_http = d.http(lane)
    posters = [d.http(50 + lane * POST_ADDRESSES + i) for i in range(POST_ADDRESSES)]
    a = Subscriber(await RawSocket.connect(ws_http, x.ws_url), topic)
    b = Subscriber(await RawSocket.connect(ws_http, x.ws_url), topic)
    try:
        await a.send_subscribe()
        assert await a.subscribed() == "snapshot"
        holder, joiner = a, b
        rng = random.Random(lane)
        for i in range(pairs):
            sends = [holder.send_unsubscribe(), joiner.send_subscribe()]
            rng.shuffle(sends)  # which frame leaves first; both leave in the same moment
            await asyncio.gather(*sends)
            answer = await joiner.subscribed()
            if answer != "snapshot":
                tally(f"subscribe {answer}")
                return [f"lane {lane} pair {i}: subscribe answered {answer}"]
            message_id = await _post(posters[i % POST_ADDRESSES], y, session_id, f"lane {lane} pair {i}")
            tally(await joiner.received(message_id))
            if joiner.socket.closed.is_set():
                return [f"lane {lane} pair {i}: the new subscriber was closed ({joiner.socket.close_code})"]
            holder, joiner = joiner, holder
        return [f"lane {lane}: {gap}" for s in (a, b) for gap in s.gaps]
    finally:
        await a.socket.close()
        await b.socket.close()


async def test_a_subscribe_racing_the_last_unsubscribe_never_goes_deaf(deployment: Deployment) -> None:
    d = deployment
    report = Report("1", "racing unsubscribe/subscribe on one node")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=False)
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    sessions = await d.create_sessions(y, [f"lane {i}" for i in range(LANES)])
    counts: dict[str, int] = {}

    def tally(outcome: str) -> None:
        counts[outcome] = counts.get(outcome, 0) + 1

    per_lane = -(-PROFILE.race_pairs // LANES)
    started = time.monotonic()
    problems: list[Any] = await asyncio.gather(
        *(_lane(d, x, y, i, s["id"], per_lane, tally) for i, s in enumerate(sessions))
    )
    notes = [p for lane in problems for p in lane]
    pairs = sum(counts.values())
    deaf = counts.get("deaf", 0)
    report.note(
        pairs=pairs,
        received=counts.get("received", 0),
        deaf=deaf,
        closed=counts.get("closed", 0),
        subscribe_errors=sum(v for k, v in counts.items() if k.startswith("subscribe")),
        pairs_per_s=round(pairs / (time.monotonic() - started), 1),
    )
    report.expect(pairs >= PROFILE.race_pairs, f"{PROFILE.race_pairs} pairs run: {pairs} ({notes[:2]})")
    report.expect(deaf == 0, f"0 deaf new subscribers: {deaf} of {pairs}")
    report.expect(
        counts.get("received", 0) == pairs, f"every new subscriber receives the event: {counts}; {notes[:3]}"
    )
    report.finish()
