"""Reads and writes of the pricing and attribution stage (the polars jobs themselves do no I/O).

Incremental by construction: a run prices only usage it has not priced yet (ingested since the last
run, or newly inside the `--as-of` horizon), replaces the lines of records a provider restated, and
rebuilds day-level lines and `spend_daily` only for the UTC days whose inputs changed. Lines already
priced are never repriced by a run: prices change only through `finops reprice`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

from finops.attribute.owners import RULE_SCHEMA
from finops.attribute.tokens import DIMENSION_COLUMNS
from finops.price.catalog import CATALOG_SOURCE, PRICE_SCHEMA, catalog_rows
from finops.price.overrides import Overrides
from finops.price.resolve import RESOLUTION_SCHEMA, resolve_models
from finops.store.db import Database

__all__ = [
    "Usage",
    "Watermark",
    "changed_days",
    "frame",
    "forget_after",
    "last_watermark",
    "read_usage",
    "rebuild_daily",
    "record_reprice",
    "registered",
    "replace_lines",
    "replace_period",
    "resolutions_for",
    "snapshot_period",
    "sync_catalog",
    "sync_overrides",
    "sync_rules",
    "usage_days",
]

# usage columns the pricing job reads (the record's other columns go from usage_events to spend_lines in
# DuckDB, joined on the key); the 126-bit key travels as two UBIGINT halves (a DECIMAL(38,0) round trip
# costs about 1 us a row in the cast back to UHUGEINT). The text columns pricing and the rules read
# (`needed_dimensions`) are dictionary-encoded as DuckDB scans: a first query keeps the distinct text tuples
# (thousands for millions of records) in a temporary table, numbered, with two DuckDB hashes of each tuple;
# the records then carry their tuple's number `dim` (a join on the two hashes), and no string is copied per
# record. Two tuples with the same pair of hashes would make the join ambiguous: that stops the read.
_TEXT = {
    "provider": "u.provider",
    "model": "u.model",
    "service_tier": "u.service_tier",
    "context_window": "u.extra->>'context_window'",
    "team": "u.team",
    "feature": "u.feature",
    "project": "u.project",
    "api_key": "u.api_key",
    "tags": "CAST(u.tags AS VARCHAR)",
}
assert tuple(_TEXT) == DIMENSION_COLUMNS
_RECORD_COLUMNS = """
    CAST(u.key_hash >> 64 AS UBIGINT) AS key_hi, CAST(u.key_hash & 18446744073709551615 AS UBIGINT) AS key_lo,
    u.ts, u.charge_day, d.dim, u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens,
    u.output_tokens, u.reasoning_tokens, u.requests, u.ts_end IS NOT NULL AS is_bucket"""


def _hashes(columns: tuple[str, ...]) -> tuple[str, str]:
    text = [_TEXT[c] for c in columns]
    return f"hash({', '.join(text)})", f"hash({', '.join(reversed(text))}, 'finops')"


_KEY = "(CAST(l.key_hi AS UHUGEINT) << 64 | CAST(l.key_lo AS UHUGEINT))"
# a token line: decided by the job (l), the rest from the record (u)
_LINES_FROM = f"""
    SELECT 'usage' AS line_type, 'tokens' AS kind, u.key_hash AS usage_key, u.content_hash AS usage_content,
           u.ts, u.charge_day, u.source, u.provider, u.model, l.price_model, u.service_tier, l.team, l.feature,
           u.project, u."user", l.attribution, l.list_cost_usd, l.cost_usd, u.input_tokens, u.cached_input_tokens,
           u.cache_write_tokens, u.output_tokens, u.reasoning_tokens, u.requests,
           CAST(NULL AS VARCHAR) AS gpu_type, CAST(NULL AS DECIMAL(38,9)) AS gpu_seconds, u.trace_id, u.request_id,
           u.attempt, u.status, l.price_source, u.prompt_hash, u.latency_ms, $run AS run_id
    FROM _lines l JOIN usage_events u ON u.key_hash = {_KEY}
    WHERE u.charge_day BETWEEN $first_day AND $last_day"""
# The day bounds are the lines' own (their records' charge days): a filter DuckDB pushes into the scan of
# usage_events, where the min/max of each row group skips the days not written, so the lines of 100k new
# records do not cost a scan of every stored record's key.


def frame(db: Database, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """A query's result as a polars frame (through Arrow)."""
    return db.con.sql(sql, params=params).pl() if params else db.con.sql(sql).pl()


@contextlib.contextmanager
def registered(db: Database, name: str, data: pl.DataFrame) -> Iterator[None]:
    db.con.register(name, data.to_arrow())
    try:
        yield
    finally:
        db.con.unregister(name)


# ------------------------------------------------------------------------------------- catalog, rules


def sync_catalog(db: Database) -> bool:
    """Load the installed genai-prices catalog when it is not the one loaded; True when it changed."""
    loaded = {r[0] for r in db.execute("SELECT DISTINCT source FROM price_catalog WHERE kind = 'catalog'")}
    if loaded == {CATALOG_SOURCE}:
        return False
    rows = catalog_rows()
    with db.transaction(), registered(db, "_catalog", rows):
        db.execute("DELETE FROM price_catalog WHERE kind = 'catalog'")
        db.execute("INSERT INTO price_catalog BY NAME SELECT *, 'catalog' AS kind, now() AS loaded_at FROM _catalog")
    return True


_OVERRIDE_NAMES = "SELECT DISTINCT price_provider, price_model, source FROM price_catalog WHERE kind = 'override'"


def sync_overrides(db: Database, overrides: Overrides) -> None:
    """Replace the user's overrides with the file's current content; when the models they price changed,
    resolve the stored (provider, model) pairs again, so `model_resolutions` (what `finops prices --resolved`
    and `unpriced_usage` show, and what prices a name no override prices any more) follows the file."""
    with db.transaction():
        before = set(frame(db, _OVERRIDE_NAMES).rows())
        db.execute("DELETE FROM price_catalog WHERE kind = 'override'")
        db.execute("DELETE FROM price_discounts")
        db.execute("DELETE FROM gpu_rates WHERE source <> 'default'")
        for name, data, sql in (
            (
                "_override_prices",
                overrides.prices,
                "INSERT INTO price_catalog BY NAME "
                "SELECT *, 'override' AS kind, now() AS loaded_at FROM _override_prices",
            ),
            ("_discounts", overrides.discounts, "INSERT INTO price_discounts BY NAME SELECT * FROM _discounts"),
            ("_gpu_rates", overrides.gpu_rates, "INSERT INTO gpu_rates BY NAME SELECT * FROM _gpu_rates"),
        ):
            if data.height:
                with registered(db, name, data):
                    db.execute(sql)
        after = frame(db, _OVERRIDE_NAMES)
        if set(after.rows()) != before:
            _resolve_again(db, after)


def _resolve_again(db: Database, overrides: pl.DataFrame) -> None:
    pairs = frame(db, "SELECT provider, model FROM model_resolutions")
    if pairs.height == 0:
        return
    with registered(db, "_resolved", resolve_models(pairs, overrides=overrides)):
        db.execute("DELETE FROM model_resolutions")
        db.execute("INSERT INTO model_resolutions BY NAME SELECT *, now() AS resolved_at FROM _resolved")


def sync_rules(db: Database, rules: pl.DataFrame | None) -> None:
    """Replace the ownership rules with the file's current content (None: keep what is loaded)."""
    if rules is None:
        return
    with db.transaction(), registered(db, "_rules", rules):
        db.execute("DELETE FROM ownership_rules")
        if rules.height:
            db.execute("INSERT INTO ownership_rules BY NAME SELECT * FROM _rules")


def read_prices(db: Database) -> pl.DataFrame:
    columns = ", ".join(f'"{c}"' for c in PRICE_SCHEMA)
    return frame(db, f"SELECT {columns} FROM price_catalog ORDER BY kind DESC")


def read_discounts(db: Database) -> pl.DataFrame:
    return frame(db, "SELECT provider, model_pattern, discount_pct, valid_from, valid_to, source FROM price_discounts")


def read_rules(db: Database) -> pl.DataFrame:
    data = frame(db, "SELECT * FROM ownership_rules")
    return data if data.height else pl.DataFrame(schema=RULE_SCHEMA)


def resolutions_for(db: Database, usage: pl.DataFrame) -> pl.DataFrame:
    """Resolve the (provider, model) pairs of `usage` (any frame with both columns) not resolved before,
    store them, and return every pair's."""
    known = frame(db, "SELECT provider, model FROM model_resolutions")
    pairs = usage.select("provider", "model").unique().drop_nulls("model")
    new = pairs.join(known, on=["provider", "model"], how="anti", nulls_equal=True)
    if new.height:
        overrides = frame(db, "SELECT price_provider, price_model, source FROM price_catalog WHERE kind = 'override'")
        resolved = resolve_models(new, overrides=overrides)
        with registered(db, "_resolved", resolved):
            db.execute("INSERT INTO model_resolutions BY NAME SELECT *, now() AS resolved_at FROM _resolved")
    all_pairs = frame(
        db, "SELECT provider, model, price_provider, price_model, tiers_apply, resolution FROM model_resolutions"
    )
    return all_pairs.cast(RESOLUTION_SCHEMA)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- usage


class Watermark:
    """What the last run covered: usage batches up to `batch_id`, event time before `as_of`."""

    def __init__(self, batch_id: int, as_of: datetime | None) -> None:
        self.batch_id = batch_id
        self.as_of = as_of


def last_watermark(db: Database, run_id: int | None = None) -> Watermark:
    """The last finished run's batches and `as_of`; an `as_of` lowered to that of any later run (other than
    `run_id`, the one asking) that never finished: a run at an earlier moment forgets the lines after it
    (`forget_after`) before it finishes, so the records after that moment must be read again."""
    row = db.fetchone(
        """SELECT CAST(summary->>'max_batch_id' AS BIGINT), as_of, run_id FROM runs
           WHERE finished_at IS NOT NULL AND summary->>'max_batch_id' IS NOT NULL ORDER BY run_id DESC LIMIT 1"""
    )
    if row is None:
        return Watermark(0, None)
    unfinished = db.scalar(
        "SELECT min(as_of) FROM runs WHERE finished_at IS NULL AND run_id > $last AND run_id <> $me",
        {"last": row[2], "me": -1 if run_id is None else run_id},
    )
    as_of = row[1] if unfinished is None or unfinished >= row[1] else unfinished
    return Watermark(int(row[0] or 0), as_of)


def forget_after(db: Database, as_of: datetime) -> list[date]:
    """A run at a moment before the last run's shows the data as it was then: the usage lines of records at
    or after `as_of` go (a later run prices them again); returns their UTC days, to rebuild."""
    where = "line_type IN ('usage', 'provider_usage') AND ts >= $as_of"
    with db.transaction():
        days = [
            r[0] for r in db.execute(f"SELECT DISTINCT charge_day FROM spend_lines WHERE {where}", {"as_of": as_of})
        ]
        if days:
            db.execute(f"DELETE FROM spend_lines WHERE {where}", {"as_of": as_of})
    return sorted(days)


@dataclass(frozen=True)
class Usage:
    """Usage records to price: `records` (numbers, and the number `dim` of each record's text tuple) and
    `dimensions` (the distinct text tuples, by `dim`); the inputs of `token_spend`."""

    records: pl.DataFrame
    dimensions: pl.DataFrame

    @property
    def height(self) -> int:
        return self.records.height


def _to_read(
    watermark: Watermark, as_of: datetime, days: tuple[date, date] | None, within: tuple[date, date] | None
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (over `usage_events u`) and parameters of the usage a read takes (see `read_usage`)."""
    if days is not None:
        where = "WHERE u.charge_day >= $start AND u.charge_day < $end AND u.ts < $as_of"
        params: dict[str, Any] = {"start": days[0], "end": days[1], "as_of": as_of}
    elif watermark.as_of is None:
        where, params = "WHERE u.ts < $as_of", {"as_of": as_of}
    else:
        where = "WHERE u.ts < $as_of AND (u.batch_id > $batch OR u.ts >= $previous)"
        params = {"as_of": as_of, "batch": watermark.batch_id, "previous": watermark.as_of}
    if within is not None:
        where += " AND u.charge_day >= $within_start AND u.charge_day < $within_end"
        params |= {"within_start": within[0], "within_end": within[1]}
    return where, params


def usage_days(
    db: Database, watermark: Watermark, as_of: datetime, *, days: tuple[date, date] | None = None
) -> list[tuple[date, int]]:
    """(UTC day, records) of the usage `read_usage` would read with these arguments, in day order, so that a
    run or a reprice can read it a few days at a time (`read_usage(..., within=...)`)."""
    where, params = _to_read(watermark, as_of, days, None)
    rows = db.execute(f"SELECT u.charge_day, count(*) FROM usage_events u {where} GROUP BY 1 ORDER BY 1", params)
    return [(day, int(n)) for day, n in rows]


def read_usage(
    db: Database,
    watermark: Watermark,
    as_of: datetime,
    *,
    days: tuple[date, date] | None = None,
    within: tuple[date, date] | None = None,
    text: tuple[str, ...] = DIMENSION_COLUMNS,
) -> Usage:
    """Usage to price: new since the watermark and before `as_of`, or every record of a reprice period
    (`days`), in either case only of the UTC days [`within`) when given; the `text` columns
    dictionary-encoded (`Usage`; give `needed_dimensions(rules)` to encode only those)."""
    where, params = _to_read(watermark, as_of, days, within)
    h1, h2 = _hashes(text)
    columns = ", ".join(f"{_TEXT[c]} AS {c}" for c in text)
    with db.transaction():  # both reads see one state of the table
        db.execute(
            f"""CREATE OR REPLACE TEMP TABLE _usage_dims AS
                SELECT CAST(row_number() OVER () - 1 AS UINTEGER) AS dim, *
                FROM (SELECT DISTINCT {h1} AS h1, {h2} AS h2, {columns} FROM usage_events u {where})""",
            params,
        )
        try:
            if db.scalar("SELECT count(*) - count(DISTINCT (h1, h2)) FROM _usage_dims"):
                raise RuntimeError("two distinct usage text tuples share both hashes; cannot encode them apart")
            records = frame(
                db,
                f"SELECT {_RECORD_COLUMNS} FROM usage_events u JOIN _usage_dims d ON d.h1 = {h1} AND d.h2 = {h2} "
                + where,
                params,
            )
            dimensions = frame(db, f"SELECT dim, {', '.join(text)} FROM _usage_dims")
        finally:
            db.execute("DROP TABLE IF EXISTS _usage_dims")
    return Usage(records, dimensions)


def replace_lines(db: Database, lines: pl.DataFrame, run_id: int, watermark: Watermark | None = None) -> None:
    """Write the token lines the job decided (`TOKEN_LINE_COLUMNS`), replacing any earlier line of the same
    record. A record read since `watermark` can have a line already only when a provider restated it (ingest
    kept its old revision in `revisions`) or a run that never finished priced it: only then is the table
    searched for old lines (a scan of every line's key), which keeps a run after 100k new records cheap."""
    if lines.height == 0:
        return
    with registered(db, "_lines", lines), db.insertion_order(False):
        # one transaction: a kill between the delete and the insert would leave priced records without a line
        with db.transaction():
            if watermark is None or _may_have_lines(db, watermark, run_id):
                db.execute(
                    "DELETE FROM spend_lines WHERE line_type IN ('usage', 'provider_usage') "
                    f"AND usage_key IN (SELECT {_KEY} FROM _lines l)"
                )
            db.execute("INSERT INTO spend_lines BY NAME" + _LINES_FROM, {"run": run_id, **_day_bounds(lines)})


def _day_bounds(lines: pl.DataFrame) -> dict[str, date]:
    days = lines.select(first_day=pl.col("charge_day").min(), last_day=pl.col("charge_day").max()).row(0, named=True)
    return {k: v for k, v in days.items()}


def _may_have_lines(db: Database, watermark: Watermark, run_id: int) -> bool:
    return bool(
        db.scalar(
            """SELECT EXISTS (SELECT 1 FROM revisions WHERE target_table = 'usage_events' AND new_batch_id > $b)
                   OR EXISTS (SELECT 1 FROM runs WHERE finished_at IS NULL AND run_id <> $run)""",
            {"b": watermark.batch_id, "run": run_id},
        )
    )


# the lines of a reprice's period that count in `spend`: usage, GPU and idle, bill adjustments and unobserved
# money (a provider's usage buckets the gateway also measured are not spend)
_PERIOD_SPEND = "line_type <> 'provider_usage' AND charge_day >= $start AND charge_day < $end"
_BY = "team, feature, model"


def snapshot_period(db: Database, start: date, end: date) -> None:
    """Keep the cost per team, feature and model of every line of [start, end) that counts in `spend`, for
    `record_reprice` to compare with once the period is rebuilt (in the same transaction)."""
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE _reprice_old AS SELECT {_BY}, sum(cost_usd) AS cost FROM spend_lines "
        f"WHERE {_PERIOD_SPEND} GROUP BY ALL",
        {"start": start, "end": end},
    )


def replace_period(db: Database, chunks: Iterable[pl.DataFrame], run_id: int, start: date, end: date) -> int:
    """Replace every usage line of [start, end) with the lines `chunks` yields (a few days at a time, each
    priced as it is needed), in one transaction; returns how many lines were written."""
    period = "line_type IN ('usage', 'provider_usage') AND charge_day >= $start AND charge_day < $end"
    written = 0
    with db.transaction():
        db.execute(f"DELETE FROM spend_lines WHERE {period}", {"start": start, "end": end})
        for lines in chunks:
            if lines.height:
                with registered(db, "_lines", lines):
                    db.execute("INSERT INTO spend_lines BY NAME" + _LINES_FROM, {"run": run_id, **_day_bounds(lines)})
            written += lines.height
    return written


def record_reprice(db: Database, run_id: int, start: date, end: date) -> pl.DataFrame:
    """Compare the period's lines now with `snapshot_period`'s, per team, feature and model: record old, new
    and diff in `reprices` and return them, the largest differences first."""
    bounds = {"start": start, "end": end}
    with db.transaction():
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _reprice_diff AS
            WITH new AS (SELECT {_BY}, sum(cost_usd) AS cost FROM spend_lines WHERE {_PERIOD_SPEND} GROUP BY ALL)
            SELECT coalesce(old.team, new.team) AS team, coalesce(old.feature, new.feature) AS feature,
                   coalesce(old.model, new.model) AS model, old.cost AS old_cost_usd, new.cost AS new_cost_usd,
                   coalesce(new.cost, 0) - coalesce(old.cost, 0) AS diff_usd
            FROM _reprice_old old FULL JOIN new
              ON old.team IS NOT DISTINCT FROM new.team AND old.feature IS NOT DISTINCT FROM new.feature
             AND old.model IS NOT DISTINCT FROM new.model""",  # a bill line names no model: NULL is one group
            bounds,
        )
        db.execute(
            "INSERT INTO reprices SELECT $run, $start, $end, team, feature, model, old_cost_usd, new_cost_usd, "
            "diff_usd FROM _reprice_diff",
            {"run": run_id, **bounds},
        )
    diffs = frame(db, "SELECT * FROM _reprice_diff ORDER BY abs(diff_usd) DESC NULLS LAST, team, feature, model")
    db.execute("DROP TABLE IF EXISTS _reprice_diff")
    db.execute("DROP TABLE IF EXISTS _reprice_old")
    return diffs


def changed_days(db: Database, watermark: Watermark, line_days: set[date]) -> list[date]:
    """UTC days whose day-level results may have changed: days of new usage lines and of new bills."""
    days = set(line_days)
    days |= {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT charge_day FROM provider_costs WHERE batch_id > $b", {"b": watermark.batch_id}
        )
    }
    return sorted(days)


def rebuild_daily(db: Database, days: list[date]) -> None:
    """Recompute `spend_daily` for these days from `spend_lines`. `unpriced_requests` counts the usage
    lines without a price: token records, and GPU jobs' days (a job with no rate counts on each day it ran)."""
    if not days:
        return
    with db.transaction():
        db.execute("DELETE FROM spend_daily WHERE list_contains($days, charge_day)", {"days": days})
        db.execute(
            """
            INSERT INTO spend_daily BY NAME
            SELECT charge_day, team, feature, provider, model, kind, line_type,
                   sum(cost_usd) AS cost_usd, sum(list_cost_usd) AS list_cost_usd, sum(requests) AS requests,
                   sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
                   sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens,
                   sum(reasoning_tokens) AS reasoning_tokens,
                   count(*) FILTER (line_type IN ('usage', 'gpu') AND cost_usd IS NULL) AS unpriced_requests,
                   sum(gpu_seconds) AS gpu_seconds
            FROM spend_lines WHERE list_contains($days, charge_day) AND line_type <> 'provider_usage'
            GROUP BY ALL""",
            {"days": days},
        )
