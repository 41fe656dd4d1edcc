"""Real reverse proxies for the tests: Debian's nginx and HAProxy (`scripts/setup-proxies`),
each started as this test's own child process, on free loopback ports, from the very
configuration files an operator copies (`deploy/nginx.conf`, `deploy/haproxy.cfg`),
rendered into a temporary directory. Only their `{{PLACEHOLDERS}}` are replaced
(`render`; docs/deploy.md lists them); what a proxy needs to run as an unprivileged test
process (pid file, logs, temporary paths: what Debian's /etc/nginx/nginx.conf and the
`global` section of /etc/haproxy/haproxy.cfg hold) is a small wrapper written here.

- `proxy_certificate`: a session fixture, a self-signed certificate for 127.0.0.1 and
  localhost made with the openssl CLI (`Certificate.client_context()` trusts it).
- `nginx(backends, certificate)` / `haproxy(...)`: async context managers yielding a
  running `Proxy` (its TLS port, its URLs), stopped at exit (nginx SIGQUIT, HAProxy
  SIGTERM; killed, with its workers, if it lingers). `backends` are one or two backend
  ports (or `host:port`s), round-robin; one fills both of the file's `server` lines.
- `backend_node(*args)`: `python -m backend --no-simulate` on a free port, whose output
  is read all along (a long test's access log never fills the pipe) and can be awaited
  line by line (`Node.line(pattern)`); `serving(command, port)` runs any such command
  (the systemd unit's `ExecStart`). Give a node the proxy's public host: `nginx(...,
  port=P)` takes a port chosen beforehand, for the node's `--allow-host 127.0.0.1:P`.
- `session_from(address, certificate)`: an aiohttp session whose connections come from
  a given loopback address (127.0.0.2, 127.0.0.3...), so each is a client of its own.

A missing program skips the test, saying so, unless `CI` is set: there it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
#: How long a proxy or a backend gets to start accepting, and a proxy to stop.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_program(name: str) -> str:
    """The path of `name` (also looked for in /usr/sbin, which a user's PATH may lack);
    missing: the test is skipped, or fails under CI."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is not None:
        return found
    message = f"{name} is not installed: run scripts/setup-proxies (Debian's nginx, haproxy and openssl)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


# --- the deploy/ files ------------------------------------------------------------------


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, values: Mapping[str, object]) -> str:
    """`text` with every `{{NAME}}` replaced by `values[NAME]`; a placeholder without a
    value, or a value without a placeholder, is an error (the file and the tests agree)."""
    names = placeholders(text)
    if missing := names - values.keys():
        raise KeyError(f"no value for {sorted(missing)}")
    if unused := values.keys() - names:
        raise KeyError(f"no placeholder for {sorted(unused)}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def deploy_file(name: str) -> str:
    return (DEPLOY / name).read_text()


def backend_values(backends: Sequence[int | str]) -> dict[str, str]:
    """`BACKEND_1` and `BACKEND_2` (host:port) for one or two backends."""
    addresses = [b if isinstance(b, str) else f"127.0.0.1:{b}" for b in backends]
    if not 1 <= len(addresses) <= 2:
        raise ValueError(f"deploy/ shows two backend nodes; got {len(addresses)}")
    return {"BACKEND_1": addresses[0], "BACKEND_2": addresses[-1]}


# --- the certificate --------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost: `cert` and `key` (PEM), and
    `pem`, both in one file (HAProxy's `crt`)."""

    cert: Path
    key: Path
    pem: Path

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this certificate (and verifies the name)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(directory: Path) -> Certificate:
    openssl = require_program("openssl")
    cert, key, pem = directory / "cert.pem", directory / "key.pem", directory / "cert+key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    pem.write_text(cert.read_text() + key.read_text())
    return Certificate(cert, key, pem)


@pytest.fixture(scope="session")
def proxy_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1/localhost, made once per test session."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


# --- running a proxy --------------------------------------------------------------------


@dataclass
class Proxy:
    """A running proxy: TLS on 127.0.0.1:`port` (and, for nginx, plain HTTP on
    `internal_port`, the listener for a load balancer in front of it)."""

    name: str
    port: int
    directory: Path
    process: asyncio.subprocess.Process
    config: str
    internal_port: int | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        """The browser origin of a page served through this proxy."""
        return f"https://{self.host}"

    def url(self, path: str = "/") -> str:
        return f"https://{self.host}{path}"

    def ws_url(self, path: str = "/api/realtime") -> str:
        return f"wss://{self.host}{path}"

    def log(self) -> str:
        """Everything the proxy logged so far (its error log, access log and output)."""
        return _logs(self.directory)


def _logs(directory: Path) -> str:
    logs = sorted(directory.glob("*.log"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in logs)


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def _running(
    name: str, command: list[str], directory: Path, ports: Sequence[int], stop: signal.Signals
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `command` in a session of its own (so that its workers can be killed with it)
    until every port in `ports` accepts; at exit send `stop`, then kill the group."""
    with (directory / "output.log").open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        for port in ports:
            # Polling the port is all there is: the proxy announces nothing when it listens.
            while not await _accepts(port):
                if process.returncode is not None or loop.time() > deadline:
                    pytest.fail(f"{name} did not start (exit {process.returncode}):\n{_logs(directory)}")
                await asyncio.sleep(0.02)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(stop)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and workers
                await process.wait()


NGINX_MAIN = """\
# What Debian's /etc/nginx/nginx.conf holds, for a test process: runs in the
# foreground, everything under {dir}.
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
# A graceful stop (SIGQUIT) waits for open WebSockets: not for long in the tests.
worker_shutdown_timeout 1s;
events {{
    worker_connections 4096;
}}
http {{
    log_format proxied '$remote_addr "$http_x_forwarded_for" "$request" $status $upstream_addr';
    access_log {dir}/access.log proxied;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/backend.conf;
}}
"""


@contextlib.asynccontextmanager
async def nginx(
    backends: Sequence[int | str],
    certificate: Certificate,
    *,
    port: int | None = None,
    server_name: str = "localhost",
) -> AsyncIterator[Proxy]:
    """nginx with `deploy/nginx.conf` in front of `backends` (ports on 127.0.0.1), on
    `port` (a free one unless given: a backend started first names it in --allow-host)."""
    binary = require_program("nginx")
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        directory = Path(tmp)
        port, internal = port or free_port(), free_port()
        config = render(
            deploy_file("nginx.conf"),
            {
                **backend_values(backends),
                "LISTEN": f"127.0.0.1:{port}",
                "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                "SERVER_NAME": server_name,
                "CERT_FILE": certificate.cert,
                "KEY_FILE": certificate.key,
            },
        )
        (directory / "backend.conf").write_text(config)
        # Run as root (a container's test run), the workers would become `nobody`: keep
        # them the user that owns the directory.
        user = "user root;" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory, user=user))
        command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"]
        async with _running("nginx", command, directory, (port, internal), signal.SIGQUIT) as process:
            yield Proxy("nginx", port, directory, process, config, internal_port=internal)


HAPROXY_GLOBAL = """\
# What the `global` section of Debian's /etc/haproxy/haproxy.cfg holds, for a test
# process (foreground: -db).
global
    maxconn 4000
    log stderr format raw local0 info
    hard-stop-after 2s
"""


@contextlib.asynccontextmanager
async def haproxy(
    backends: Sequence[int | str], certificate: Certificate, *, port: int | None = None
) -> AsyncIterator[Proxy]:
    """HAProxy with `deploy/haproxy.cfg` in front of `backends` (ports on 127.0.0.1), on
    `port` (a free one unless given)."""
    binary = require_program("haproxy")
    with tempfile.TemporaryDirectory(prefix="haproxy-") as tmp:
        directory = Path(tmp)
        port = port or free_port()
        config = render(
            deploy_file("haproxy.cfg"),
            {**backend_values(backends), "LISTEN": f"127.0.0.1:{port}", "CERT_PEM": certificate.pem},
        )
        (directory / "haproxy.cfg").write_text(config)
        (directory / "global.cfg").write_text(HAPROXY_GLOBAL)
        command = [binary, "-db", "-f", str(directory / "global.cfg"), "-f", str(directory / "haproxy.cfg")]
        async with _running("haproxy", command, directory, (port,), signal.SIGTERM) as process:
            yield Proxy("haproxy", port, directory, process, config)


# --- the backend ------------------------------------------------------------------------


@dataclass
class Node:
    """A running `python -m backend`: its port and every line it printed (stdout and
    stderr: the logs, the access log), read as they come."""

    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ended: bool = False

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._ended = True
            self._changed.notify_all()

    async def line(self, pattern: str, *, timeout: float = 10) -> re.Match[str]:
        """The first line (printed so far or later) that `pattern` matches."""
        regex = re.compile(pattern)
        seen = 0
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for text in self.lines[seen:]:
                    if match := regex.search(text):
                        return match
                seen = len(self.lines)
                if self._ended:
                    raise AssertionError(f"backend exited; no line matched {pattern!r}: {self.lines}")
                await self._changed.wait()

    def output(self) -> str:
        return "\n".join(self.lines)


@contextlib.asynccontextmanager
async def serving(
    command: Sequence[str], port: int, *, cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> AsyncIterator[Node]:
    """Run a `python -m backend` command (listening on `port`) until it prints its
    `serving on` line; killed at exit unless the test ended it."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )
    node = Node(process, port)
    reader = asyncio.create_task(node._read())
    try:
        try:
            await node.line(r"^serving on ", timeout=START_TIMEOUT_S)
        except (AssertionError, TimeoutError):
            pytest.fail(f"backend did not serve: {command}\n{node.output()}")
        yield node
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(reader, 5)


@contextlib.asynccontextmanager
async def backend_node(*args: str, port: int | None = None) -> AsyncIterator[Node]:
    """`python -m backend --no-simulate --port P *args` (a free port unless given)."""
    port = free_port() if port is None else port
    command = [sys.executable, "-m", "backend", "--port", str(port), "--no-simulate", *args]
    async with serving(command, port) as node:
        yield node


# --- clients ----------------------------------------------------------------------------


def session_from(
    address: str, certificate: Certificate | None = None, **kwargs: object
) -> aiohttp.ClientSession:
    """A client session whose connections come from `address` (any of 127.0.0.0/8 works
    on Linux without set-up), trusting `certificate` for https/wss."""
    connector = aiohttp.TCPConnector(
        local_addr=(address, 0),
        ssl=certificate.client_context() if certificate is not None else True,
        limit=0,
    )
    return aiohttp.ClientSession(connector=connector, **kwargs)  # type: ignore[arg-type]
