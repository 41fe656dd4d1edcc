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

SIGHUP to the parent restarts the workers one at a time (a rolling restart, e.g. to
run newly deployed code), without dropping the other workers' clients. For each
worker in turn, the parent starts its replacement on the same inherited socket (the
same command line and environment) and waits until it serves, then sends the old one
SIGTERM: it stops accepting, closes its clients with 1012 and the reconnect window as
on any shutdown (the other workers, the replacement among them, take their
reconnects), and exits; once it has (or has been killed after `STOP_TIMEOUT_S`), the
next. The replacement starts first so that the set never serves with fewer than N
workers, and so that a replacement that does not come up (within `START_TIMEOUT_S`)
costs nothing: the parent kills it, says so on stderr, and the restart stops there,
the workers not yet replaced serving on (the next SIGHUP tries again). Only these
SIGHUP-requested exits are expected; a worker that dies otherwise, during a restart
too, stops the set as above. A SIGHUP during a restart asks for another one after it;
SIGTERM or SIGINT during one stops everything. Send SIGHUP to the parent alone: a
worker has no handler for it and dies of it (which stops the set).

The parent waits on events, not a timer: the workers' stdout pipes (their `serving
on` line; end of file when one exits) and its own signals (`signal.set_wakeup_fd`).

Metrics: the parent creates a temporary directory for prometheus-client's
multiprocess mode and gives it to the workers as `PROMETHEUS_MULTIPROC_DIR` (unless
one is set already), so any worker's `GET /metrics` reports the sum over all of them;
a worker retired by a restart has its live gauges' files removed
(`mark_process_dead`), and the parent removes the directory once they have all
stopped (docs/operations.md).
"""

from __future__ import annotations

import contextlib
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
from enum import Enum
from types import FrameType

#: How long the workers get to close their clients and exit after a stop.
STOP_TIMEOUT_S = 10.0
#: How long the workers (and a replacement in a restart) get to start serving.
START_TIMEOUT_S = 60.0
#: prometheus-client's multiprocess directory (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The signal that asks for a rolling restart.
RESTART_SIGNAL = signal.SIGHUP


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
        with _Parent(command, fd, env) as parent:
            return parent.run(host, bound, workers)
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _Worker:
    """A worker process and its stdout, read without blocking: `serving` once it has
    printed its `serving on` line, `ended` at end of file (it has exited)."""

    def __init__(self, command: list[str], fd: int, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, pass_fds=(fd,), stdout=subprocess.PIPE, env=env)
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        os.set_blocking(self.stdout.fileno(), False)
        self.serving = False
        self.ended = False
        self._line = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self) -> None:
        """Read what is there. A worker prints nothing to stdout but its `serving on`
        line (its logs go to stderr, which it shares with the parent): the rest is
        dropped, but read, so that the pipe never fills."""
        try:
            data = os.read(self.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self.ended = True
            return
        if not self.serving:
            *lines, self._line = (self._line + data).split(b"\n")
            self.serving = any(line.startswith(b"serving on") for line in lines)

    def reap(self) -> None:
        """Wait for the exit its end of file announced (killed if it lingers)."""
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()


class _Woke(Enum):
    DONE = "done"  # the condition waited for holds
    STOP = "stop"  # SIGTERM or SIGINT
    DIED = "died"  # a worker exited that was not asked to
    TIMEOUT = "timeout"


class _Parent:
    def __init__(self, command: list[str], fd: int, env: dict[str, str]) -> None:
        self.command = command
        self.fd = fd
        self.env = env
        self.workers: list[_Worker] = []
        #: Workers sent SIGTERM: their exit is expected, and they get no second signal
        #: (a second SIGTERM would kill a worker in the middle of closing its clients).
        self.retiring: set[_Worker] = set()
        #: The worker whose exit `_wait` last reported as DIED.
        self.died: _Worker | None = None
        self.stopping = False
        self.restart_requested = False
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for end in (self._wake_r, self._wake_w):
            os.set_blocking(end, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)

    def __enter__(self) -> _Parent:
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signals = (signal.SIGTERM, signal.SIGINT, RESTART_SIGNAL)
        self._old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_wakeup)
        for worker in self.workers:  # only after an exception: stopped ones are gone
            with contextlib.suppress(OSError):
                worker.process.kill()
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == RESTART_SIGNAL:
            self.restart_requested = True
        else:
            self.stopping = True

    # ------------------------------------------------------------ the set

    def run(self, host: str, bound: int, count: int) -> int:
        for _ in range(count):
            self._spawn()
        if self._wait(lambda: all(w.serving for w in self.workers), START_TIMEOUT_S) is not _Woke.DONE:
            return self._stop(status=1)
        display = f"[{host}]" if ":" in host else host
        print(f"serving on http://{display}:{bound}/ ({count} workers)", flush=True)
        while True:
            woke = self._wait(lambda: self.restart_requested)
            if woke is _Woke.STOP:
                return self._stop(status=0)
            if woke is _Woke.DIED:
                return self._died()
            status = self._rolling_restart()
            if status is not None:
                return status

    def _rolling_restart(self) -> int | None:
        """Replace every worker, one at a time; the exit status if the set stopped."""
        self.restart_requested = False
        _say(f"restart requested: replacing the {len(self.workers)} workers one at a time")
        for old in list(self.workers):
            woke = self._replace(old)
            if woke is _Woke.STOP:
                return self._stop(status=0)
            if woke is _Woke.DIED:
                return self._died()
            if woke is _Woke.TIMEOUT:
                return None  # the replacement did not come up: the others serve on
        _say(f"restart done: {len(self.workers)} new workers serve")
        return None

    def _replace(self, old: _Worker) -> _Woke:
        """Start a replacement, once it serves stop `old` and wait for its exit. DONE;
        TIMEOUT if the replacement did not come up (then it is killed, `old` kept);
        STOP, or DIED for a worker that exited unasked."""
        new = self._spawn()
        woke = self._wait(lambda: new.serving, START_TIMEOUT_S)
        if (woke is _Woke.DIED and self.died is new) or woke is _Woke.TIMEOUT:
            why = "exited" if woke is _Woke.DIED else f"did not serve within {START_TIMEOUT_S:g} s"
            _say(f"a replacement worker {why}: restart stopped, the workers not replaced serve on")
            self._retire(new, kill=True)
            return _Woke.TIMEOUT
        if woke is not _Woke.DONE:
            return woke
        self.retiring.add(old)
        old.process.send_signal(signal.SIGTERM)  # it drains: 1012 and the reconnect window
        woke = self._wait(lambda: old.ended, STOP_TIMEOUT_S)
        if woke is _Woke.DONE or woke is _Woke.TIMEOUT:
            self._retire(old, kill=woke is _Woke.TIMEOUT)
            return _Woke.DONE
        return woke

    def _spawn(self) -> _Worker:
        worker = _Worker(self.command, self.fd, self.env)
        self.workers.append(worker)
        self.selector.register(worker.stdout, selectors.EVENT_READ, worker)
        return worker

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        """Forget a worker that has exited (or kill it first)."""
        if kill:
            worker.process.kill()
        if not worker.ended:
            self.selector.unregister(worker.stdout)
        worker.reap()
        self.workers.remove(worker)
        self.retiring.discard(worker)
        _mark_dead(worker.pid, self.env.get(MULTIPROC_ENV))

    def _died(self) -> int:
        _say("a worker exited: stopping the others")
        return self._stop(status=1)

    def _stop(self, *, status: int) -> int:
        for worker in self.workers:
            if worker not in self.retiring and not worker.ended:
                self.retiring.add(worker)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        self.retiring.update(self.workers)  # every exit is expected now
        self._wait(lambda: all(w.ended for w in self.workers), STOP_TIMEOUT_S, interruptible=False)
        for worker in list(self.workers):
            self._retire(worker, kill=not worker.ended)
        return status

    # ------------------------------------------------------------ waiting

    def _wait(
        self, condition: Callable[[], bool], timeout: float | None = None, *, interruptible: bool = True
    ) -> _Woke:
        """Until `condition()` holds, a stop is asked for (if `interruptible`), a worker
        not retiring exits, or `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if condition():
                return _Woke.DONE
            if interruptible and self.stopping:
                return _Woke.STOP
            for worker in self.workers:
                if worker.ended and worker not in self.retiring:
                    self.died = worker
                    return _Woke.DIED
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return _Woke.TIMEOUT
            for key, _ in self.selector.select(remaining):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 512)  # a signal: its handler has set a flag
                    continue
                ready: _Worker = key.data
                ready.read()
                if ready.ended:
                    self.selector.unregister(ready.stdout)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mark_dead(pid: int, directory: str | None) -> None:
    """Drop a retired worker's live gauges (`livesum`) from the metrics directory."""
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
