"""`python -m backend`: run the demo service. Every option has an environment variable."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aiohttp import web

from .app import Config, build_app


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
    args = parser.parse_args(argv)
    return Config(host=args.host, port=args.port, simulate=args.simulate)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tail"]:
        from .tail import main as tail_main  # the debugging client: python -m backend tail TOPIC…

        raise SystemExit(tail_main(argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    web.run_app(
        build_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=5,
        print=lambda _msg: print(f"serving on http://{config.host}:{config.port}/", flush=True),
    )


if __name__ == "__main__":
    main()
