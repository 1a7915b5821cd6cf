"""The SQL worker pool: deadlines hold while workers restart, and callers on probation leave a worker free."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from finops.errors import QueryTimeout
from finops.store.readonly import QueryTooLarge, SandboxLimits
from finops.store.sqlpool import PoolLimits, SqlBusy, SqlPool

RUNAWAY = "SELECT sum(hash(range)) FROM range(1e13::BIGINT)"  # CPU only, constant memory
QUICK = "SELECT 42 AS answer"


def _pool(workers: int, probation_s: float = 60.0) -> SqlPool:
    return SqlPool(PoolLimits(workers=workers, probation_s=probation_s, sandbox=SandboxLimits(threads=1)))


@pytest.fixture
def pool2() -> Iterator[SqlPool]:
    pool = _pool(2)
    try:
        yield pool
    finally:
        pool.close()


def _run(pool: SqlPool, sql: str, caller: str | None, limit_ms: int = 10_000) -> object:
    """One query; the default limit is generous, for QUICK on a loaded machine (a fresh worker's first query)."""
    return pool.run({}, sql, max_rows=10, time_limit_ms=limit_ms, caller=caller)


def test_a_query_stopped_at_the_limit_puts_its_caller_on_probation(pool2: SqlPool) -> None:
    assert _run(pool2, QUICK, "a").rows == [(42,)]  # type: ignore[attr-defined]
    with pytest.raises(QueryTimeout):
        _run(pool2, RUNAWAY, "a", limit_ms=1000)
    assert pool2.on_probation("a")
    assert not pool2.on_probation("b")


def test_probation_ends(pool2: SqlPool) -> None:
    pool = _pool(2, probation_s=0.2)
    try:
        with pytest.raises(QueryTimeout):
            _run(pool, RUNAWAY, "a", limit_ms=500)
        assert pool.on_probation("a")
        time.sleep(0.3)
        assert not pool.on_probation("a")
    finally:
        pool.close()


def test_probation_off_with_zero() -> None:
    pool = _pool(2, probation_s=0)
    try:
        with pytest.raises(QueryTimeout):
            _run(pool, RUNAWAY, "a", limit_ms=500)
        assert not pool.on_probation("a")
    finally:
        pool.close()


def test_callers_on_probation_leave_a_worker_for_others(pool2: SqlPool) -> None:
    """Two runaway queries of a caller on probation hold one worker, not both: another caller's query runs at
    once instead of waiting its whole limit for a worker (which would be `SqlBusy`)."""
    _run(pool2, QUICK, None)  # both workers started
    with pytest.raises(QueryTimeout):
        _run(pool2, RUNAWAY, "abuser", limit_ms=1000)
    errors: list[BaseException] = []

    def abuse() -> None:
        try:
            _run(pool2, RUNAWAY, "abuser", limit_ms=3000)
        except (QueryTimeout, SqlBusy) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=abuse) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the abuser's queries have the pool now (one runs, one waits for the probation slot)
    answer = _run(pool2, QUICK, "someone", limit_ms=2000)
    assert answer.rows == [(42,)]  # type: ignore[attr-defined]
    for t in threads:
        t.join()
    assert len(errors) == 2 and {type(e) for e in errors} <= {QueryTimeout, SqlBusy}


def _expect_timeout(pool: SqlPool, caller: str, limit_ms: int) -> None:
    with pytest.raises(QueryTimeout):
        _run(pool, RUNAWAY, caller, limit_ms)


def test_a_query_waiting_behind_others_is_not_put_on_probation() -> None:
    pool = _pool(1)
    try:
        _run(pool, QUICK, None)
        blocker = threading.Thread(target=_expect_timeout, args=(pool, "a", 1500))
        blocker.start()
        time.sleep(0.2)
        with pytest.raises((QueryTimeout, SqlBusy)):
            _run(pool, QUICK, "b", limit_ms=1000)  # waits its whole limit behind "a"
        blocker.join()
        assert pool.on_probation("a")
        assert not pool.on_probation("b")
    finally:
        pool.close()


def test_the_deadline_holds_while_a_killed_worker_is_replaced() -> None:
    """After a worker is killed, its replacement takes a while to start (importing DuckDB); a request that
    arrives meanwhile is answered at its own deadline, not when the replacement is ready."""
    pool = _pool(1)
    try:
        _run(pool, QUICK, None)
        (worker,) = pool._idle
        os.kill(worker.process.pid, signal.SIGKILL)  # the worker dies (as one killed at its time limit does)
        with pytest.raises(QueryTooLarge):
            _run(pool, QUICK, None)
        started = time.monotonic()
        with pytest.raises(SqlBusy):
            _run(pool, QUICK, None, limit_ms=50)
        assert time.monotonic() - started < 0.05 + 0.15 + 0.1  # limit + grace + slack: far below a start-up
        time.sleep(0.1)
        for _ in range(100):  # the replacement then serves as usual
            try:
                assert _run(pool, QUICK, None, limit_ms=2000).rows == [(42,)]  # type: ignore[attr-defined]
                break
            except SqlBusy:
                time.sleep(0.1)
        else:
            pytest.fail("the replacement worker never served a query")
    finally:
        pool.close()


def test_a_caller_whose_queries_are_answered_is_served_first() -> None:
    """Two requests wait for the one busy worker: the one of a caller whose last query was answered goes first,
    although the other (a caller the pool has not seen answer) arrived earlier."""
    pool = _pool(1)
    try:
        _run(pool, QUICK, "good")  # "good" was answered: first in line from now on
        blocker = threading.Thread(target=_expect_timeout, args=(pool, "x", 1500))
        blocker.start()
        time.sleep(0.3)
        served: list[str] = []

        def ask(caller: str) -> None:
            _run(pool, QUICK, caller, limit_ms=5000)
            served.append(caller)

        unknown = threading.Thread(target=ask, args=("unknown",))
        unknown.start()
        time.sleep(0.3)  # "unknown" waits first
        good = threading.Thread(target=ask, args=("good",))
        good.start()
        for t in (blocker, unknown, good):
            t.join()
        assert served == ["good", "unknown"]
    finally:
        pool.close()


def test_all_workers_but_one_run_at_the_probation_niceness(pool2: SqlPool) -> None:
    _run(pool2, QUICK, None)
    for worker in pool2._all:  # the low worker may still be starting: it sets its niceness before "ready"
        worker.wait_ready(30)
    nice = sorted((w.low, os.getpriority(os.PRIO_PROCESS, w.process.pid)) for w in pool2._all)
    base = os.getpriority(os.PRIO_PROCESS, 0)  # os.nice adds to the niceness the worker inherits
    assert nice == [(False, min(base + 10, 19)), (True, 19)]


def test_a_request_whose_caller_goes_on_probation_while_it_waits_does_not_hold_up_the_line(pool2: SqlPool) -> None:
    """ "a" (quick so far) waits for a worker while its other query runs away; when that one is stopped, "a" is
    on probation and its waiting request drops back: "b", behind it, takes the worker that was freed instead of
    waiting with it for the low one."""
    _run(pool2, QUICK, "a")  # "a" was answered: first in line
    served: list[str] = []

    def ask(caller: str, sql: str, limit_ms: int) -> None:
        try:
            _run(pool2, sql, caller, limit_ms=limit_ms)
            served.append(caller)
        except (QueryTimeout, SqlBusy):
            pass

    threads = [
        threading.Thread(target=ask, args=("a", RUNAWAY, 1000)),  # the worker that is not low, stopped at 1 s
        threading.Thread(target=ask, args=("x", RUNAWAY, 3000)),  # the low one, until 3 s
    ]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for caller in ("a", "b"):  # both wait; "a" first in line, "b" behind it
        threads.append(threading.Thread(target=ask, args=(caller, QUICK, 5000)))
        threads[-1].start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert pool2.on_probation("a")
    assert served == ["b", "a"]


def test_a_caller_on_probation_stays_on_it_when_a_query_that_waited_is_stopped() -> None:
    """Only a key new to probation is spared for a query that waited behind others; a key on probation whose
    next runaway query got the worker late (under half its limit left) stays on probation."""
    pool = _pool(1, probation_s=3.0)
    try:
        _run(pool, QUICK, None)
        with pytest.raises(QueryTimeout):
            _run(pool, RUNAWAY, "a", limit_ms=1000)  # on probation until 3 s from now
        blocker = threading.Thread(target=_expect_timeout, args=(pool, "x", 1200))
        blocker.start()
        time.sleep(0.2)
        with pytest.raises((QueryTimeout, SqlBusy)):
            _run(pool, RUNAWAY, "a", limit_ms=1500)  # waits about 1 s behind "x", then runs about 0.5 s
        blocker.join()
        time.sleep(1.6)  # past the first probation's end (3 s), within the renewed one (about 4.5 s)
        assert pool.on_probation("a")
    finally:
        pool.close()


def test_a_stopped_query_takes_its_caller_out_of_the_front_of_the_line() -> None:
    pool = _pool(1)
    try:
        _run(pool, QUICK, "a")
        assert pool._standing("a", time.monotonic()) == 0
        blocker = threading.Thread(target=_expect_timeout, args=(pool, "x", 1500))
        blocker.start()
        time.sleep(0.2)
        with pytest.raises((QueryTimeout, SqlBusy)):
            _run(pool, RUNAWAY, "a", limit_ms=1600)  # waits behind "x", then is stopped: spared probation
        blocker.join()
        assert not pool.on_probation("a")
        assert pool._standing("a", time.monotonic()) == 1
    finally:
        pool.close()
