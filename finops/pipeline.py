"""`run_once`: the whole flow after ingest, in order; what `finops run` and the scheduler call.

Each step is idempotent: running twice changes nothing, and new data only reprocesses the UTC days it
touches. `as_of` lets a historical data set be replayed as if it were that moment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from finops import detect
from finops.alert import alert_step
from finops.attribute.owners import read_rules
from finops.attribute.tokens import needed_dimensions, token_spend
from finops.forecast import forecast_step
from finops.price.overrides import Overrides, read_overrides
from finops.store import bill_spend, findings, gpu_spend
from finops.store import spend as store
from finops.store.db import Database

__all__ = ["RepriceReport", "RunSummary", "day_chunks", "reprice", "run_once"]


@dataclass
class RunSummary:
    run_id: int
    as_of: datetime
    catalog_reloaded: bool = False
    priced_records: int = 0
    unpriced_records: int = 0
    days_rebuilt: list[date] = field(default_factory=list)
    findings: int = 0
    forecasts: int = 0
    alerts: int = 0
    data_through: date | None = None  # the newest UTC day with any spend up to the run's day
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step, in order

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:  # a step run once per chunk of usage adds up
            self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - started, 4)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["days_rebuilt"] = [d.isoformat() for d in self.days_rebuilt]
        data["data_through"] = self.data_through.isoformat() if self.data_through else None
        return data


def run_once(
    db: Database,
    *,
    as_of: datetime | None = None,
    owners: Path | None = None,
    price_overrides: Path | None = None,
    idle_policy: str = "idle",
    detect_horizon_days: int = 14,
    detect_history_days: int = 35,
    chunk_records: int = 2_000_000,
) -> RunSummary:
    """Price and attribute new usage, rebuild the day-level results of the days it touched, and run the
    detectors over the last `detect_horizon_days` (with `detect_history_days` more for their baselines).

    New usage is read, priced and written a few UTC days at a time, at most about `chunk_records` records
    (a day is never split), so that a first run over months of history needs the memory of a few days."""
    as_of = as_of or datetime.now(UTC)
    run_id = int(db.scalar("SELECT nextval('run_id_seq')"))
    started = datetime.now(UTC)
    db.execute(
        "INSERT INTO runs (run_id, as_of, started_at) VALUES ($r, $a, $s)", {"r": run_id, "a": as_of, "s": started}
    )
    summary = RunSummary(run_id=run_id, as_of=as_of)

    with summary.timed("configuration"):
        summary.catalog_reloaded = sync_configuration(db, owners, price_overrides)

    with summary.timed("read_usage"):
        watermark = store.last_watermark(db, run_id)
        # a moment before the last run's: the data as it was then (the records after it are priced again later)
        line_days: set[date] = set()
        if watermark.as_of is not None and as_of < watermark.as_of:
            line_days |= set(store.forget_after(db, as_of))
        reads = _usage_chunks(db, watermark, as_of, chunk_records)
    while True:
        with summary.timed("read_usage"):
            usage = next(reads, None)
        if usage is None:
            break
        with summary.timed("price_attribute"):
            lines = price_and_attribute(db, usage)
        with summary.timed("write_lines"):
            store.replace_lines(db, lines, run_id, watermark)
        priced = int(lines["cost_usd"].is_not_null().sum())
        summary.priced_records += priced
        summary.unpriced_records += lines.height - priced
        line_days |= set(lines["charge_day"].unique().to_list())
        del usage, lines  # the next chunk's memory

    with summary.timed("gpu_and_bills"):
        days = sorted(set(store.changed_days(db, watermark, line_days)) | gpu_spend.gpu_days(db, watermark))
        gpu_spend.rebuild_gpu_lines(db, days, run_id, idle_policy)
        bill_spend.rebuild_bill_lines(db, days, run_id)
        priced, unpriced = gpu_spend.new_job_counts(db, watermark, as_of)  # GPU jobs are records too
        summary.priced_records += priced
        summary.unpriced_records += unpriced
    with summary.timed("daily_rollup"):
        store.rebuild_daily(db, days)
    summary.days_rebuilt = days

    with summary.timed("detect"):
        horizon_start = as_of - timedelta(days=detect_horizon_days)
        inputs = findings.read_inputs(db, horizon_start - timedelta(days=detect_history_days), horizon_start, as_of)
        summary.findings = findings.replace_findings(db, detect.run_all(inputs), horizon_start, run_id)

    with summary.timed("forecast"):
        summary.forecasts = forecast_step(db, as_of, run_id)
    summary.data_through = db.scalar(
        "SELECT max(charge_day) FROM spend_daily WHERE charge_day <= $day", {"day": as_of.astimezone(UTC).date()}
    )
    with summary.timed("alert"):
        summary.alerts = alert_step(db, as_of, run_id)

    max_batch = db.scalar("SELECT coalesce(max(batch_id), 0) FROM ingest_batches")
    db.execute(
        "UPDATE runs SET finished_at = now(), summary = $s WHERE run_id = $r",
        {"r": run_id, "s": json.dumps({**summary.as_dict(), "max_batch_id": max_batch})},
    )
    # a run that died half-way: this run re-read its records and replaced its lines, so it is over
    db.execute(
        """UPDATE runs SET finished_at = now(), summary = '{"abandoned": true}'
           WHERE finished_at IS NULL AND run_id < $r""",
        {"r": run_id},
    )
    return summary


def sync_configuration(db: Database, owners: Path | None, price_overrides: Path | None) -> bool:
    """Load the catalog (when its version changed), the overrides and the ownership rules; True when the
    catalog was (re)loaded."""
    reloaded = store.sync_catalog(db)
    store.sync_overrides(db, read_overrides(price_overrides) if price_overrides else Overrides.empty())
    store.sync_rules(db, read_rules(owners) if owners else None)
    return reloaded


@dataclass
class RepriceReport:
    run_id: int
    start: date
    end: date
    records: int
    diffs: pl.DataFrame  # team, feature, model, old_cost_usd, new_cost_usd, diff_usd

    @property
    def total_diff(self) -> object:
        return self.diffs["diff_usd"].sum() if self.diffs.height else 0


def reprice(
    db: Database,
    start: date,
    end: date,
    *,
    owners: Path | None = None,
    price_overrides: Path | None = None,
    idle_policy: str = "idle",
    chunk_records: int = 2_000_000,
) -> RepriceReport:
    """Recompute every line of the UTC days [start, end) under the current catalog, rules and GPU rates
    (each GPU pool's rate resolved anew and recorded), record the difference of everything that counts
    in `spend` (usage, GPU and idle, bill lines) per team/feature/model in `reprices`, and rebuild those
    days. The period is read and priced a few days at a time (about `chunk_records` records), and all of
    it replaced in one transaction: a reprice that fails part-way changes nothing. `records` counts the
    usage records and the GPU jobs repriced."""
    now = datetime.now(UTC)
    run_id = int(db.scalar("SELECT nextval('run_id_seq')"))
    db.execute("INSERT INTO runs (run_id, as_of, started_at) VALUES ($r, $a, $a)", {"r": run_id, "a": now})
    sync_configuration(db, owners, price_overrides)
    days = _days(start, end)
    with db.transaction():
        store.snapshot_period(db, start, end)
        reads = _usage_chunks(db, store.Watermark(0, None), now, chunk_records, days=(start, end))
        records = store.replace_period(db, (price_and_attribute(db, u) for u in reads), run_id, start, end)
        records += gpu_spend.rebuild_gpu_lines(db, days, run_id, idle_policy, resolve_rates=True)
        bill_spend.rebuild_bill_lines(db, days, run_id)
        store.rebuild_daily(db, days)
        diffs = store.record_reprice(db, run_id, start, end)
    db.execute(
        "UPDATE runs SET finished_at = now(), summary = $s WHERE run_id = $r",
        {"r": run_id, "s": json.dumps({"reprice": [start.isoformat(), end.isoformat()], "records": records})},
    )
    return RepriceReport(run_id, start, end, records, diffs)


def _usage_chunks(
    db: Database,
    watermark: store.Watermark,
    as_of: datetime,
    chunk_records: int,
    *,
    days: tuple[date, date] | None = None,
) -> Iterator[store.Usage]:
    """The usage `store.read_usage` reads with these arguments, a few UTC days at a time (`day_chunks`), each
    chunk read only when the one before has been priced: what `run_once` and `reprice` price."""
    text = needed_dimensions(store.read_rules(db))
    for within in day_chunks(store.usage_days(db, watermark, as_of, days=days), chunk_records):
        yield store.read_usage(db, watermark, as_of, days=days, within=within, text=text)


def day_chunks(counts: list[tuple[date, int]], max_records: int) -> list[tuple[date, date]]:
    """Consecutive UTC day ranges [start, end) covering `counts` ((day, records), in day order), each of at
    most `max_records` records unless one day alone holds more (a day is never split)."""
    chunks: list[tuple[date, date]] = []
    start: date | None = None
    last: date | None = None
    size = 0
    for day, records in counts:
        if start is not None and last is not None and size + records > max_records:
            chunks.append((start, last + timedelta(days=1)))
            start, size = None, 0
        if start is None:
            start = day
        last, size = day, size + records
    if start is not None and last is not None:
        chunks.append((start, last + timedelta(days=1)))
    return chunks


def _days(start: date, end: date) -> list[date]:
    return pl.date_range(start, end, "1d", closed="left", eager=True).to_list() if end > start else []


def price_and_attribute(db: Database, usage: store.Usage) -> pl.DataFrame:
    """The token spend job over `usage`, with the catalog, resolutions, discounts and rules in the database."""
    return token_spend(
        usage.records.lazy(),
        store.resolutions_for(db, usage.dimensions).lazy(),
        store.read_prices(db).lazy(),
        store.read_discounts(db).lazy(),
        store.read_rules(db).lazy(),
        dimensions=usage.dimensions.lazy(),
    ).collect()
