"""Case 6: PostgreSQL frozen for 40 s (long form; 12 s in the short), two ways:

- `server`: the whole cluster SIGSTOPped: every node's store hangs.
- `connection`: node X's PostgreSQL connections freeze (its proxy stops forwarding,
  both sockets open) right after the reply to the COMMIT of X's update of a session -
  X's unit holds the `sessions.state` lock, which every session's update needs, on a
  connection the server still believes alive. PostgreSQL itself serves node Y.

Meanwhile requests are fired at both nodes at a steady pace: HTTP reads, updates and
messages, socket updates and messages. Done when: every one of them answers within its
stated deadline (HTTP: the store's 5 s; socket: `hello.request_timeout_s`), Y's writes
to other sessions are not held beyond the lock deadline by X's frozen unit, and after
the freeze every subscriber converges on the database."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.followers import all_live
from tests.chaos.nodes import Node
from tests.chaos.pacer import Kind, Pacer, Timed
from tests.chaos.profile import CONVERGE_S, LOCK_DEADLINE_S, PROFILE, SLACK_S, STORE_TIMEOUT_S
from tests.chaos.results import Report
from tests.chaos.truth import converge
from tests.chaos.writers import Write, http_attempt

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

AFTER_S = 3.0


def _kinds(d: Deployment, node: Node, n: int, updated: str, messaged: str) -> list[Kind]:
    def update(via: str) -> Callable[[int], Write]:
        return lambda i: Write("update", via, {"id": updated, "title": f"{node.name} {via} {i}"}, None)

    def message(via: str) -> Callable[[int], Write]:
        return lambda i: Write(
            "message", via, {"session_id": messaged, "text": f"{node.name} {via} {i}"}, None
        )

    return [
        Kind(f"{node.name} http read", node, "http", None, d.http(300 + 10 * n)),
        Kind(f"{node.name} http update", node, "http", update("http"), d.http(301 + 10 * n)),
        Kind(f"{node.name} http message", node, "http", message("http"), d.http(302 + 10 * n)),
        Kind(f"{node.name} socket update", node, "socket", update("socket"), d.http(303 + 10 * n)),
        Kind(f"{node.name} socket message", node, "socket", message("socket"), d.http(304 + 10 * n)),
    ]


@pytest.mark.parametrize("frozen", ["server", "connection"])
async def test_every_request_answers_within_its_deadline_while_postgres_is_frozen(
    deployment: Deployment, frozen: str
) -> None:
    d = deployment
    report = Report(f"6-{frozen}", f"PostgreSQL frozen {PROFILE.frozen_s:g} s ({frozen})")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=frozen == "connection")
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    titles = ["held", "x updates", "x messages", "y updates", "y messages"]
    held, x_updated, x_messaged, y_updated, y_messaged = (s["id"] for s in await d.create_sessions(y, titles))
    topics = ["sessions.state", f"sessions.activity:{x_messaged}", f"sessions.activity:{y_messaged}"]
    followers = [
        d.follow(node, topics, name=f"{node.name}{i}", address=i) for i in range(2) for node in (x, y)
    ]
    await all_live(followers, timeout=20)
    pacer = Pacer(_kinds(d, x, 0, x_updated, x_messaged) + _kinds(d, y, 1, y_updated, y_messaged))

    held_write = None
    with d.pg.thawed_on_exit():
        if frozen == "connection":
            assert x.pg_proxy is not None
            cut = x.pg_proxy.cut_after(b"COMMIT")  # half-open, the server's side kept
            write = Write("update", "http", {"id": held, "title": "held by a frozen unit"}, None)
            held_write = asyncio.create_task(http_attempt(d.http(350), x, write))
            await asyncio.wait_for(cut.wait(), 10)
        else:
            d.pg.freeze()
        frozen_at = time.monotonic()
        pacer.start()
        await asyncio.sleep(PROFILE.frozen_s)  # the fault
        thawed_at = time.monotonic()
        if x.pg_proxy is not None:
            x.pg_proxy.heal(resume=True)  # the network is back: the frozen connections go on
    d.pg.thaw()
    back = [await _ready(d, node) for node in (x, y)]
    await asyncio.sleep(AFTER_S)  # requests after the freeze
    await pacer.stop()
    held_attempt = await held_write if held_write is not None else None

    during = pacer.between(frozen_at, thawed_at)
    if held_attempt is not None:
        during.append(Timed("x http update (the frozen unit's)", held_attempt, STORE_TIMEOUT_S))
    late = [t for t in during if t.late]
    y_writes = [t for t in during if t.attempt.node == "y" and " read" not in t.kind]
    y_blocked = [t for t in y_writes if t.attempt.elapsed > LOCK_DEADLINE_S + SLACK_S]
    result = await converge(followers, db_url=d.db_url, redis_url=d.redis.url, timeout=CONVERGE_S)
    gaps = [f"{f.name}: {v}" for f in followers for v in f.violations]
    report.note(
        frozen_s=PROFILE.frozen_s,
        requests_during=len(during),
        late=len(late),
        slowest_s=round(_slowest(during), 1),
        outcomes=dict(Counter(f"{t.attempt.node} {t.attempt.outcome}" for t in during)),
        held_write=None if held_attempt is None else f"{held_attempt.detail} in {held_attempt.elapsed:.1f} s",
        y_writes_ok=sum(1 for t in y_writes if t.attempt.outcome == "ok"),
        y_writes_blocked=len(y_blocked),
        ready_again=back,
        silent_gaps=len(gaps),
        mismatches=len(result.mismatches),
    )
    report.expect(bool(during), "requests were fired during the freeze")
    report.expect(
        not late,
        f"every request answers within its stated deadline (+{SLACK_S} s): {len(late)} late, e.g. "
        f"{[_describe(t) for t in late[:3]]}",
    )
    report.expect(
        not y_blocked,
        f"Y's writes to other sessions not held beyond the lock deadline ({LOCK_DEADLINE_S} s): "
        f"{len(y_blocked)} of {len(y_writes)}, up to {_slowest(y_blocked):.1f} s",
    )
    report.expect(all(back), f"every node ready again after the freeze: {back}")
    report.expect(not gaps, f"no silent gap: {gaps[:3]}")
    report.expect(result.ok, f"every subscriber converges on the database: {result.mismatches[:3]}")
    report.finish()


def _slowest(timed: list[Timed]) -> float:
    return max((t.attempt.elapsed for t in timed), default=0.0)


def _describe(t: Timed) -> str:
    return f"{t.kind}: {t.attempt.detail} after {t.attempt.elapsed:.1f} s"


async def _ready(d: Deployment, node: Node) -> bool:
    """Until /readyz answers 200 (polled), or CONVERGE_S."""
    try:
        async with asyncio.timeout(CONVERGE_S):
            while await d.readyz(node) != 200:  # noqa: ASYNC110 - another process's state
                await asyncio.sleep(0.2)
        return True
    except TimeoutError:
        return False
