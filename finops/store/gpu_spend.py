"""Reads and writes of the GPU spend step: job days and idle capacity into `spend_lines`.

The polars job (`finops.attribute.gpu`) does the arithmetic; this module decides which UTC days to
rebuild, reads their inputs, and replaces their `gpu` and `idle` lines in one transaction.

Which days (`gpu_days`): the days spanned by GPU jobs and capacity records of batches newer than the
last run, and by the earlier revisions those batches replaced (a restated job may have moved); and,
when `as_of` moved, the days between the last run's `as_of` and this run's that a job or a capacity
window overlaps (GPU time before `as_of` is known, after it is not yet). A day is always rebuilt
whole, because its idle depends on every job of the day, with the rates in force now for that day:
a changed rate reaches the days rebuilt after the change, not older ones (`finops reprice` is for those).
"""

from __future__ import annotations

import csv
import logging
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import polars as pl

from finops.attribute.gpu import DEFAULT_RATE_SOURCE, IDLE_POLICIES, gpu_pools, gpu_spend
from finops.errors import InputError
from finops.price.overrides import GPU_RATE_SCHEMA
from finops.store import spend as store
from finops.store.db import Database
from finops.store.spend import Watermark, frame, registered

__all__ = ["gpu_days", "read_default_rates", "rebuild_gpu_lines", "sync_default_rates"]

log = logging.getLogger(__name__)

DEFAULT_RATES_FILE = "gpu_rates_default.csv"
_JOBS = """
    SELECT source, job_id, start_ts, end_ts, gpu_type, gpu_count, gpu_seconds, team, feature, project, "user",
           cluster, status, CAST(tags AS VARCHAR) AS tags
    FROM gpu_jobs
    WHERE start_ts < $hi AND end_ts >= $lo AND start_ts < $as_of"""
_CAPACITY = """
    SELECT source, capacity_id, cluster, gpu_type, gpu_count, start_ts, end_ts, hourly_rate
    FROM gpu_capacity
    WHERE start_ts < $hi AND end_ts > $lo AND start_ts < $as_of"""
# the UTC days each [start_ts, end_ts) touches (one day for an empty interval)
_SPAN_DAYS = """
    SELECT DISTINCT CAST(day_start AS DATE) FROM (
        SELECT unnest(generate_series(date_trunc('day', start_ts), greatest(end_ts - INTERVAL 1 MICROSECOND, start_ts),
                                      INTERVAL 1 DAY)) AS day_start
        FROM ({spans}) AS spans)"""


# --------------------------------------------------------------------------------------- default rates


def read_default_rates() -> pl.DataFrame:
    """The bundled list-price defaults (`finops/data/gpu_rates_default.csv`) as `gpu_rates` rows."""
    text = resources.files("finops").joinpath("data", DEFAULT_RATES_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = [
        (
            record["gpu_type"],
            None,
            Decimal(record["hourly_usd"]),
            date.fromisoformat(record["valid_from"]),
            date.fromisoformat(record["valid_to"]) if record["valid_to"] else None,
            DEFAULT_RATE_SOURCE,
        )
        for record in csv.DictReader(lines)
    ]
    return pl.DataFrame(rows, schema=GPU_RATE_SCHEMA, orient="row")


def sync_default_rates(db: Database) -> bool:
    """Make the `gpu_rates` defaults equal to the bundled file (idempotent); True when they changed."""
    wanted = read_default_rates()
    loaded = frame(
        db,
        "SELECT gpu_type, cluster, hourly_usd, valid_from, valid_to, source FROM gpu_rates WHERE source = $s",
        {"s": DEFAULT_RATE_SOURCE},
    )
    if _as_set(loaded) == _as_set(wanted):
        return False
    with db.transaction(), registered(db, "_default_gpu_rates", wanted):
        db.execute("DELETE FROM gpu_rates WHERE source = $s", {"s": DEFAULT_RATE_SOURCE})
        db.execute("INSERT INTO gpu_rates BY NAME SELECT * FROM _default_gpu_rates")
    return True


def _as_set(rates: pl.DataFrame) -> set[tuple[Any, ...]]:
    return set(rates.cast(GPU_RATE_SCHEMA).rows())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ which days


def gpu_days(db: Database, watermark: Watermark) -> set[date]:
    """UTC days whose GPU lines may have changed since the watermark (see the module docstring)."""
    batch = {"b": watermark.batch_id}
    new = """
        SELECT start_ts, end_ts FROM gpu_jobs WHERE batch_id > $b
        UNION ALL SELECT start_ts, end_ts FROM gpu_capacity WHERE batch_id > $b
        UNION ALL SELECT CAST(old_row->>'start_ts' AS TIMESTAMPTZ), CAST(old_row->>'end_ts' AS TIMESTAMPTZ)
                  FROM revisions WHERE target_table IN ('gpu_jobs', 'gpu_capacity') AND new_batch_id > $b"""
    days = {row[0] for row in db.execute(_SPAN_DAYS.format(spans=new), batch)}
    now = _current_as_of(db)
    if watermark.as_of is not None and now is not None and watermark.as_of != now:
        window = {"lo": min(watermark.as_of, now), "hi": max(watermark.as_of, now)}
        moved = """
            SELECT greatest(start_ts, $lo) AS start_ts, least(end_ts, $hi) AS end_ts FROM (
                SELECT start_ts, end_ts FROM gpu_jobs UNION ALL SELECT start_ts, end_ts FROM gpu_capacity)
            WHERE start_ts < $hi AND end_ts > $lo"""
        days |= {row[0] for row in db.execute(_SPAN_DAYS.format(spans=moved), window)}
    return days


def _current_as_of(db: Database, run_id: int | None = None) -> datetime | None:
    """The `as_of` of run `run_id`, else of the latest run (the one in progress when called from a run)."""
    if run_id is not None:
        return db.scalar("SELECT as_of FROM runs WHERE run_id = $r", {"r": run_id})  # type: ignore[no-any-return]
    return db.scalar("SELECT as_of FROM runs ORDER BY run_id DESC LIMIT 1")  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- rebuild


def rebuild_gpu_lines(db: Database, days: list[date], run_id: int, idle_policy: str) -> None:
    """Replace the `gpu` and `idle` lines of these UTC days, as known at the run's `as_of`."""
    if idle_policy not in IDLE_POLICIES:
        raise InputError(
            f"Idle policy '{idle_policy}' is not known. Valid values are: {', '.join(IDLE_POLICIES)} "
            "(FINOPS_IDLE_POLICY)."
        )
    sync_default_rates(db)
    if not days:
        return
    as_of = _current_as_of(db, run_id) or datetime.now(UTC)
    window = {
        "lo": datetime.combine(min(days), time(0), UTC),
        "hi": datetime.combine(max(days) + timedelta(days=1), time(0), UTC),
        "as_of": as_of,
    }
    jobs = frame(db, _JOBS, window).lazy()
    capacity = frame(db, _CAPACITY, window).lazy()
    rates = frame(db, "SELECT gpu_type, cluster, hourly_usd, valid_from, valid_to, source FROM gpu_rates").lazy()
    lines = gpu_spend(
        jobs, capacity, rates, idle_policy, days=days, as_of=as_of, rules=store.read_rules(db).lazy()
    ).collect()
    _report_overallocation(gpu_pools(jobs, capacity, rates, days=days, as_of=as_of).collect())
    with db.transaction():
        db.execute(
            "DELETE FROM spend_lines WHERE line_type IN ('gpu', 'idle') AND list_contains($days, charge_day)",
            {"days": days},
        )
        if lines.height:
            with registered(db, "_gpu_lines", lines):
                db.execute(
                    "INSERT INTO spend_lines BY NAME SELECT *, $run AS run_id FROM _gpu_lines",
                    {"run": run_id},
                )


def _report_overallocation(pools: pl.DataFrame) -> None:
    """Jobs beyond a pool's declared capacity: logged here, shown in the `gpu_utilisation` view."""
    over = pools.filter(pl.col("overallocated_gpu_seconds") > 0)
    for cluster, gpu_type, day, capacity, allocated in over.select(
        "cluster", "gpu_type", "charge_day", "capacity_gpu_seconds", "allocated_gpu_seconds"
    ).iter_rows():
        log.warning(
            "GPU pool %s/%s on %s: jobs allocated %s GPU-seconds, more than its capacity records declare (%s). "
            "Its idle is 0; check the capacity records (see the gpu_utilisation view).",
            cluster,
            gpu_type,
            day,
            allocated,
            capacity,
        )
