"""Case 3: PostgreSQL stalls (SIGSTOP of the whole throwaway cluster: connections and
connects hang, as a stuck or black-holed server's do) for 10 s (short form) or 45 s
(long), then continues; and PostgreSQL restarts (pg_ctl's fast shutdown, and kill -9
of the postmaster). Done when: every node's /readyz is 503 within 10 s of the stall,
every write attempted during it fails within the stated deadline (5 s) instead of
hanging, no request is ever answered 500 (or `internal_error`) - a restart is a 503 -
and after SIGCONT or the restart every subscriber converges on the database (0
mismatches), with no acknowledged write lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.profile import CONVERGE_S, DETECT_S, PROFILE, SLACK_S, STORE_TIMEOUT_S
from tests.chaos.readiness import Readiness
from tests.chaos.results import Report
from tests.chaos.traffic import check_end_state, start_traffic
from tests.chaos.writers import Attempt

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

#: Writes keep going this long after the fault, to show the nodes serve again.
AFTER_S = 3.0


def _crashed(attempts: list[Attempt]) -> list[str]:
    """Answers that mean a bug (500, `internal_error`), not an unavailable store."""
    return [
        f"{a.node}: {a.detail}"
        for a in attempts
        if a.detail.startswith("500") or a.detail == "internal_error"
    ]


async def test_a_stalled_postgres_is_unready_within_10_s_and_writes_fail_within_5_s(
    deployment: Deployment,
) -> None:
    d = deployment
    report = Report("3a", f"PostgreSQL SIGSTOPped {PROFILE.stall_s:g} s")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=False)
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    traffic = await start_traffic(d, [x, y], rate=4)
    async with Readiness(d, x) as ready_x, Readiness(d, y) as ready_y:
        with d.pg.thawed_on_exit():
            frozen_at = time.monotonic()
            d.pg.freeze()
            await asyncio.sleep(PROFILE.stall_s)  # the fault
        thawed_at = time.monotonic()
        back = [await r.wait_for(200, after=thawed_at, timeout=CONVERGE_S) for r in (ready_x, ready_y)]
        await asyncio.sleep(AFTER_S)  # writes after the stall
        unready = [r.first(503, after=frozen_at) for r in (ready_x, ready_y)]
        unready_s = [None if t is None else round(t - frozen_at, 1) for t in unready]

    during = [a for a in traffic.ledger.attempts() if frozen_at <= a.started < thawed_at]
    bound = STORE_TIMEOUT_S + SLACK_S
    slow = [a for a in during if a.elapsed > bound]
    succeeded_while_frozen = [a for a in during if a.outcome == "ok" and a.started + a.elapsed < thawed_at]
    crashed = _crashed(traffic.ledger.attempts())
    report.note(
        stall_s=PROFILE.stall_s,
        readyz_503_after_s=unready_s,
        ready_again_after_s=[None if t is None else round(t - thawed_at, 1) for t in back],
        writes_during=len(during),
        slowest_during_s=round(max((a.elapsed for a in during), default=0), 1),
        over_deadline=len(slow),
        http_500=len(crashed),
    )
    report.expect(
        all(t is not None and t - frozen_at <= DETECT_S for t in unready),
        f"/readyz 503 on every node within {DETECT_S} s: after {unready_s} s",
    )
    report.expect(bool(during), "writes were attempted during the stall")
    report.expect(
        not slow,
        f"every write fails within {STORE_TIMEOUT_S} s (+{SLACK_S} s slack): {len(slow)} of {len(during)} "
        f"took up to {max((a.elapsed for a in slow), default=0):.1f} s ({sorted({a.detail for a in slow})})",
    )
    report.expect(
        not succeeded_while_frozen, f"no write succeeds while frozen: {len(succeeded_while_frozen)}"
    )
    report.expect(not crashed, f"never a 500: {crashed[:3]}")
    report.expect(None not in back, "every node ready again after SIGCONT")
    await check_end_state(report, d, traffic)
    report.finish()


@pytest.mark.parametrize("how", ["fast", "kill"])
async def test_a_postgres_restart_is_a_503_never_a_500(deployment: Deployment, how: str) -> None:
    d = deployment
    report = Report(f"3b-{how}", f"PostgreSQL restart ({'pg_ctl -m fast' if how == 'fast' else 'kill -9'})")
    x = await d.add_node("x", proxy_redis=False, proxy_pg=False)
    y = await d.add_node("y", proxy_redis=False, proxy_pg=False)
    traffic = await start_traffic(d, [x, y], rate=8)
    restarts, back = [], []
    async with Readiness(d, x) as ready_x, Readiness(d, y) as ready_y:
        for _trial in range(PROFILE.trials):
            started = time.monotonic()
            await d.pg.restart(how)
            restarted = time.monotonic()
            restarts.append(round(restarted - started, 1))
            for r in (ready_x, ready_y):
                t = await r.wait_for(200, after=restarted, timeout=CONVERGE_S)
                back.append(None if t is None else round(t - restarted, 1))
            await asyncio.sleep(AFTER_S)  # writes after the restart
        statuses = sorted(ready_x.statuses(after=0) | ready_y.statuses(after=0))

    attempts = traffic.ledger.attempts()
    crashed = _crashed(attempts)
    details: dict[str, int] = {}
    for a in attempts:
        if a.outcome != "ok":
            details[a.detail] = details.get(a.detail, 0) + 1
    report.note(
        restart_s=restarts,
        ready_again_after_s=back,
        readyz_statuses=statuses,
        not_ok=details,
        http_500=len(crashed),
    )
    report.expect(not crashed, f"never a 500 or internal_error: {len(crashed)} ({crashed[:3]})")
    report.expect(None not in back, f"every node ready again after the restart: {back}")
    await check_end_state(report, d, traffic)
    report.finish()
