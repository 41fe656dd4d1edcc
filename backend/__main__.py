"""`python -m backend`: run the demo service. Every option has an environment variable.

Authentication is off unless a tokens file is given (`--tokens-file`, see
backend/access.py); off is only allowed on a loopback address unless
`--insecure-no-auth` says it is meant. Browsers may connect from the loopback
origins on the port served, plus `--allow-origin`s; requests must name a loopback
host, or an `--allow-host` (against DNS rebinding).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from aiohttp_realtime import RealtimeSettings
from aiohttp_realtime.auth import loopback_hosts, loopback_origins, parse_origins

from .access import TokensFileError, load_tokens
from .app import Config, build_app
from .observability import LOG_FORMATS, configure_logging
from .postgres_deadlines import TIMEOUT_S
from .web import run_app

#: How long a client may take to send a request's headers, and how long an idle
#: keep-alive connection stays open.
HEADERS_TIMEOUT_S = 10.0


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"{name}={value!r}: expected true/false")


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument(
        "--host",
        default=os.environ.get("BACKEND_HOST", "127.0.0.1"),
        help="interface to listen on (env BACKEND_HOST, default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BACKEND_PORT", "8080")),
        help="port (env BACKEND_PORT, default 8080)",
    )
    parser.add_argument(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("BACKEND_SIMULATE", True),
        help="generate demo traffic (env BACKEND_SIMULATE, default on)",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("BACKEND_BROKER", "memory"),
        metavar="URL",
        help="memory (one process) or redis://host:port/db (several processes or hosts; "
        "env BACKEND_BROKER, default memory)",
    )
    parser.add_argument(
        "--redis-prefix",
        default=os.environ.get("BACKEND_REDIS_PREFIX", "realtime:"),
        help="namespace of the Redis keys and channels (env BACKEND_REDIS_PREFIX, default realtime:)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("BACKEND_DATABASE") or None,
        metavar="URL",
        help="postgresql://user@host:port/db: keep the state in PostgreSQL, shared by several "
        "processes or hosts (env BACKEND_DATABASE; default: in memory, one process)",
    )
    parser.add_argument(
        "--database-timeout",
        type=float,
        default=float(os.environ.get("BACKEND_DATABASE_TIMEOUT_S", TIMEOUT_S)),
        metavar="SECONDS",
        help="how long a read or write of the database may take before it answers 503 "
        f"(env BACKEND_DATABASE_TIMEOUT_S, default {TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BACKEND_WORKERS", "1")),
        help="worker processes sharing the port (env BACKEND_WORKERS, default 1); more than one "
        "needs a shared broker (--broker redis://...) and a shared store (--database ...)",
    )
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)  # a worker's socket
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("BACKEND_LOG_FORMAT", "human"),
        help="human-readable lines, or one JSON object per line (env BACKEND_LOG_FORMAT, default human)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("BACKEND_ACCESS_LOG", True),
        help="log a line per HTTP request (env BACKEND_ACCESS_LOG, default on)",
    )
    parser.add_argument(
        "--headers-timeout",
        type=float,
        default=float(os.environ.get("BACKEND_HEADERS_TIMEOUT_S", HEADERS_TIMEOUT_S)),
        metavar="SECONDS",
        help="time a client has to send a request's headers, and an idle keep-alive "
        f"connection stays open (env BACKEND_HEADERS_TIMEOUT_S, default {HEADERS_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--tokens-file",
        type=Path,
        default=os.environ.get("BACKEND_TOKENS_FILE") or None,
        help="JSON file of bearer tokens and their scopes; turns authentication on "
        "(env BACKEND_TOKENS_FILE; see backend/access.py)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=_env_bool("BACKEND_INSECURE_NO_AUTH", False),
        help="allow serving a non-loopback address without authentication (env BACKEND_INSECURE_NO_AUTH)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=_env_list("BACKEND_ALLOW_ORIGINS"),
        metavar="ORIGIN",
        help="a browser origin allowed besides loopback, e.g. https://app.example.com "
        "(repeatable; env BACKEND_ALLOW_ORIGINS, comma-separated)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=_env_list("BACKEND_ALLOW_HOSTS"),
        metavar="HOST[:PORT]",
        help="a Host header value served besides loopback, e.g. app.example.com "
        "(repeatable; env BACKEND_ALLOW_HOSTS, comma-separated)",
    )
    args = parser.parse_args(argv)
    tokens = None
    if args.tokens_file is not None:
        try:
            tokens = load_tokens(args.tokens_file)
        except TokensFileError as exc:
            parser.error(str(exc))
    elif not _is_loopback(args.host) and not args.insecure_no_auth:
        parser.error(
            f"--host {args.host} is not a loopback address and authentication is off: give "
            "--tokens-file, or --insecure-no-auth if anyone who can reach the port may read and write"
        )
    if args.port == 0:  # a free port, chosen at bind time: the loopback names on it
        if args.allow_origin or args.allow_host:
            parser.error("--allow-origin and --allow-host need a fixed --port")
        realtime = RealtimeSettings()
    else:
        realtime = RealtimeSettings(
            allowed_origins=loopback_origins(args.port) | parse_origins(args.allow_origin),
            allowed_hosts=loopback_hosts(args.port) | frozenset(h.strip().lower() for h in args.allow_host),
        )
    if args.headers_timeout <= 0:
        parser.error("--headers-timeout must be positive")
    if not (args.broker == "memory" or args.broker.startswith(("redis://", "rediss://", "unix://"))):
        parser.error(f"--broker {args.broker}: expected memory or redis://host:port/db")
    if args.database is not None and not args.database.startswith(("postgresql://", "postgres://")):
        parser.error(f"--database {args.database}: expected postgresql://user@host:port/db")
    if args.database_timeout <= 0:
        parser.error("--database-timeout must be positive")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and args.broker == "memory":
        parser.error(
            f"--workers {args.workers} with the in-memory broker: each process would number and "
            "deliver only its own events. Give --broker redis://host:port/db"
        )
    if args.workers > 1 and getattr(args, "database", None) is None:
        parser.error(
            f"--workers {args.workers} with the in-memory store: each process would keep its own "
            "sessions. Give --database postgresql://..."
        )
    if args.log_format not in LOG_FORMATS:  # from the environment: argparse checks only the flag
        parser.error(f"BACKEND_LOG_FORMAT={args.log_format}: expected one of {', '.join(LOG_FORMATS)}")
    return Config(
        host=args.host,
        port=args.port,
        simulate=args.simulate,
        realtime=realtime,
        tokens=tokens,
        database=args.database,
        database_timeout_s=args.database_timeout,
        headers_timeout_s=args.headers_timeout,
        broker_url=None if args.broker == "memory" else args.broker,
        redis_prefix=args.redis_prefix,
        workers=args.workers,
        listen_fd=args.listen_fd,
        log_format=args.log_format,
        access_log=args.access_log,
    )


def _env_list(name: str) -> list[str]:
    return [v for v in os.environ.get(name, "").split(",") if v.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tail"]:
        from .tail import main as tail_main  # the debugging client: python -m backend tail TOPIC…

        raise SystemExit(tail_main(argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    configure_logging(config.log_format)
    if config.workers > 1:
        from .workers import run_workers

        raise SystemExit(run_workers(argv, config.host, config.port, config.workers))
    log = logging.getLogger("backend")
    if config.tokens is None:
        log.warning(
            "authentication is OFF: anyone who can reach %s:%s may read and write", config.host, config.port
        )
    else:
        log.info("authentication is on: %d bearer token(s)", len(config.tokens))
    run_app(
        build_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=5,
        keepalive_timeout=config.headers_timeout_s,
        on_ready=lambda url: print(f"serving on {url}/", flush=True),
        sock=None if config.listen_fd is None else socket.socket(fileno=config.listen_fd),
        access_log=config.access_log,
    )


if __name__ == "__main__":
    main()
