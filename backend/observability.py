"""Metrics and logs of the demo service (docs/operations.md).

- `GET /metrics`: Prometheus text format, the realtime library's collectors
  (`aiohttp_realtime.metrics`) plus `http_requests_total` by route template and status
  from `http_metrics` (a route's template, never its concrete path: bounded labels).
  With several workers, every worker's samples merged (`PROMETHEUS_MULTIPROC_DIR`).
- `configure_logging`: human-readable lines (the default) or one JSON object per line,
  with the `connection_id`, `topic` and `close_code` a log call passes in `extra=`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from aiohttp_realtime import HUB_KEY, metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

METRICS_PATH = "/metrics"
#: The route label of a request no route matched (a 404 or 405 of any path).
UNMATCHED = "unmatched"

_http_requests: Any = None
if metrics.ENABLED:
    from prometheus_client import Counter

    _http_requests = Counter(
        "http_requests", "HTTP requests answered, by route template and status.", ("route", "status")
    )


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


#: The status of the response a request prepared (a WebSocket's 101 before it ran): a
#: typed `web.RequestKey` on aiohttp 3.14+, a plain string key before (as PRINCIPAL_KEY).
_RequestKey: Any = getattr(web, "RequestKey", None)
_PREPARED: Any = (
    _RequestKey("backend.prepared_status", int) if _RequestKey is not None else "backend.prepared_status"
)


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request the application answers (outermost: it sees the final status).
    A handler that ends in an exception after its response began (a WebSocket, whose
    task is cancelled when its connection ends) counts under the status it sent."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except BaseException:
        status = request.get(_PREPARED, 500)
        raise
    finally:
        if _http_requests is not None:
            _http_requests.labels(route_label(request), str(status)).inc()


async def _prepared(request: web.Request, response: web.StreamResponse) -> None:
    request[_PREPARED] = response.status


async def metrics_handler(_request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


#: How often the bytes queued for all connections are summed into their gauge.
QUEUED_SAMPLE_S = 5.0


def setup_observability(app: web.Application) -> None:
    """`GET /metrics`, and `http_metrics` as the outermost middleware (call it after the
    other setup functions that insert middlewares)."""
    app.router.add_get(METRICS_PATH, metrics_handler)
    app.middlewares.insert(0, http_metrics)
    app.on_response_prepare.append(_prepared)

    async def sample_queued(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                metrics.sample_queued(app[HUB_KEY].connections)
                await asyncio.sleep(QUEUED_SAMPLE_S)  # a sampling period, not a synchronisation

        task = asyncio.create_task(loop(), name="queued-bytes-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sample_queued)


# ------------------------------------------------------------ logs

LOG_FORMATS = ("human", "json")
#: `extra=` keys a JSON line carries when the log call passes them.
CONTEXT_FIELDS = ("connection_id", "topic", "close_code")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, the
    context fields the call passed, and the traceback as `exc` if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """The root logger's one handler, on stderr, in `log_format` ("human" or "json")."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
