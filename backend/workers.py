"""`python -m backend --workers N`: N worker processes serving one port.

A Python process uses one core; N workers use N. The parent binds the listening
socket once and starts N `python -m backend` children that inherit it (`--listen-fd`):
the kernel hands each new connection to one of them. The workers share nothing in
memory, so they need a shared broker (Redis: one numbering and fan-out across them)
and a shared store (PostgreSQL); `python -m backend` refuses more than one worker
without both.

The parent prints one `serving on …` line once every worker serves. SIGTERM or
SIGINT to the parent is passed on to every worker, each of which closes its clients
with 1012 as a single process does; whatever has not exited after
`STOP_TIMEOUT_S` is killed. A worker that dies on its own stops the others (exit
status 1): a supervisor (systemd, Kubernetes) restarts the whole set.

Metrics: the parent creates a temporary directory for prometheus-client's
multiprocess mode and gives it to the workers as `PROMETHEUS_MULTIPROC_DIR` (unless
one is set already), so any worker's `GET /metrics` reports the sum over all of them;
it removes the directory once they have stopped (docs/operations.md).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

#: How long the workers get to close their clients and exit after a stop.
STOP_TIMEOUT_S = 10.0
#: How long the workers get to start serving.
START_TIMEOUT_S = 60.0
#: prometheus-client's multiprocess directory (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def run_workers(argv: Sequence[str], host: str, port: int, workers: int) -> int:
    """Start `workers` children of `python -m backend argv` on one socket; return the
    exit status once they have all stopped."""
    sock = listening_socket(host, port)
    fd = sock.fileno()
    bound = sock.getsockname()[1]
    command = [sys.executable, "-m", "backend", *argv, "--workers", "1", "--listen-fd", str(fd)]
    env = {**os.environ}
    metrics_dir = None
    if not env.get(MULTIPROC_ENV):
        metrics_dir = env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="realtime-metrics-")
    try:
        return _run(command, fd, env, host, bound, workers)
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(command: list[str], fd: int, env: dict[str, str], host: str, bound: int, workers: int) -> int:
    children = [
        subprocess.Popen(command, pass_fds=(fd,), stdout=subprocess.PIPE, env=env) for _ in range(workers)
    ]
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not _wait_until_serving(children, lambda: stopping):
        return _stop(children, status=1)
    display = f"[{host}]" if ":" in host else host
    print(f"serving on http://{display}:{bound}/ ({workers} workers)", flush=True)
    while not stopping:
        if any(child.poll() is not None for child in children):
            print("a worker exited: stopping the others", file=sys.stderr, flush=True)
            return _stop(children, status=1)
        time.sleep(0.2)  # a signal handler runs meanwhile; nothing else to wait on
    return _stop(children, status=0)


def _wait_until_serving(children: list[subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> bool:
    """Read each worker's first line until all say they serve."""
    selector = selectors.DefaultSelector()
    for child in children:
        assert child.stdout is not None
        selector.register(child.stdout, selectors.EVENT_READ, child)
    ready: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(ready) < len(children):
        if stopping():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for key, _ in selector.select(min(remaining, 0.5)):
            worker: subprocess.Popen[bytes] = key.data
            line = worker.stdout.readline() if worker.stdout is not None else b""
            if not line:
                return False  # it exited before serving
            if line.startswith(b"serving on"):
                ready.add(worker.pid)
                selector.unregister(key.fileobj)
    return True


def _stop(children: list[subprocess.Popen[bytes]], *, status: int) -> int:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return status
