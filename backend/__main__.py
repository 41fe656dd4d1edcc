"""`python -m backend`: run the demo service.

Every setting is a field of one model (backend/settings.py), set by flag, by
`BACKEND_*` variable or by a TOML file (`--config FILE`), in that order of
precedence; `--help` lists them grouped, `python -m backend config` prints the
effective ones, docs/configuration.md has the reference. Subcommands: `config`, and
`tail TOPIC…` (a debugging client).

Authentication is off unless a tokens file is given (`--tokens-file`, see
backend/access.py); off is only allowed on a loopback address unless
`--insecure-no-auth` says it is meant. Browsers may connect from the loopback
origins on the port served, their page's own origin, plus `--allow-origin`s;
requests must name a loopback host, or an `--allow-host` (against DNS rebinding).
Behind a reverse proxy, `--forwarded-allow-ips` names the proxies whose forwarded
headers are believed (backend/proxies.py).
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import settings as settings_module
from .access import TokensFileError, load_tokens
from .app import Config, build_app
from .observability import configure_logging
from .proxies import parse_allow_ips
from .web import run_app

#: How long a client may take to send a request's headers, and how long an idle
#: keep-alive connection stays open (the `headers_timeout_s` setting's default).
HEADERS_TIMEOUT_S = settings_module.ServiceSettings.model_fields["headers_timeout_s"].default


def parse_args(argv: Sequence[str], prog: str = "python -m backend") -> Config:
    """The service's `Config` from flags, `BACKEND_*` variables and the `--config` file
    (backend/settings.py). A bad value is one line per problem on stderr, exit 2."""
    return config_of(_loaded(argv, prog))


def _loaded(argv: Sequence[str], prog: str) -> settings_module.Loaded:
    try:
        loaded = settings_module.load(argv, prog=prog)
    except settings_module.SettingsError as exc:
        _fail(prog, exc.lines)
    problems = settings_module.problems(loaded.settings, loaded.sources)
    if problems:
        _fail(prog, problems)
    return loaded


def _fail(prog: str, lines: Sequence[str]) -> NoReturn:
    for line in lines:
        print(f"{prog}: error: {line}", file=sys.stderr)
    raise SystemExit(2)


def config_of(loaded: settings_module.Loaded) -> Config:
    s: Any = loaded.settings
    tokens = None
    if s.tokens_file is not None:
        try:
            tokens = load_tokens(s.tokens_file)
        except TokensFileError as exc:
            _fail("python -m backend", [f"{loaded.sources['tokens_file']}: tokens_file: {exc}"])
    return Config(
        host=s.host,
        port=s.port,
        simulate=s.simulate,
        simulate_tick_s=s.simulate_tick_s,
        realtime=settings_module.realtime_settings(s),
        http=settings_module.http_limits(s),
        store_quotas={name: getattr(s, name) for name in settings_module.QUOTAS},
        tokens=tokens,
        database=s.database,
        database_timeout_s=s.database_timeout_s,
        headers_timeout_s=s.headers_timeout_s,
        broker_url=None if s.broker == "memory" else s.broker,
        redis_prefix=s.redis_prefix,
        workers=s.workers,
        listen_fd=s.listen_fd,
        log_format=s.log_format,
        access_log=s.access_log,
        forwarded_allow_ips=parse_allow_ips(s.forwarded_allow_ips),
        forwarded_header=s.forwarded_header,
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tail"]:
        from .tail import main as tail_main  # the debugging client: python -m backend tail TOPIC…

        raise SystemExit(tail_main(argv[1:]))
    if argv[:1] == ["config"]:  # the effective settings, as a TOML file (secrets masked)
        print(settings_module.effective(_loaded(argv[1:], "python -m backend config")), end="")
        return
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
