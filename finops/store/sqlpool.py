"""Worker processes that run user SQL: a query that does not stop at its time limit is killed with its worker.

DuckDB's interrupt stops most queries within milliseconds, but not all (one call of `repeat('x', 2e9)`
runs to its end), and its memory limit does not cover every allocation. So user SQL runs in a small pool
of worker processes, each with:
  - a lower CPU priority (`nice`), so runaway SQL cannot starve the API's own requests;
  - an address-space data limit (RLIMIT_DATA) a little above DuckDB's memory limit, so an allocation
    DuckDB does not account for fails instead of growing the process;
  - its sandbox connection (`finops.store.readonly.open_sandbox`), opened per set of snapshot files and
    reused while they are current.
The parent sends a request, waits until the time limit plus a grace period, and then kills the worker
(SIGKILL) and starts another. Requests wait for a free worker; waiting counts against the time limit, and
so does waiting for a replacement worker to start: every request is answered by its deadline plus the
grace period, whatever the requests before it did.

A caller (an API key) whose query was stopped at the time or memory limit is *on probation* for
`PoolLimits.probation_s`: its queries run only on the pool's *low* workers (all but one, at the lower CPU
priority `probation_nice`), so one runaway client, or ten, cannot hold every worker, and other callers'
queries still run at once and get most of the CPU. Waiting requests are served in order of
standing, then arrival: callers whose last query was answered first, then the others, then callers on
probation, so a busy pool serves its well-behaved users before new clients that may be runaway ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from finops.errors import FinopsError, InputError, QueryTimeout
from finops.store import readonly
from finops.store.readonly import QueryRefused, QueryResult, QueryTooLarge, SandboxLimits

__all__ = ["PoolLimits", "SqlBusy", "SqlPool"]

GRACE_S = 0.15  # after the interrupt, how long a query may take to stop before its worker is killed
STARTUP_S = 60.0  # how long a new worker may take to start (import DuckDB) before it counts as failed


class SqlBusy(FinopsError):
    """Every SQL worker stayed busy until the request's time limit, or a snapshot could not be opened."""

    status_code = 503
    code = "sql_busy"


class _NotStarted(Exception):
    """A replacement worker had not started by the request's deadline."""


_ERRORS: dict[str, type[FinopsError]] = {
    c.__name__: c for c in (InputError, QueryTimeout, QueryRefused, QueryTooLarge, SqlBusy)
}


@dataclass(frozen=True)
class PoolLimits:
    workers: int = 2
    nice: int = 10
    probation_s: float = 60.0  # a caller whose query hit a limit runs on the low workers for this long
    probation_nice: int = 19  # CPU niceness of the low workers (all but one; none in a pool of one)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    max_result_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class _Request:
    files: dict[str, str]
    sql: str
    max_rows: int
    time_limit_ms: int
    limit_setting: str
    max_result_bytes: int


class _Worker:
    """One worker process (`python -m finops.store.sqlpool`), spoken to with length-prefixed pickles over
    its stdin and stdout (a private pipe between this process and its own child)."""

    def __init__(self, limits: PoolLimits) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "finops.store.sqlpool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in: IO[bytes] = self.process.stdin
        self._out: IO[bytes] = self.process.stdout
        self.ready = False  # the worker says "ready" once it has started (imports, limits): see `wait_ready`
        self.first = False  # one of the pool's first workers (see `SqlPool.run`)
        self.low = False  # runs at `probation_nice`; the only kind of worker a caller on probation gets
        self.sent_at = 0.0  # when the current request was sent (`time.monotonic()`)
        self.send(limits)

    def wait_ready(self, timeout_s: float) -> float:
        """Wait for a new worker's "ready"; return the seconds waited."""
        if self.ready:
            return 0.0
        began = time.monotonic()
        if not self.wait_ready_until(began + timeout_s):
            raise EOFError("the SQL worker did not start")
        return time.monotonic() - began

    def wait_ready_until(self, deadline: float) -> bool:
        """Wait for a new worker's "ready" until `deadline` (a `time.monotonic()` value); False if it has not
        come by then (the worker may still start: ask again later)."""
        if self.ready:
            return True
        if not self.poll(deadline - time.monotonic()):
            return False
        if self.recv() != ("ready",):
            raise EOFError("the SQL worker did not start")
        self.ready = True
        return True

    def send(self, message: object) -> None:
        _write(self._in, message)

    def poll(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self._out], [], [], max(timeout_s, 0))
        return bool(ready)

    def recv(self) -> Any:
        return _read(self._out)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)
        for stream in (self._in, self._out):
            with contextlib.suppress(Exception):
                stream.close()


def _write(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the SQL worker closed its pipe")
    (size,) = struct.unpack("!Q", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the SQL worker closed its pipe")
    return pickle.loads(data)


class SqlPool:
    """A fixed number of SQL worker processes, started on first use."""

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self._idle: deque[_Worker] = deque()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # a worker went back to `_idle`
        self._probation: dict[str, float] = {}  # caller -> monotonic time its probation ends
        self._answered: set[str] = set()  # callers whose last query was answered (not stopped at a limit)
        self._waiting: dict[int, str | None] = {}  # arrival number -> caller, of the requests waiting for a worker
        self._arrivals = itertools.count()
        self._started = False
        self._closed = False

    def _start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            for i in range(self.limits.workers):
                self._add(first=True, low=i > 0)
            self._started = True

    def _add(self, *, first: bool = False, low: bool = False) -> None:
        """Start a worker and make it available (call with `_lock` held)."""
        worker = _Worker(dataclasses.replace(self.limits, nice=self.limits.probation_nice) if low else self.limits)
        worker.first, worker.low = first, low
        self._all.add(worker)
        self._idle.append(worker)
        self._freed.notify_all()

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            if not self._closed:
                self._add(low=worker.low)

    def on_probation(self, caller: str | None) -> bool:
        if caller is None:
            return False
        with self._lock:
            return self._on_probation(caller, time.monotonic())

    def _on_probation(self, caller: str | None, now: float) -> bool:
        until = self._probation.get(caller) if caller is not None else None
        if until is not None and until <= now:
            del self._probation[caller]  # type: ignore[arg-type]
            return False
        return until is not None

    def _acquire(self, caller: str | None, deadline: float, time_limit_ms: int) -> _Worker:
        """A free worker: for a caller on probation, a low one (in a pool of one, the one). Waiting requests
        take workers in order of their caller's standing now (`_standing`), then arrival; the others prefer
        the workers that are not low."""
        with self._lock:
            arrival = next(self._arrivals)
            self._waiting[arrival] = caller
            try:
                while True:
                    now = time.monotonic()
                    worker = self._free_worker(self._on_probation(caller, now))
                    if worker is not None and arrival == self._next_in_line(now):
                        self._idle.remove(worker)
                        return worker
                    if now >= deadline or not self._freed.wait(deadline - now):
                        if time.monotonic() >= deadline:
                            raise SqlBusy(
                                f"Every SQL worker stayed busy for the whole time limit ({time_limit_ms} ms); try "
                                "again shortly. The number of workers is FINOPS_SQL_WORKERS.",
                                time_limit_ms=time_limit_ms,
                            )
            finally:
                del self._waiting[arrival]
                self._freed.notify_all()  # the next in line may take another free worker

    def _standing(self, caller: str | None, now: float) -> int:
        """0: the caller's last query was answered; 1: other callers; 2: on probation."""
        return 2 if self._on_probation(caller, now) else 0 if caller in self._answered else 1

    def _free_worker(self, probation: bool) -> _Worker | None:
        """An idle worker this request may take: on probation, a low one (or the only worker of a pool of
        one); otherwise one that is not low if there is one."""
        if probation and self.limits.workers > 1:
            return next((w for w in self._idle if w.low), None)
        return min(self._idle, key=lambda w: w.low, default=None)

    def _next_in_line(self, now: float) -> int | None:
        """The arrival number of the first waiting request that may start now, by its caller's standing now
        (a caller put on probation while its request waited drops back) and then arrival; one on probation
        only while a low worker is free."""
        low_free = self.limits.workers == 1 or any(w.low for w in self._idle)
        line = [(self._standing(c, now), n) for n, c in self._waiting.items()]
        eligible = [(standing, n) for standing, n in line if standing < 2 or low_free]
        return min(eligible)[1] if eligible else None

    def _release(self, worker: _Worker, *, healthy: bool) -> None:
        with self._lock:
            if healthy:
                self._idle.append(worker)
            self._freed.notify_all()
        if not healthy:
            threading.Thread(target=self._replace, args=(worker,), daemon=True).start()

    def _stopped(self, caller: str | None, ran: float, time_limit_ms: int) -> None:
        """After a query was stopped at a limit, having run `ran` seconds in the worker: its caller loses its
        place at the front of the line, and goes on probation (or stays on it) unless the query was new to it
        and had under half its limit left when it started (it waited behind others: not its caller's fault)."""
        if caller is None:
            return
        with self._lock:
            self._answered.discard(caller)
            on_probation = self._on_probation(caller, time.monotonic())
            if self.limits.probation_s > 0 and (on_probation or ran >= time_limit_ms / 2000):
                self._probation[caller] = time.monotonic() + self.limits.probation_s

    def _answer(self, caller: str | None) -> None:
        """After an answer: the caller stands first in line (while its queries are answered)."""
        if caller is not None:
            with self._lock:
                self._answered.add(caller)

    def run(
        self,
        files: Mapping[str, Path],
        sql: str,
        *,
        max_rows: int,
        time_limit_ms: int,
        limit_setting: str = "FINOPS_SQL_TIME_LIMIT_MS",
        started: float | None = None,
        caller: str | None = None,
    ) -> QueryResult:
        """Run one checked SELECT over `files` (view name -> snapshot file) in a worker, within the limits.

        `started` (a `time.monotonic()` value) is when the request arrived: time spent waiting for a
        worker counts against `time_limit_ms`. `caller` (an API key id) is who asks: a caller whose query
        hits the time or memory limit goes on probation (see the module's text)."""
        readonly.check_select(sql)
        self._start()
        started = time.monotonic() if started is None else started
        deadline = started + time_limit_ms / 1000
        worker = self._acquire(caller, deadline, time_limit_ms)
        healthy = False
        try:
            reply = self._ask(worker, files, sql, max_rows, time_limit_ms, limit_setting, deadline)
            ran = time.monotonic() - worker.sent_at  # read before the worker goes back to the pool
            healthy = True
        except _NotStarted:
            healthy = True  # still starting: the next request waits for it
            raise SqlBusy(
                f"No SQL worker was free within the time limit ({time_limit_ms} ms): one is starting after a "
                "query was stopped. Try again shortly.",
                time_limit_ms=time_limit_ms,
            ) from None
        except (QueryTimeout, QueryTooLarge):
            self._stopped(caller, time.monotonic() - worker.sent_at, time_limit_ms)
            raise
        finally:
            self._release(worker, healthy=healthy)
        if reply[0] == "ok":
            self._answer(caller)
            result: QueryResult = reply[1]
            return result
        _, name, message, context = reply
        if name in ("QueryTimeout", "QueryTooLarge"):
            self._stopped(caller, ran, time_limit_ms)
        if name == "QueryTimeout":  # the worker knew only the time left; say the limit the caller has
            raise QueryTimeout(
                f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is {limit_setting}.",
                time_limit_ms=time_limit_ms,
            )
        raise _ERRORS.get(name, InputError)(message, **context)

    def _ask(
        self,
        worker: _Worker,
        files: Mapping[str, Path],
        sql: str,
        max_rows: int,
        time_limit_ms: int,
        limit_setting: str,
        deadline: float,
    ) -> Any:
        """Send one request to `worker` and wait for its reply until the deadline plus the grace period.
        Raises when the worker must be replaced (stopped, crashed, or did not start in time)."""
        if not worker.ready:
            # The pool's first start (importing DuckDB in each worker) is not the query's time: it gets its
            # whole limit after that. A worker replacing one a runaway query killed is, as any wait for a
            # busy pool, so the answer comes by the deadline, whatever the queries before it did.
            try:
                if worker.first:
                    deadline += worker.wait_ready(STARTUP_S)
                elif not worker.wait_ready_until(deadline):
                    raise _NotStarted
            except (EOFError, OSError, pickle.UnpicklingError):
                raise SqlBusy("A SQL worker failed to start; try again.") from None
        remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
        request = _Request(
            {k: str(v) for k, v in files.items()},
            sql,
            max_rows,
            remaining_ms,
            limit_setting,
            self.limits.max_result_bytes,
        )
        try:
            worker.sent_at = time.monotonic()
            worker.send(request)
            if not worker.poll(remaining_ms / 1000 + GRACE_S):
                raise QueryTimeout(
                    f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is {limit_setting}.",
                    time_limit_ms=time_limit_ms,
                )
            return worker.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            raise QueryTooLarge(
                "The query stopped its SQL worker (it ran out of memory or crashed) and was abandoned. "
                f"The memory limit is {self.limits.sandbox.memory_setting}."
            ) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()


# ------------------------------------------------------------------------------------------ the worker


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's loop: its limits first, then one request at a time, answered with ("ok", result) or
    ("error", class name, message, context)."""
    limits: PoolLimits = _read(stdin)
    with contextlib.suppress(OSError):
        os.nice(limits.nice)
    memory = (limits.sandbox.memory_limit_mb + 512) * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    sandbox = SandboxLimits(
        memory_limit_mb=limits.sandbox.memory_limit_mb,
        threads=limits.sandbox.threads,
        temp_dir=None if limits.sandbox.temp_dir is None else limits.sandbox.temp_dir / f"worker-{os.getpid()}",
        max_temp_mb=limits.sandbox.max_temp_mb,
        memory_setting=limits.sandbox.memory_setting,
    )
    open_sets: OrderedDict[tuple[tuple[str, str], ...], Any] = OrderedDict()
    _write(stdout, ("ready",))
    try:
        while True:
            try:
                request: _Request = _read(stdin)
            except (EOFError, OSError):
                return
            try:
                key = tuple(sorted(request.files.items()))
                con = open_sets.pop(key, None) or readonly.open_sandbox(
                    {k: Path(v) for k, v in request.files.items()}, sandbox
                )
                open_sets[key] = con
                while len(open_sets) > 2:
                    _, old = open_sets.popitem(last=False)
                    old.close()
                result = readonly.run_select(
                    con,
                    request.sql,
                    max_rows=request.max_rows,
                    time_limit_ms=request.time_limit_ms,
                    max_result_bytes=request.max_result_bytes,
                    limit_setting=request.limit_setting,
                    memory_setting=sandbox.memory_setting,
                )
                _write(stdout, ("ok", result))
            except FinopsError as exc:
                _write(stdout, ("error", type(exc).__name__, exc.message, exc.context))
            except MemoryError:
                _write(
                    stdout, ("error", "QueryTooLarge", "The query result did not fit in the SQL worker's memory.", {})
                )
            except Exception as exc:  # a snapshot replaced under us, a file gone: the caller may retry
                _write(
                    stdout,
                    (
                        "error",
                        "SqlBusy",
                        f"The SQL snapshot could not be opened ({type(exc).__name__}); try again.",
                        {},
                    ),
                )
    finally:
        if sandbox.temp_dir is not None:
            import shutil

            shutil.rmtree(sandbox.temp_dir, ignore_errors=True)


def _main() -> None:
    """Keep the protocol on a private copy of stdout; anything else printed goes to stderr."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, protocol)


if __name__ == "__main__":
    _main()
