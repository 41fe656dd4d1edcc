"""Case 7: 2,000 subscribes in one second (2,000/s), to many distinct topics
(`sessions.activity:<id>` of 500 sessions) over 400 connections to two nodes, at most
100 connections per source address (the nodes allow 256). Redis is healthy: a burst of
first subscribers means a burst of channel SUBSCRIBEs and seq reads on each node, and
none of them may be refused for want of a Redis connection. Done when: 0 `unavailable`
errors, and every subscribe answered by its snapshot."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.nodes import Node
from tests.chaos.profile import PROFILE
from tests.chaos.results import Report
from tests.chaos.sockets import Frame, RawSocket

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

SUBSCRIBES = 2000
RATE = 2000.0
SESSIONS = 500
CONNECTIONS_PER_NODE = 200
PER_ADDRESS = 100
ANSWER_S = 30.0


class Burst:
    def __init__(self) -> None:
        self.sent: dict[tuple[int, str], float] = {}
        self.answers: dict[tuple[int, str], tuple[str, float]] = {}
        self.all_answered = asyncio.Event()

    def reader(self, c: int) -> Callable[[Frame], None]:
        def on_frame(frame: Frame) -> None:
            topic = frame.get("topic")
            if frame.get("type") not in ("snapshot", "error") or not isinstance(topic, str):
                return
            key = (c, topic)
            if key in self.sent and key not in self.answers:
                answer = "snapshot" if frame["type"] == "snapshot" else str(frame.get("code"))
                self.answers[key] = (answer, time.monotonic() - self.sent[key])
                if len(self.answers) == SUBSCRIBES:
                    self.all_answered.set()

        return on_frame


async def _connect(d: Deployment, nodes: list[Node]) -> list[RawSocket]:
    sockets: list[RawSocket] = []
    for n, node in enumerate(nodes):
        for first in range(0, CONNECTIONS_PER_NODE, 50):
            http = d.http(400 + n * 10 + first // PER_ADDRESS)
            sockets += await asyncio.gather(*(RawSocket.connect(http, node.ws_url) for _ in range(50)))
    return sockets


async def test_2000_subscribes_at_2000_per_s_are_never_unavailable(deployment: Deployment) -> None:
    d = deployment
    report = Report("7", "2,000 subscribes at 2,000/s on a healthy Redis")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=False)
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    sessions = await d.create_sessions(x, [f"burst {i}" for i in range(SESSIONS)])
    topics = [f"sessions.activity:{s['id']}" for s in sessions]
    totals: Counter[str] = Counter()
    unanswered, latencies, rates = 0, [], []
    for _trial in range(PROFILE.trials):
        sockets = await _connect(d, [x, y])
        burst = Burst()
        try:
            for c, socket in enumerate(sockets):
                socket.read_into(burst.reader(c))
            started = time.monotonic()
            for i in range(SUBSCRIBES):
                c = i % len(sockets)
                topic = topics[i % SESSIONS]  # a connection's five subscribes are five topics
                ahead = started + i / RATE - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)  # the pace: 2,000 per second
                burst.sent[(c, topic)] = time.monotonic()
                await sockets[c].send({"type": "subscribe", "topics": [topic]})
            rates.append(round(SUBSCRIBES / (time.monotonic() - started)))
            try:
                await asyncio.wait_for(burst.all_answered.wait(), ANSWER_S)
            except TimeoutError:
                pass
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
        totals.update(answer for answer, _ in burst.answers.values())
        unanswered += SUBSCRIBES - len(burst.answers)
        latencies += sorted(seconds for _, seconds in burst.answers.values())

    latencies.sort()
    unavailable = totals.get("unavailable", 0)
    others = {k: v for k, v in totals.items() if k not in ("snapshot", "unavailable")}
    report.note(
        trials=PROFILE.trials,
        subscribes=SUBSCRIBES * PROFILE.trials,
        sent_per_s=rates,
        snapshots=totals.get("snapshot", 0),
        unavailable=unavailable,
        other_errors=others,
        unanswered=unanswered,
        answer_p50_s=round(latencies[len(latencies) // 2], 2) if latencies else None,
        answer_max_s=round(latencies[-1], 2) if latencies else None,
    )
    report.expect(unavailable == 0, f"0 unavailable: {unavailable}")
    report.expect(unanswered == 0, f"every subscribe answered within {ANSWER_S} s: {unanswered} not")
    report.expect(not others, f"no other error: {others}")
    report.finish()
