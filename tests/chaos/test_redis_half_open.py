"""Case 2: node X's Redis connections are cut HALF-OPEN (nothing forwarded, no FIN, no
RST), as a middlebox that drops idle flows does. Done when: within 10 s every
subscriber of X is closed or resynced (X must not stay deaf, its clients believing
they are live), X's /readyz is 503 from then until the cut heals, no subscriber on any
node ever sees a gap, and after healing every subscriber converges on the database,
with no acknowledged write lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.followers import all_live, until_disturbed
from tests.chaos.profile import CONVERGE_S, DETECT_S, PROFILE
from tests.chaos.readiness import Readiness
from tests.chaos.results import Report
from tests.chaos.truth import acknowledged_lost, converge, node_reads
from tests.chaos.writers import Ledger, Write, Writer

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

X_FOLLOWERS, Y_FOLLOWERS = 6, 3


async def test_a_half_open_redis_cut_is_noticed_within_10_s_and_heals(deployment: Deployment) -> None:
    d = deployment
    report = Report("2", "half-open cut of X's Redis")
    x, y = await d.add_node("x"), await d.add_node("y")
    assert x.redis_proxy is not None
    updated, messaged = await d.create_sessions(y, ["updated", "messaged"])
    topics = ["sessions.state", f"sessions.activity:{updated['id']}", f"sessions.activity:{messaged['id']}"]
    on_x = [d.follow(x, topics, name=f"x{i}", address=i) for i in range(X_FOLLOWERS)]
    on_y = [d.follow(y, topics, name=f"y{i}", address=20 + i) for i in range(Y_FOLLOWERS)]
    await all_live(on_x + on_y, timeout=20)
    ledger = Ledger()
    d.writers += [
        Writer(
            "updates",
            [y, x],
            "http",
            d.http(40),
            lambda n: Write("update", "http", {"id": updated["id"], "title": f"u{n}"}, None),
            ledger,
            rate=8,
        ),
        Writer(
            "messages",
            [x, y],
            "socket",
            d.http(41),
            lambda n: Write("message", "socket", {"session_id": messaged["id"], "text": f"m{n}"}, None),
            ledger,
            rate=5,
        ),
    ]
    for writer in d.writers:
        writer.start()

    undisturbed, detect_times, first_503s, ready_while_cut, recover_times = 0, [], [], 0, []
    async with Readiness(d, x) as ready:
        for _trial in range(PROFILE.trials):
            cut_at = time.monotonic()
            x.redis_proxy.cut()
            ready_at = await ready.wait_for(503, after=cut_at, timeout=DETECT_S)
            await until_disturbed(on_x, since=cut_at, timeout=DETECT_S - (time.monotonic() - cut_at))
            times = [f.first_disturbance_since(cut_at) for f in on_x]
            undisturbed += sum(1 for t in times if t is None or t - cut_at > DETECT_S)
            detect_times += [round(t - cut_at, 1) for t in times if t is not None]
            first_503s.append(None if ready_at is None else round(ready_at - cut_at, 1))
            fault_ends = cut_at + DETECT_S + PROFILE.cut_extra_s
            await asyncio.sleep(max(0.0, fault_ends - time.monotonic()))  # the fault lasts
            healed_at = time.monotonic()
            if ready_at is not None:
                ready_while_cut += ready.count(200, after=ready_at, before=healed_at)
            x.redis_proxy.heal(resume=False)  # the middlebox forgot the old flows
            back = await ready.wait_for(200, after=healed_at, timeout=CONVERGE_S)
            recover_times.append(None if back is None else round(back - healed_at, 1))
            await all_live(on_x + on_y, timeout=CONVERGE_S)

    for writer in d.writers:
        await writer.stop(timeout=30)
    followers = on_x + on_y
    result = await converge(followers, db_url=d.db_url, redis_url=d.redis.url, timeout=CONVERGE_S)
    reads = await node_reads(d.nodes, d.db_url)
    lost = await acknowledged_lost(ledger, d.db_url)
    gaps = [f"{f.name}: {v}" for f in followers for v in f.violations]
    report.note(
        trials=PROFILE.trials,
        x_subscribers=len(on_x),
        undisturbed_after_10s=undisturbed,
        detect_s_max=max(detect_times, default=None),
        readyz_503_after_s=first_503s,
        readyz_200_while_cut=ready_while_cut,
        ready_again_after_s=recover_times,
        closes_x=sum(len(f.closes) for f in on_x),
        closes_y=sum(len(f.closes) for f in on_y),
        silent_gaps=len(gaps),
        mismatches=len(result.mismatches),
        writes_ok=ledger.count("ok"),
        writes_unknown=ledger.count("unknown"),
        acked_lost=len(lost),
    )
    report.expect(
        undisturbed == 0, f"X's subscribers closed or resynced within {DETECT_S} s: {undisturbed} not"
    )
    report.expect(None not in first_503s, f"X's /readyz 503 within {DETECT_S} s of the cut: {first_503s}")
    report.expect(ready_while_cut == 0, f"/readyz stays 503 until healed: {ready_while_cut} answers of 200")
    report.expect(None not in recover_times, f"X ready again after healing: {recover_times}")
    report.expect(not gaps, f"no silent gap: {gaps[:3]}")
    report.expect(result.ok, f"every subscriber converges: {result.mismatches[:3]}")
    report.expect(not reads, f"every node reads the database: {reads}")
    report.expect(not lost, f"no acknowledged write lost: {lost[:3]}")
    report.finish()
