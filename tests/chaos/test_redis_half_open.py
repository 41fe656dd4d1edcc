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
from tests.chaos.followers import live_within, until_disturbed
from tests.chaos.profile import CONVERGE_S, DETECT_S, PROFILE
from tests.chaos.readiness import Readiness
from tests.chaos.results import Report
from tests.chaos.traffic import check_end_state, start_traffic

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

X_FOLLOWERS, Y_FOLLOWERS = 6, 3


async def test_a_half_open_redis_cut_is_noticed_within_10_s_and_heals(deployment: Deployment) -> None:
    d = deployment
    report = Report("2", "half-open cut of X's Redis")
    x, y = await d.add_node("x"), await d.add_node("y")
    assert x.redis_proxy is not None
    traffic = await start_traffic(d, [x, y], followers_per_node=[X_FOLLOWERS, Y_FOLLOWERS])
    on_x = traffic.on(x)

    undisturbed, detect_times, first_503s, ready_while_cut, recover_times, stuck = 0, [], [], 0, [], []
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
            stuck += await live_within(traffic.followers, timeout=CONVERGE_S)

    report.note(
        trials=PROFILE.trials,
        x_subscribers=len(on_x),
        undisturbed_after_10s=undisturbed,
        detect_s_max=max(detect_times, default=None),
        readyz_503_after_s=first_503s,
        readyz_200_while_cut=ready_while_cut,
        ready_again_after_s=recover_times,
    )
    report.expect(
        undisturbed == 0, f"X's subscribers closed or resynced within {DETECT_S} s: {undisturbed} not"
    )
    report.expect(None not in first_503s, f"X's /readyz 503 within {DETECT_S} s of the cut: {first_503s}")
    report.expect(ready_while_cut == 0, f"/readyz stays 503 until healed: {ready_while_cut} answers of 200")
    report.expect(None not in recover_times, f"X ready again after healing: {recover_times}")
    report.expect(not stuck, f"every subscriber live again after healing: {stuck} not")
    await check_end_state(report, d, traffic)
    report.finish()
