"""PostgreSQL for the tests: the shared server on 127.0.0.1:5432 when it answers, else a
throwaway cluster (`initdb` + `pg_ctl`) on a free port in a temporary directory, for
the whole test session. Each test gets a database of its own (`rt_test_<random>`,
created from template0 in UTF8 and dropped after), so parallel runs never collide.

Never skipped: without a server and without `initdb`, the tests fail and say so."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.support import free_port

SHARED = ("127.0.0.1", 5432)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = installed[-1] if installed else None
    if found is None:
        pytest.fail(f"{name} is not installed and 127.0.0.1:5432 does not answer: apt-get install postgresql")
    return found


@dataclass
class Cluster:
    """A PostgreSQL cluster of the tests' own (trust auth, user postgres), which a test
    may freeze (SIGSTOP every process of it: connections and new connects hang, as a
    black-holed server's do), thaw, or restart."""

    directory: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        """Its admin URL (the `postgres` database)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, _binary("pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", f"{self.directory}/log", "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster first, then its children (backends and helpers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                if int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the whole cluster: the postmaster first, so that it forks no more."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self.pids()):
            os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()


@contextlib.contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A started cluster in a temporary directory, on a free port; removed on exit."""
    initdb = _binary("initdb")
    # initdb refuses to run as root: then the cluster belongs to the postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="rt-pg-") as directory:
        cluster = Cluster(Path(directory), free_port(), as_user)
        if as_user:
            shutil.chown(directory, "postgres")
        options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        subprocess.run(
            [*as_user, initdb, "-D", str(cluster.data), *options], check=True, stdout=subprocess.DEVNULL
        )
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                cluster.thaw()  # a test that failed while it was frozen
            subprocess.run(
                [*as_user, _binary("pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A cluster of its own (trust auth, user postgres): yields its admin URL."""
    with own_cluster() as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The `postgres` database of a server the tests may create databases on:
    REALTIME_TEST_POSTGRES when set (CI's service), else the shared one, else our own."""
    configured = os.environ.get("REALTIME_TEST_POSTGRES")
    if configured:
        yield configured
        return
    if _answers(*SHARED) and not os.environ.get("REALTIME_TEST_OWN_POSTGRES"):
        yield f"postgresql://postgres@{SHARED[0]}:{SHARED[1]}/postgres"
        return
    with throwaway_cluster() as url:
        yield url


@contextlib.asynccontextmanager
async def new_database(admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database (UTF8) on the server of `admin_url`; dropped on exit."""
    name = f"rt_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await admin.close()
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def pg_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A database of this test's own."""
    async with new_database(pg_admin_url) as url:
        yield url


async def drop_database(url: str, admin_url: str) -> None:
    """Drop the database `url` names, cutting every connection to it (a store outage)."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()
