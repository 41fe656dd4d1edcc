"""`GET /healthz` and `GET /readyz`, for load balancers and orchestrators.

- `/healthz`: the process serves HTTP (always 200 while it does).
- `/readyz`: it should get traffic: 200 when every dependency it needs answers and it
  is not shutting down, else 503; the body names each check either way.

Both answer on any Host and without a token (a balancer probes by address, and they
reveal nothing but these booleans); `guard.Guard` lets them through.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aiohttp_realtime import HUB_KEY

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
SHUTTING_DOWN = web.AppKey("shutting_down", list)
STORE_KEY = web.AppKey("store_for_health", object)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    store: Any = app[STORE_KEY]
    checks = {
        "broker": bool(app[HUB_KEY].broker.healthy),
        "store": bool(getattr(store, "healthy", True)),
        "serving": not app[SHUTTING_DOWN],
    }
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


def setup_health(app: web.Application, store: object) -> None:
    app[SHUTTING_DOWN] = []
    app[STORE_KEY] = store
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def shutting_down(_app: web.Application) -> None:
        app[SHUTTING_DOWN].append(True)  # first of the shutdown hooks: no new traffic

    app.on_shutdown.insert(0, shutting_down)
