"""Case 4: Redis is killed (kill -9: its seqs and channels go with it) and started
again, while clients write as careful clients do: every write carries a fresh
idempotency key (the `Idempotency-Key` header over HTTP, `idempotency_key` on a socket
request), and a write whose outcome is unknown (a timeout, 503 / `unavailable`, a
dropped connection) is sent again with the same key - to the other node, as a load
balancer would - until the client learns its outcome. Done when: 0 duplicates (a
create or a message applied twice), 0 writes the client was told failed (or never
learnt about) that were applied all the same, and the end state as everywhere: no
gap, every subscriber converged, no acknowledged write lost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.profile import CONVERGE_S, PROFILE
from tests.chaos.readiness import Readiness
from tests.chaos.results import Report
from tests.chaos.traffic import Traffic, check_end_state, start_traffic
from tests.chaos.writers import Write, Writer, fresh_key

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

#: (via, first node): enough of them that several writes are in flight when Redis dies;
#: few enough to stay under the store's 1,000 sessions in the long form.
CREATORS = [(via, first) for via in ("http", "socket") for first in (0, 1, 0, 1)]
CREATE_RATE = 2.0
AFTER_S = 3.0


def _add_creators(d: Deployment, traffic: Traffic) -> None:
    nodes = d.nodes
    for i, (via, first) in enumerate(CREATORS):

        def make(n: int, i: int = i, via: str = via) -> Write:
            return Write("create", via, {"title": f"create {i}.{n}"}, fresh_key())

        order = nodes[first:] + nodes[:first]
        writer = Writer(
            f"creates {i}", order, via, d.http(220 + i), make, traffic.ledger, CREATE_RATE, retry=True
        )
        traffic.writers.append(writer)
        d.writers.append(writer)
        writer.start()


async def _applied(d: Deployment) -> tuple[Counter[str], Counter[str]]:
    """How many sessions bear each title, and messages each text, in the database."""
    conn = await asyncpg.connect(d.db_url)
    try:
        titles = Counter(r["title"] for r in await conn.fetch("SELECT title FROM sessions"))
        texts = Counter(r["text"] for r in await conn.fetch("SELECT text FROM messages"))
    finally:
        await conn.close()
    return titles, texts


async def test_redis_restarts_and_retried_writes_apply_once(deployment: Deployment) -> None:
    d = deployment
    report = Report("4", "Redis restart, clients retrying with idempotency keys")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=False)
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    traffic = await start_traffic(d, [x, y], rate=4, retry=True, keys=True)
    _add_creators(d, traffic)
    back: list[Any] = []
    async with Readiness(d, x) as ready_x, Readiness(d, y) as ready_y:
        for _trial in range(PROFILE.trials):
            await asyncio.sleep(AFTER_S)  # writes before the fault
            await d.redis.kill()
            await asyncio.sleep(PROFILE.redis_down_s)  # the fault
            await d.redis.start()
            started = time.monotonic()
            for r in (ready_x, ready_y):
                t = await r.wait_for(200, after=started, timeout=CONVERGE_S)
                back.append(None if t is None else round(t - started, 1))
        await asyncio.sleep(AFTER_S)  # writes after the fault

    # Stop the writers first: each finishes the write in hand, resending it until known.
    for writer in traffic.writers:
        await writer.stop(timeout=90)
    titles, texts = await _applied(d)
    seen = set().union(*(f.titles for f in traffic.followers))
    writes = traffic.ledger.writes
    duplicates = [w.value for w in writes if w.op in ("create", "message") and (titles + texts)[w.value] > 1]

    def applied(w: Write) -> bool:
        if w.op == "update":
            return w.value in seen or titles[w.value] > 0
        return (titles + texts)[w.value] > 0

    told_failed = [w for w in writes if w.outcome == "failed" and applied(w)]
    never_told = [w for w in writes if w.outcome == "unknown" and applied(w)]
    resent = [w for w in writes if len(w.attempts) > 1]
    report.note(
        trials=PROFILE.trials,
        redis_down_s=PROFILE.redis_down_s,
        ready_again_after_s=back,
        logical_writes=len(writes),
        resent=len(resent),
        attempts=sum(len(w.attempts) for w in writes),
        duplicates=len(duplicates),
        failed_but_applied=len(told_failed),
        unknown_but_applied=len(never_told),
        failed_details=dict(Counter(w.attempts[-1].detail for w in writes if w.outcome == "failed")),
    )
    report.expect(bool(resent), "some writes had an unknown outcome and were resent (the fault bit)")
    report.expect(not duplicates, f"0 duplicates: {len(duplicates)} ({duplicates[:3]})")
    report.expect(
        not told_failed,
        f"0 writes reported failed but applied: {len(told_failed)} "
        f"({[(w.value, w.attempts[-1].detail) for w in told_failed[:3]]})",
    )
    report.expect(
        not never_told,
        f"0 writes applied whose outcome the client never learnt: {len(never_told)} "
        f"({[(w.value, w.attempts[-1].detail) for w in never_told[:3]]})",
    )
    report.expect(None not in back, f"every node ready again after Redis restarts: {back}")
    await check_end_state(report, d, traffic)
    report.finish()
