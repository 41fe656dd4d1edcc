"""The service's settings: one model, set by flag, `BACKEND_*` variable or TOML file.

Every knob of `python -m backend` is a field of `Settings`: the demo's own (where it
listens, its security, its backplane and store, its HTTP limits and store quotas) and
every field of the library's `RealtimeSettings` (flattened: `--max-queue-bytes`,
`BACKEND_MAX_QUEUE_BYTES`, `max_queue_bytes = ...`). A field `some_name` is set by

1. the flag `--some-name` (some have a shorter alias: `--allow-origin`), else
2. the environment variable `BACKEND_SOME_NAME`, else
3. the key `some_name` of the TOML file given by `--config FILE` (or
   `BACKEND_CONFIG`), else
4. its default.

Lists (`allow_origins`, `allow_hosts`, `forwarded_allow_ips`) are comma-separated in a
variable, repeatable as flags, arrays in TOML. pydantic-settings reads the variables
and the file (`Settings.settings_customise_sources`); argparse, generated from the same
fields (`parser`), reads the flags and prints `--help` grouped. A value that does not
validate is one line naming the field and where it came from, and exit status 2.
`python -m backend config` prints the effective settings as TOML (secrets masked):
the file it prints is a valid `--config`. docs/configuration.md is generated from
this model (`reference`), and a test keeps it so.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from aiohttp_realtime import RealtimeSettings

from .guard import HttpLimits
from .postgres_deadlines import TIMEOUT_S
from .store import (
    KEPT_MESSAGES,
    MAX_IDEMPOTENCY_BYTES,
    MAX_IDEMPOTENCY_KEYS,
    MAX_SESSION_TEXT_BYTES,
    MAX_SESSIONS,
    MAX_TERMINALS,
    MAX_TITLE_BYTES,
)

ENV_PREFIX = "BACKEND_"
CONFIG_ENV = "BACKEND_CONFIG"
GROUPS = {
    "serving": "serving",
    "security": "security: authentication, browsers, proxies",
    "backplane": "backplane and store (several processes or hosts)",
    "http": "HTTP limits (the demo's API)",
    "quotas": "store quotas",
    "realtime": "realtime (the library's RealtimeSettings)",
}
#: RealtimeSettings fields set from other fields (`allow_origins`, `allow_hosts`).
DERIVED = frozenset({"allowed_origins", "allowed_hosts"})
#: Fields a flag cannot set (the parent of `--workers` hands its socket to a worker).
HIDDEN = frozenset({"listen_fd"})

#: The TOML file of this load (`load`), for `settings_customise_sources`.
_TOML: ContextVar[Path | None] = ContextVar("backend_settings_toml", default=None)


def _field(default: Any, doc: str, group: str, *, aliases: Sequence[str] = (), **checks: Any) -> Any:
    extra: dict[str, Any] = {"group": group, "aliases": list(aliases)}
    return Field(default, description=doc, json_schema_extra=extra, **checks)


CommaList = Annotated[list[str], NoDecode]


class ServiceSettings(BaseSettings):
    """The demo's own settings (the library's are added below, `Settings`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # ------------------------------------------------------------ serving
    host: str = _field("127.0.0.1", "interface to listen on", "serving")
    port: int = _field(8080, "port (0: a free one)", "serving", ge=0, le=65535)
    workers: int = _field(
        1,
        "worker processes sharing the port; more than one needs a shared broker (--broker "
        "redis://...) and a shared store (--database ...)",
        "serving",
        ge=1,
        le=64,
    )
    listen_fd: int | None = _field(
        None, "a worker's inherited listening socket (set by --workers)", "serving"
    )
    simulate: bool = _field(True, "generate demo traffic", "serving")
    simulate_tick_s: float = _field(1.0, "seconds between two steps of the demo traffic", "serving", gt=0)
    log_format: Literal["human", "json"] = _field(
        "human", "human-readable lines, or one JSON object per line", "serving"
    )
    access_log: bool = _field(True, "log a line per HTTP request", "serving")
    headers_timeout_s: float = _field(
        10.0,
        "time a client has to send a request's headers, and an idle keep-alive connection stays open",
        "serving",
        aliases=("--headers-timeout",),
        gt=0,
    )

    # ------------------------------------------------------------ security
    tokens_file: Path | None = _field(
        None,
        "JSON file of bearer tokens and their scopes; turns authentication on (backend/access.py)",
        "security",
    )
    insecure_no_auth: bool = _field(
        False, "allow serving a non-loopback address without authentication", "security"
    )
    allow_origins: CommaList = _field(
        [],
        "browser origins allowed besides loopback and the page's own, e.g. https://app.example.com",
        "security",
        aliases=("--allow-origin",),
    )
    allow_hosts: CommaList = _field(
        [],
        "Host header values served besides loopback, e.g. app.example.com (against DNS rebinding)",
        "security",
        aliases=("--allow-host",),
    )
    forwarded_allow_ips: CommaList = _field(
        [],
        "proxies (addresses or networks, or *) whose Forwarded / X-Forwarded-* headers are believed; "
        "from anyone else they are ignored (docs/deploy.md)",
        "security",
    )

    forwarded_header: Literal["x-forwarded", "forwarded"] = _field(
        "x-forwarded",
        "the header those proxies write: x-forwarded (X-Forwarded-For/-Proto/-Host) or forwarded "
        "(RFC 7239); the other is ignored, whatever a client puts in it",
        "security",
    )

    # ------------------------------------------------------------ backplane and store
    broker: str = _field(
        "memory", "memory (one process) or redis://host:port/db (several processes or hosts)", "backplane"
    )
    redis_prefix: str = _field(
        "realtime:", "namespace of the Redis keys and channels", "backplane", min_length=1
    )
    database: str | None = _field(
        None,
        "postgresql://user@host:port/db: keep the state in PostgreSQL, shared by several processes or hosts "
        "(default: in memory, one process)",
        "backplane",
    )
    database_timeout_s: float = _field(
        TIMEOUT_S,
        "how long a read or write of the database may take before it answers 503",
        "backplane",
        aliases=("--database-timeout",),
        gt=0,
    )

    # ------------------------------------------------------------ HTTP limits
    writes_per_s: float = _field(
        HttpLimits.writes_per_s, "writes (POST/PATCH/DELETE) per second per client address", "http", gt=0
    )
    writes_burst: int = _field(
        HttpLimits.writes_burst, "writes a client address may make at once", "http", ge=1
    )
    tracked_addresses: int = _field(
        HttpLimits.tracked_addresses, "client addresses whose write rate is tracked at once", "http", ge=1
    )
    body_grace_s: float = _field(
        HttpLimits.body_grace_s, "seconds a request body may take before its rate counts", "http", gt=0
    )
    body_min_rate: int = _field(
        HttpLimits.body_min_rate, "slowest a request body may arrive, bytes per second", "http", ge=1
    )
    body_timeout_s: float = _field(HttpLimits.body_timeout_s, "longest a request body may take", "http", gt=0)
    http_max_json_depth: int = _field(
        HttpLimits.max_json_depth, "deepest nesting of a JSON request body", "http", ge=1
    )

    # ------------------------------------------------------------ store quotas
    max_sessions: int = _field(MAX_SESSIONS, "sessions per store", "quotas", ge=1)
    max_title_bytes: int = _field(MAX_TITLE_BYTES, "bytes of all sessions' titles together", "quotas", ge=1)
    max_terminals: int = _field(MAX_TERMINALS, "terminals per store", "quotas", ge=1)
    kept_messages: int = _field(KEPT_MESSAGES, "messages kept per session, the newest", "quotas", ge=1)
    max_session_text_bytes: int = _field(
        MAX_SESSION_TEXT_BYTES, "UTF-8 bytes of message text kept per session", "quotas", ge=1
    )
    max_idempotency_keys: int = _field(
        MAX_IDEMPOTENCY_KEYS, "outcomes of idempotent writes kept in memory (in-memory store)", "quotas", ge=1
    )
    max_idempotency_bytes: int = _field(
        MAX_IDEMPOTENCY_BYTES, "bytes of those outcomes (in-memory store)", "quotas", ge=1
    )

    @field_validator("allow_origins", "allow_hosts", "forwarded_allow_ips", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`a,b` (a variable), several flags (each may hold commas), or a TOML array."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [part.strip() for v in value for part in v.split(",") if part.strip()]
        return value

    @field_validator("database", "tokens_file", "listen_fd", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`BACKEND_DATABASE=` (set, but empty) means unset, as it always did."""
        return None if value == "" else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (given as init values), then the environment, then the TOML file."""
        toml = _TOML.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)


def field_docs(cls: type) -> dict[str, str]:
    """The `#:` comments above each field of a class, by field name."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"([a-z_][a-z0-9_]*)\s*:", stripped)
        if m and pending:
            docs[m.group(1)] = " ".join(pending)
        pending = []
    return docs


def _realtime_fields() -> dict[str, Any]:
    hints = get_type_hints(RealtimeSettings)
    docs = field_docs(RealtimeSettings)
    return {
        f.name: (hints[f.name], _field(f.default, docs.get(f.name, ""), "realtime"))
        for f in dataclasses.fields(RealtimeSettings)
        if f.name not in DERIVED
    }


if TYPE_CHECKING:
    Settings = ServiceSettings
else:
    Settings = create_model("Settings", __base__=ServiceSettings, **_realtime_fields())
    Settings.__doc__ = "Every setting of `python -m backend` (`ServiceSettings` + `RealtimeSettings`)."

REALTIME_FIELDS = tuple(f.name for f in dataclasses.fields(RealtimeSettings) if f.name not in DERIVED)


# ---------------------------------------------------------------- names


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _info(name: str) -> FieldInfo:
    return Settings.model_fields[name]


def _extra(name: str) -> dict[str, Any]:
    extra = _info(name).json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _is_list(name: str) -> bool:
    return name in ("allow_origins", "allow_hosts", "forwarded_allow_ips")


def _is_bool(name: str) -> bool:
    return _info(name).annotation is bool


def _shown_default(name: str) -> str:
    default = _info(name).default
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return "none" if not default else ",".join(default)
    if isinstance(default, frozenset):
        return ",".join(sorted(default)) or "none"
    return f"{default:g}" if isinstance(default, float) else str(default)


# ---------------------------------------------------------------- the command line


def parser(prog: str = "python -m backend", description: str | None = None) -> argparse.ArgumentParser:
    """Flags for every field, grouped; only the flags given end up in the namespace."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Precedence: flag, then BACKEND_* variable, then the --config file, then the default. "
        "`python -m backend config` prints the effective settings. Reference: docs/configuration.md.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"a TOML file of settings (keys: the field names, e.g. writes_per_s = 100; env {CONFIG_ENV})",
    )
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for name, info in Settings.model_fields.items():
        extra = _extra(name)
        names = [flag(name), *extra.get("aliases", [])]
        help_text = (
            argparse.SUPPRESS
            if name in HIDDEN
            else f"{info.description} (env {env_name(name)}; default {_shown_default(name)})".replace(
                "%", "%%"
            )
        )
        group = groups[extra.get("group", "realtime")]
        if _is_bool(name):
            group.add_argument(*names, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
        elif _is_list(name):
            group.add_argument(*names, dest=name, action="append", metavar="VALUE", help=help_text)
        else:
            group.add_argument(*names, dest=name, metavar=_metavar(name), help=help_text)
    return parser


_METAVARS = {
    "host": "HOST",
    "broker": "URL",
    "database": "URL",
    "redis_prefix": "PREFIX",
    "log_format": "FORMAT",
}


def _metavar(name: str) -> str:
    annotation = _info(name).annotation
    if name in _METAVARS:
        return _METAVARS[name]
    if name.endswith("_s") and not name.endswith("_per_s"):
        return "SECONDS"
    if name.endswith("_bytes"):
        return "BYTES"
    if annotation in (Path, Path | None):
        return "FILE"
    return "N"


class SettingsError(Exception):
    """A value that does not validate: one line per problem, naming field and source."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


@dataclasses.dataclass(frozen=True)
class Loaded:
    settings: Any  # a `Settings`
    #: Where each field's value came from: "flag --x", "env BACKEND_X", "FILE", "default".
    sources: Mapping[str, str]


def load(
    argv: Sequence[str], environ: Mapping[str, str] | None = None, prog: str = "python -m backend"
) -> Loaded:
    """Parse `argv` (flags only), the environment and the TOML file into `Settings`.
    Raises `SettingsError` (and argparse exits 2 on an unknown flag)."""
    environ = os.environ if environ is None else environ
    args = vars(parser(prog).parse_args(list(argv)))
    config = args.pop("config", None) or environ.get(CONFIG_ENV) or None
    toml_path = Path(config) if config else None
    file_values: dict[str, Any] = {}
    if toml_path is not None:
        try:
            file_values = tomllib.loads(toml_path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError([f"--config {toml_path}: cannot read it: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError([f"--config {toml_path}: not valid TOML: {exc}"]) from None
    sources = {
        name: (
            f"flag {flag(name)}"
            if name in args
            else f"env {env_name(name)}"
            if env_name(name) in environ
            else f"{toml_path} ({name})"
            if name in file_values
            else "default"
        )
        for name in Settings.model_fields
    }
    token = _TOML.set(toml_path)
    try:
        settings = _from_environ(environ, args)
    except ValidationError as exc:
        raise SettingsError([_problem(error, sources, toml_path) for error in exc.errors()]) from None
    finally:
        _TOML.reset(token)
    return Loaded(settings, sources)


def _from_environ(environ: Mapping[str, str], args: dict[str, Any]) -> Any:
    """pydantic-settings reads `os.environ`; a test's own mapping is put in its place."""
    if environ is os.environ:
        return Settings(**args)
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})
    try:
        return Settings(**args)
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def _problem(error: Mapping[str, Any], sources: Mapping[str, str], toml: Path | None) -> str:
    loc = error.get("loc", ())
    name = str(loc[0]) if loc else "?"
    if error.get("type") == "extra_forbidden":
        where = f"--config {toml}" if toml is not None else "the settings"
        return f"{where}: unknown setting {name!r} (python -m backend --help lists them)"
    source = sources.get(name, "?")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {mask(name, value)!r})"
    return f"{source}: {name}: {error.get('msg', 'invalid')}{shown}"


# ---------------------------------------------------------------- checks across fields


def problems(settings: Any, sources: Mapping[str, str]) -> list[str]:
    """What the fields cannot be together, each line naming the fields' sources."""
    out: list[str] = []

    def bad(name: str, message: str) -> None:
        out.append(f"{sources.get(name, 'default')}: {name}: {message}")

    if not (settings.broker == "memory" or settings.broker.startswith(("redis://", "rediss://", "unix://"))):
        bad("broker", f"{settings.broker!r}: expected memory or redis://host:port/db")
    if settings.database is not None and not settings.database.startswith(("postgresql://", "postgres://")):
        bad("database", f"{mask('database', settings.database)!r}: expected postgresql://user@host:port/db")
    if settings.workers > 1 and settings.broker == "memory":
        bad(
            "workers",
            f"{settings.workers} with the in-memory broker: each process would number and deliver only its "
            "own events. Give --broker redis://host:port/db",
        )
    if settings.workers > 1 and settings.database is None:
        bad(
            "workers",
            f"{settings.workers} with the in-memory store: each process would keep its own sessions. "
            "Give --database postgresql://...",
        )
    if settings.port == 0 and (settings.allow_origins or settings.allow_hosts):
        bad("allow_origins" if settings.allow_origins else "allow_hosts", "needs a fixed --port")
    if settings.tokens_file is None and not settings.insecure_no_auth and not is_loopback(settings.host):
        bad(
            "host",
            f"{settings.host} is not a loopback address and authentication is off: give --tokens-file, "
            "or --insecure-no-auth if anyone who can reach the port may read and write",
        )
    from .proxies import ForwardedError, parse_allow_ips

    try:
        parse_allow_ips(settings.forwarded_allow_ips)
    except ForwardedError as exc:
        bad("forwarded_allow_ips", str(exc))
    try:
        realtime_settings(settings)
    except ValueError as exc:
        # The library's own check: name the fields its message names, in its order.
        message = str(exc)
        named = sorted((n for n in REALTIME_FIELDS if re.search(rf"\b{n}\b", message)), key=message.index)
        where = ", ".join(dict.fromkeys(sources.get(n, "default") for n in named)) or "realtime settings"
        out.append(f"{where}: {message}")
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def realtime_settings(settings: Any) -> RealtimeSettings:
    """The library's settings: its fields, and the allowed origins and hosts."""
    from aiohttp_realtime.auth import loopback_hosts, loopback_origins, parse_origins

    values = {name: getattr(settings, name) for name in REALTIME_FIELDS}
    origins = hosts = None
    if settings.allow_origins:
        origins = loopback_origins(settings.port) | parse_origins(settings.allow_origins)
    if settings.allow_hosts:
        hosts = loopback_hosts(settings.port) | frozenset(h.strip().lower() for h in settings.allow_hosts)
    return RealtimeSettings(**values, allowed_origins=origins, allowed_hosts=hosts)


def http_limits(settings: Any) -> HttpLimits:
    return HttpLimits(
        writes_per_s=settings.writes_per_s,
        writes_burst=settings.writes_burst,
        tracked_addresses=settings.tracked_addresses,
        body_grace_s=settings.body_grace_s,
        body_min_rate=settings.body_min_rate,
        body_timeout_s=settings.body_timeout_s,
        max_json_depth=settings.http_max_json_depth,
    )


QUOTAS = (
    "max_sessions",
    "max_title_bytes",
    "max_terminals",
    "kept_messages",
    "max_session_text_bytes",
    "max_idempotency_keys",
    "max_idempotency_bytes",
)


# ---------------------------------------------------------------- printing


_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@/]*@")


def mask(name: str, value: Any) -> Any:
    """A value as it may be shown: passwords in URLs masked."""
    if isinstance(value, str) and name in ("database", "broker"):
        return _URL_PASSWORD.sub(r"\1:***@", value)
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def effective(loaded: Loaded) -> str:
    """The effective settings as a TOML file, each line saying where its value came from."""
    lines = ["# python -m backend config: the effective settings (secrets masked)"]
    by_group: dict[str, list[str]] = {}
    for name in Settings.model_fields:
        if name in HIDDEN:
            continue
        value = mask(name, getattr(loaded.settings, name))
        line = (
            f"# {name} = (unset)  # {loaded.sources[name]}"
            if value is None
            else f"{name} = {_toml_value(value)}  # {loaded.sources[name]}"
        )
        by_group.setdefault(_extra(name).get("group", "realtime"), []).append(line)
    for key, title in GROUPS.items():
        lines += ["", f"# -- {title}", *by_group.get(key, [])]
    return "\n".join(lines) + "\n"


def reference() -> str:
    """docs/configuration.md's table of every setting (generated; a test compares)."""
    rows = []
    for key, title in GROUPS.items():
        rows += [
            f"\n### {title[0].upper()}{title[1:]}\n",
            "| setting (TOML key) | flag | variable | default | what |",
            "|---|---|---|---|---|",
        ]
        for name in Settings.model_fields:
            if name in HIDDEN or _extra(name).get("group", "realtime") != key:
                continue
            flags = " ".join(f"`{f}`" for f in [flag(name), *_extra(name).get("aliases", [])])
            if _is_bool(name):
                flags = f"`--[no-]{name.replace('_', '-')}`"
            doc = (_info(name).description or "").replace("|", "\\|")
            rows.append(f"| `{name}` | {flags} | `{env_name(name)}` | {_shown_default(name)} | {doc} |")
    return "\n".join(rows).lstrip("\n") + "\n"


def write_reference(path: Path) -> bool:
    """Rewrite the generated table of `path` (docs/configuration.md) between its markers;
    True if it changed."""
    begin, end = "<!-- reference:begin -->\n", "<!-- reference:end -->"
    text = path.read_text()
    new = text[: text.index(begin) + len(begin)] + reference() + text[text.index(end) :]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m backend.settings: regenerate docs/configuration.md's table
    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    print(f"{doc}: {'rewritten' if write_reference(doc) else 'up to date'}")
