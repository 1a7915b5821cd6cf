"""Reads and writes of the GPU spend step: job days and idle capacity into `spend_lines`.

The polars job (`finops.attribute.gpu`) does the arithmetic; this module decides which UTC days to
rebuild, reads their inputs, and replaces their `gpu` and `idle` lines in one transaction.

Which days (`gpu_days`): the days spanned by GPU jobs and capacity records of batches newer than the
last run, and by the earlier revisions those batches replaced (a restated job may have moved); and,
when `as_of` moved, the days between the last run's `as_of` and this run's that a job or a capacity
window overlaps (GPU time before `as_of` is known, after it is not yet). A day is always rebuilt
whole, because its idle depends on every job of the day.

Which rate: a pool (cluster, GPU type, UTC day) keeps the rate it was first priced with, recorded in
`gpu_pool_rates` (NULL when it had none), so that rebuilding a day for new data never reprices what
was already priced: a changed rate or override reaches the pools first priced after the change, and
older ones only through `finops reprice`, which resolves the rates of its days anew and records them.
A pool new on an old day gets the rates in force now. A capacity record's own `hourly_rate` is data,
not a price: it always wins, and is not recorded.
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
from finops.ingest.fields import COUNT_LIMIT, COUNT_LIMIT_TEXT
from finops.price.overrides import GPU_RATE_SCHEMA
from finops.store import spend as store
from finops.store.db import Database
from finops.store.spend import Watermark, frame, registered

__all__ = ["gpu_days", "new_job_counts", "read_default_rates", "rebuild_gpu_lines", "sync_default_rates"]

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
# a record stored before ingest bounded GPU counts and GPU-seconds (COUNT_LIMIT): pricing it would overflow
_BEYOND_BOUNDS = """
    SELECT 'gpu_jobs', source, job_id, gpu_count, gpu_seconds FROM gpu_jobs
    WHERE (gpu_count > $limit OR gpu_seconds > $limit) AND start_ts < $hi AND end_ts >= $lo AND start_ts < $as_of
    UNION ALL
    SELECT 'gpu_capacity', source, capacity_id, gpu_count, NULL FROM gpu_capacity
    WHERE gpu_count > $limit AND start_ts < $hi AND end_ts > $lo AND start_ts < $as_of
    LIMIT 1"""
_RECORDED = """
    SELECT cluster, gpu_type, charge_day, hourly_usd, price_source FROM gpu_pool_rates
    WHERE list_contains($days, charge_day)"""
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


def rebuild_gpu_lines(
    db: Database, days: list[date], run_id: int, idle_policy: str, *, resolve_rates: bool = False
) -> int:
    """Replace the `gpu` and `idle` lines of these UTC days, as known at the run's `as_of`, each pool at
    its recorded rate (`resolve_rates`: at the rates in force now, recorded anew; what `finops reprice`
    does); returns how many GPU jobs have a line on these days."""
    if idle_policy not in IDLE_POLICIES:
        raise InputError(
            f"Idle policy '{idle_policy}' is not known. Valid values are: {', '.join(IDLE_POLICIES)} "
            "(FINOPS_IDLE_POLICY)."
        )
    sync_default_rates(db)
    if not days:
        return 0
    as_of = _current_as_of(db, run_id) or datetime.now(UTC)
    window = {
        "lo": datetime.combine(min(days), time(0), UTC),
        "hi": datetime.combine(max(days) + timedelta(days=1), time(0), UTC),
        "as_of": as_of,
    }
    _refuse_records_beyond_bounds(db, window)
    jobs = frame(db, _JOBS, window).lazy()
    capacity = frame(db, _CAPACITY, window).lazy()
    rates = frame(db, "SELECT gpu_type, cluster, hourly_usd, valid_from, valid_to, source FROM gpu_rates").lazy()
    recorded = None if resolve_rates else frame(db, _RECORDED, {"days": days}).lazy()
    lines = gpu_spend(
        jobs, capacity, rates, idle_policy, days=days, as_of=as_of, rules=store.read_rules(db).lazy(), recorded=recorded
    ).collect()
    pools = gpu_pools(jobs, capacity, rates, days=days, as_of=as_of, recorded=recorded).collect()
    _report_overallocation(pools)
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
        _record_rates(db, pools, days, run_id, replace=resolve_rates)
    return lines.filter(pl.col("line_type") == "gpu").select("source", "request_id").n_unique()


def _refuse_records_beyond_bounds(db: Database, window: dict[str, Any]) -> None:
    """Stop with a sentence naming a stored GPU record whose count or GPU-seconds is beyond COUNT_LIMIT
    (ingest rejects such records; an older database may hold one), rather than overflow while pricing it."""
    row = db.fetchone(_BEYOND_BOUNDS, {**window, "limit": COUNT_LIMIT})
    if row is None:
        return
    table, source, key, gpu_count, gpu_seconds = row
    field, value = ("gpu_count", gpu_count) if gpu_count > COUNT_LIMIT else ("gpu_seconds", gpu_seconds)
    raise InputError(
        f"{table} record '{key}' (source {source}) has {field} {value.normalize():f}, beyond the "
        f"{COUNT_LIMIT_TEXT} a record may carry (ingest rejects it now); ingest the corrected record under the "
        "same key, which replaces it, then run again."
    )


def _record_rates(db: Database, pools: pl.DataFrame, days: list[date], run_id: int, *, replace: bool) -> None:
    """Record the rate of each pool priced at the rates in force (its first pricing, or a reprice): not
    the pools priced at a recorded rate, nor those a capacity record's own rate priced."""
    first = pools.filter(pl.col("rate_origin").is_null() | (pl.col("rate_origin") == "resolved")).select(
        "charge_day", "cluster", "gpu_type", "hourly_usd", "price_source"
    )
    if replace:
        db.execute("DELETE FROM gpu_pool_rates WHERE list_contains($days, charge_day)", {"days": days})
    if first.height:
        with registered(db, "_pool_rates", first):
            db.execute(
                "INSERT INTO gpu_pool_rates BY NAME SELECT *, $run AS run_id, now() AS recorded_at FROM _pool_rates",
                {"run": run_id},
            )


def new_job_counts(db: Database, watermark: Watermark, as_of: datetime) -> tuple[int, int]:
    """(priced, unpriced) GPU jobs a run priced for the first time: ingested since the watermark, or newly
    started before `as_of`, told apart by the cost of their first day's line (NULL: no rate)."""
    row = db.fetchone(
        """SELECT count(*) FILTER (s.cost_usd IS NOT NULL), count(*) FILTER (s.cost_usd IS NULL)
           FROM gpu_jobs j
           JOIN spend_lines s ON s.line_type = 'gpu' AND s.requests = 1 AND s.charge_day = j.charge_day
                AND s.source = j.source AND s.request_id = j.job_id
           WHERE j.start_ts < $as_of AND (j.batch_id > $b OR j.start_ts >= $previous)""",
        {"as_of": as_of, "b": watermark.batch_id, "previous": watermark.as_of},
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)


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
