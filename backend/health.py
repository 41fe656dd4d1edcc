"""`GET /healthz` and `GET /readyz`, for load balancers and orchestrators.

- `/healthz`: the process serves HTTP (always 200 while it does).
- `/readyz`: it should get traffic: 200 when every dependency it needs answers and it
  is not shutting down, else 503; the body names each check either way.

Readiness asks the dependencies now, it does not trust a flag: the broker's `check()`
(Redis answers a PING; the subscription connection is up) and the store's `check()`
(PostgreSQL answers `SELECT 1`) run concurrently, each bounded by
`probes.PROBE_TIMEOUT_S` (2 s), so a stalled dependency turns `/readyz` into 503
within about that long. Each dependency has one probe in flight at most; callers that
arrive meanwhile share its outcome, and once a dependency has failed a probe, polls are
answered 503 at once while the next probe runs (`probes.SharedProbe`). The broker's `healthy` and
the store's `healthy` (its outbox sweeper's last look) are further inputs: a check is
true only if both say so.

Both answer on any Host and without a token (a balancer probes by address, and they
reveal nothing but these booleans); `guard.Guard` lets them through.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from aiohttp_realtime import HUB_KEY

from .probes import PROBE_TIMEOUT_S, SharedProbe
from .store import Store

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
SHUTTING_DOWN = web.AppKey("shutting_down", list)


@dataclass(frozen=True)
class Readiness:
    store: Store
    broker_probe: SharedProbe
    store_probe: SharedProbe


READINESS_KEY = web.AppKey("readiness", Readiness)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    readiness = app[READINESS_KEY]
    broker_answers, store_answers = await asyncio.gather(
        readiness.broker_probe.ok(), readiness.store_probe.ok()
    )
    checks = {
        "broker": broker_answers and bool(app[HUB_KEY].broker.healthy),
        "store": store_answers and bool(readiness.store.healthy),
        "serving": not app[SHUTTING_DOWN],
    }
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


def setup_health(app: web.Application, store: Store, *, probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
    app[SHUTTING_DOWN] = []

    async def broker_check() -> None:
        await app[HUB_KEY].broker.check()

    app[READINESS_KEY] = Readiness(
        store,
        SharedProbe("broker", broker_check, probe_timeout_s),
        SharedProbe("store", store.check, probe_timeout_s),
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def shutting_down(_app: web.Application) -> None:
        app[SHUTTING_DOWN].append(True)  # first of the shutdown hooks: no new traffic

    async def stop_probes(_app: web.Application) -> None:
        readiness = app[READINESS_KEY]
        await asyncio.gather(readiness.broker_probe.close(), readiness.store_probe.close())

    app.on_shutdown.insert(0, shutting_down)
    app.on_cleanup.append(stop_probes)
