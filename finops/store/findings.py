"""Reads and writes of the detection stage: detector inputs from `spend_lines`, findings replaced in the horizon.

`read_inputs` hands the detectors three things over the usage lines of the detection window:

- `hourly`: the hourly rollup per team/feature/provider/model, read at once (the spike detector's series);
- `lines`: every usage line as a LazyFrame that reads from DuckDB only when collected, and then only the
  columns the plan uses (the spike detector reads a few columns of the lines of its incidents);
- `source`: a `DuckSource`, which answers the retry and outlier detectors' questions
  (`finops.detect.source.LineSource`) with SQL, so that only the lines they need leave DuckDB: the traces
  holding a failed attempt, counts per window, a cost histogram, the lines above a bound, the sessions
  with many calls. Filtering and windowed aggregation run in DuckDB (PERFORMANCE-NOTES: prefilter before
  any per-trace window; a rollup instead of every line).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source

from finops.detect import DetectInputs
from finops.detect.source import COST_BINS, LINE_COLUMNS
from finops.store.db import Database
from finops.store.spend import frame, registered

__all__ = ["DuckSource", "read_inputs", "replace_findings"]

_LINES = """
    SELECT s.ts, s.charge_day, s.source, s.provider, s.model, s.team, s.feature, s.project, s."user",
           s.cost_usd, s.list_cost_usd, s.input_tokens, s.cached_input_tokens, s.cache_write_tokens, s.output_tokens,
           s.reasoning_tokens, s.requests, s.trace_id, s.request_id, s.attempt, s.status,
           s.prompt_hash, s.latency_ms
    FROM spend_lines s
    WHERE s.line_type = 'usage' AND s.ts >= $start AND s.ts < $end"""

# grouped on an integer hour, turned back into a time after (PERFORMANCE-NOTES 3: no time zone work in
# the hot group-by): half the CPU of time_bucket at 10M lines
_HOURLY = """
    SELECT make_timestamptz(_hour * 3600000000) AS hour, team, feature, provider, model,
           cost_usd, requests, lines, input_tokens, output_tokens
    FROM (SELECT epoch_us(ts) // 3600000000 AS _hour, team, feature, provider, model,
                 sum(cost_usd) AS cost_usd, sum(requests) AS requests, count(*) AS lines,
                 sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
          FROM spend_lines
          WHERE line_type = 'usage' AND ts >= $start AND ts < $end
          GROUP BY ALL)"""

_BATCH_ROWS = 1 << 20


def read_inputs(db: Database, history_start: datetime, horizon_start: datetime, as_of: datetime) -> DetectInputs:
    params = {"start": history_start, "end": as_of}
    return DetectInputs(
        lines=_scan(db, _LINES, params),
        hourly=frame(db, _HOURLY, params).lazy(),
        history_start=history_start,
        horizon_start=horizon_start,
        as_of=as_of,
        source=DuckSource(db, history_start, as_of),
    )


def _scan(db: Database, sql: str, params: dict[str, Any]) -> pl.LazyFrame:
    """A LazyFrame over a query that runs only when collected, with the columns the plan projects."""
    schema = db.con.sql(f"SELECT * FROM ({sql}) LIMIT 0", params=params).pl().schema

    def batches(
        columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        names = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        limit = f" LIMIT {int(n_rows)}" if n_rows is not None else ""
        # the time range the predicate allows, read in SQL (the predicate itself still decides, below)
        low, high = _time_bounds(predicate) if predicate is not None else (None, None)
        where = {"_low_us": low, "_high_us": high}
        conditions = [
            f"ts {op} make_timestamptz(${name})" for name, op in (("_low_us", ">="), ("_high_us", "<=")) if where[name]
        ]
        cut = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        bound = {k: v for k, v in where.items() if v is not None}
        cursor = db.con.cursor()  # the plan may run on another thread: a cursor of its own
        try:
            reader = cursor.sql(f"SELECT {names} FROM ({sql}){cut}{limit}", params={**params, **bound}).to_arrow_reader(
                batch_size or _BATCH_ROWS
            )
            for batch in reader:
                part = pl.DataFrame(pl.from_arrow(batch))
                part = part.cast({c: schema[c] for c in part.columns})  # Arrow names UTC 'Etc/UTC'
                yield part.filter(predicate) if predicate is not None else part
        finally:
            cursor.close()

    return register_io_source(batches, schema=schema)


_UNITS = {"Microseconds": 1, "Milliseconds": 1_000, "Nanoseconds": 0.001}
_FLIP = {"Gt": "Lt", "GtEq": "LtEq", "Lt": "Gt", "LtEq": "GtEq"}


def _time_bounds(predicate: pl.Expr) -> tuple[int | None, int | None]:
    """Epoch microseconds that bound `ts` on every line `predicate` keeps (None: no bound), read from the
    expression: comparisons of `ts` with time-zone-aware datetimes, combined by and / or / all_ / any_
    horizontal; any other part of the expression bounds nothing. Only ever a superset of what it keeps."""
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # an expression polars cannot serialise: no bound, the predicate still decides
        return None, None
    return _bounds(tree)


def _bounds(node: Any) -> tuple[int | None, int | None]:
    everything: tuple[int | None, int | None] = (None, None)
    if not isinstance(node, dict) or len(node) != 1:
        return everything
    kind, body = next(iter(node.items()))
    if kind == "Function" and isinstance(body, dict):
        function = body.get("function", {}).get("Boolean")
        parts = [_bounds(part) for part in body.get("input", [])]
        if function == "AllHorizontal":
            return _intersect(parts)
        if function == "AnyHorizontal":
            return _hull(parts)
        return everything
    if kind != "BinaryExpr" or not isinstance(body, dict):
        return everything
    op, left, right = body.get("op"), body.get("left"), body.get("right")
    if op == "And":
        return _intersect([_bounds(left), _bounds(right)])
    if op == "Or":
        return _hull([_bounds(left), _bounds(right)])
    if right == {"Column": "ts"}:
        left, right, op = right, left, _FLIP.get(op)
    if left != {"Column": "ts"} or op not in _FLIP:
        return everything
    scalar = (right or {}).get("Literal", {}).get("Scalar", {}).get("Datetime") if isinstance(right, dict) else None
    if not isinstance(scalar, list) or len(scalar) != 3 or scalar[2] is None or scalar[1] not in _UNITS:
        return everything  # not a time-zone-aware datetime literal
    micros = int(scalar[0] * _UNITS[scalar[1]])
    return (micros - 1, None) if op in ("Gt", "GtEq") else (None, micros + 1)


def _intersect(parts: list[tuple[int | None, int | None]]) -> tuple[int | None, int | None]:
    lows = [p[0] for p in parts if p[0] is not None]
    highs = [p[1] for p in parts if p[1] is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def _hull(parts: list[tuple[int | None, int | None]]) -> tuple[int | None, int | None]:
    if not parts:
        return None, None
    lows, highs = [p[0] for p in parts], [p[1] for p in parts]
    return (
        None if any(x is None for x in lows) else min(lows),  # type: ignore[type-var]
        None if any(x is None for x in highs) else max(highs),  # type: ignore[type-var]
    )


class DuckSource:
    """A `LineSource` over the usage lines of `spend_lines` from `start` (included) to `end` (excluded)."""

    def __init__(self, db: Database, start: datetime, end: datetime) -> None:
        self.db = db
        self.params: dict[str, Any] = {"start": start, "end": end}

    def retry_lines(self) -> pl.DataFrame:
        columns = ", ".join(c for c in LINE_COLUMNS if not c.endswith("_tokens"))
        return self._frame(
            f"""
            WITH attempts AS NOT MATERIALIZED (
                SELECT {columns}, (status IS NULL OR starts_with(status, '2')) AS _answered
                FROM spend_lines
                WHERE {_USAGE} AND {_ATTEMPT_LEVEL} AND (trace_id IS NOT NULL OR prompt_hash IS NOT NULL)),
            keyed AS (
                SELECT * FROM attempts
                WHERE trace_id IN (SELECT trace_id FROM attempts WHERE trace_id IS NOT NULL AND {_SUSPECT})
                UNION ALL
                SELECT * FROM attempts
                WHERE trace_id IS NULL
                  AND prompt_hash IN (SELECT prompt_hash FROM attempts WHERE trace_id IS NULL AND {_SUSPECT})),
            placed AS (
                SELECT *, lag(_answered) OVER k AS _previous_answered, lead(attempt) OVER k AS _next_attempt
                FROM keyed
                WINDOW k AS (PARTITION BY trace_id, prompt_hash, team, feature
                             ORDER BY ts, attempt NULLS LAST, request_id NULLS LAST))
            SELECT {columns} FROM placed
            WHERE NOT _answered OR attempt > 1 OR NOT coalesce(_previous_answered, true) OR _next_attempt > 1"""
        )

    def answered_medians(self, groups: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        answered = f"{_USAGE} AND {_ATTEMPT_LEVEL} AND (status IS NULL OR starts_with(status, '2')) AND cost_usd > 0"
        with registered(self.db, "_groups", groups.select("team", "feature", "model").unique()):
            by_feature = self._frame(
                f"""SELECT s.team, s.feature, s.model, median(s.cost_usd::DOUBLE) AS feature_median
                    FROM spend_lines s SEMI JOIN _groups g ON {_same("s", "g", ("team", "feature", "model"))}
                    WHERE {answered} GROUP BY ALL"""
            )
            by_model = self._frame(
                f"""SELECT s.model, median(s.cost_usd::DOUBLE) AS model_median
                    FROM spend_lines s SEMI JOIN _groups g ON {_same("s", "g", ("model",))}
                    WHERE {answered} GROUP BY ALL"""
            )
        return by_feature, by_model

    def line_counts(self, window_s: int, series: Sequence[Sequence[str]]) -> list[pl.DataFrame]:
        # one scan for every key set (GROUPING SETS); `_set` tells the sets apart (a key may be NULL)
        names = [n for n in _SERIES_NAMES if any(n in keys for keys in series)]
        if any(k not in _SERIES_NAMES for keys in series for k in keys):
            raise ValueError(f"line_counts groups by {', '.join(_SERIES_NAMES)} only, not {series}")
        listed = ", ".join(names)
        sets = ", ".join(f"({', '.join([*keys, '_w'])})" for keys in series)
        counts = self._frame(
            f"""SELECT grouping({listed}) AS _set, {listed}, _w, count(*) AS lines
                FROM (SELECT {listed}, epoch_us(ts) // $window_us AS _w
                      FROM spend_lines WHERE {_USAGE} AND {_ATTEMPT_LEVEL})
                GROUP BY GROUPING SETS ({sets})""",
            window_us=int(window_s) * 1_000_000,
        )
        masks = [sum(1 << (len(names) - 1 - i) for i, n in enumerate(names) if n not in keys) for keys in series]
        return [
            counts.filter(pl.col("_set") == mask).select(*keys, "_w", pl.col("lines").cast(pl.Int64))
            for keys, mask in zip(series, masks, strict=True)
        ]

    def span_counts(self, keys: Sequence[str], spans: pl.DataFrame) -> pl.DataFrame:
        if spans.is_empty():
            return pl.DataFrame(schema={"_span": pl.Int64, "lines": pl.Int64})
        with registered(self.db, "_spans", spans.select("_span", *keys, "_start", "_end")):
            counted = self._frame(
                f"""SELECT p._span, count(*) AS lines
                    FROM spend_lines s JOIN _spans p ON {_same("s", "p", keys)} AND s.ts BETWEEN p._start AND p._end
                    WHERE {_USAGE} AND {_ATTEMPT_LEVEL}
                      AND s.ts >= (SELECT min(_start) FROM _spans) AND s.ts <= (SELECT max(_end) FROM _spans)
                    GROUP BY p._span"""
            )
        return (
            spans.select("_span")
            .join(counted.cast({"_span": pl.Int64}), on="_span", how="left")
            .with_columns(pl.col("lines").fill_null(0).cast(pl.Int64))
        )

    def cost_histogram(self) -> pl.DataFrame:
        return self._frame(
            f"""SELECT team, feature, model, {_BIN} AS _bin, count(*) AS n
                FROM spend_lines WHERE {_USAGE} AND cost_usd > 0 GROUP BY ALL"""
        )

    def cost_lines(self, bounds: pl.DataFrame, since: datetime) -> pl.DataFrame:
        columns = ", ".join(f"s.{c}" for c in LINE_COLUMNS)
        # a cost range every wanted line is in, as plain filters on cost_usd (and ts) that the scan applies
        # before the join: the lines above a bound are a few in a million
        reach = []
        lowest = bounds["_lo"].min()
        if lowest is not None:
            reach.append(f"(s.ts >= $since AND s.cost_usd >= {_bin_floor(int(lowest))})")  # type: ignore[arg-type]
        middle = bounds["_mid"].drop_nulls()
        if not middle.is_empty():
            low, high = _bin_floor(int(middle.min())), _bin_floor(int(middle.max()) + 1, up=True)  # type: ignore[arg-type]
            reach.append(f"(s.cost_usd >= {low} AND s.cost_usd <= {high})")
        if not reach:
            return self._frame(f"SELECT {columns}, NULL::BIGINT AS _bin FROM spend_lines s LIMIT 0")
        with registered(self.db, "_bounds", bounds.select("team", "feature", "model", "_lo", "_mid")):
            return self._frame(
                f"""SELECT {columns}, _bin FROM (
                        SELECT s.*, {_BIN} AS _bin, b._lo, b._mid
                        FROM spend_lines s JOIN _bounds b ON {_same("s", "b", ("team", "feature", "model"))}
                        WHERE {_USAGE} AND s.cost_usd > 0 AND ({" OR ".join(reach)})) s
                    WHERE (_bin >= _lo AND ts >= $since) OR _bin = _mid""",
                since=since,
            )

    def session_stats(self, min_calls: int, since: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        # two passes: the hashes of the traces with two calls or more (a narrow aggregate over every traced
        # line), then the exact per-trace figures over those traces' lines only (a few percent of them); the
        # lines of the long sessions are found by row id first (a scan of three columns), then fetched
        table = f"_sessions_{next(_TEMP)}"
        traced = f"{_USAGE} AND trace_id IS NOT NULL"
        self.db.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table}_h AS
                SELECT hash(trace_id) AS h FROM spend_lines WHERE {traced} AND {_ANSWERED}
                GROUP BY h HAVING count(*) >= 2""",
            self.params,
        )
        self.db.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table} AS
                SELECT trace_id, min(struct_pack(team := team, feature := feature)) AS _pair,
                       count(*) FILTER (WHERE {_ANSWERED}) AS calls,
                       sum(cost_usd) AS cost_usd, min(ts) AS first, max(ts) AS last
                FROM spend_lines SEMI JOIN {table}_h h ON hash(spend_lines.trace_id) = h.h
                WHERE {traced}
                GROUP BY trace_id HAVING calls >= 2""",
            self.params,
        )
        try:
            features = self._frame(
                f"""SELECT _pair.team AS team, _pair.feature AS feature, count(*) AS sessions,
                           quantile_cont(calls, 0.95) AS p95_calls, quantile_disc(cost_usd, 0.5) AS median_cost_usd
                    FROM {table} GROUP BY ALL"""
            )
            columns = ", ".join(f"s.{c}" for c in LINE_COLUMNS)
            lines = self._frame(
                f"""WITH wanted AS (SELECT trace_id, first FROM {table} WHERE calls >= $min_calls AND last >= $since)
                    SELECT {columns} FROM spend_lines s
                    WHERE rowid IN (SELECT s.rowid FROM spend_lines s SEMI JOIN wanted w ON s.trace_id = w.trace_id
                                    WHERE {_USAGE} AND ts >= (SELECT min(first) FROM wanted))""",
                min_calls=min_calls,
                since=since,
            )
        finally:
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.execute(f"DROP TABLE IF EXISTS {table}_h")
        return features, lines

    def _frame(self, sql: str, **params: Any) -> pl.DataFrame:
        given = {**self.params, **params}
        return frame(self.db, sql, {k: v for k, v in given.items() if f"${k}" in sql})


_USAGE = "line_type = 'usage' AND ts >= $start AND ts < $end"
_ATTEMPT_LEVEL = "(status IS NOT NULL OR attempt IS NOT NULL)"
_SUSPECT = "(NOT _answered OR attempt > 1)"
_ANSWERED = "(status IS NULL OR starts_with(status, '2'))"
_BIN = f"floor(ln(cost_usd::DOUBLE) * {COST_BINS})::BIGINT"
_TEMP = itertools.count()
_SERIES_NAMES = ("team", "feature", "provider", "model")


def _bin_floor(bin_: int, *, up: bool = False) -> str:
    """A DECIMAL literal just below (or, `up`, just above) the lowest cost of cost bin `bin_`: a number
    computed here from an integer, not a user value."""
    edge = min(math.exp(min(bin_ / COST_BINS, 50.0)), 1e20) * (1 + 1e-9 if up else 1 - 1e-9)  # within DECIMAL(38,12)
    return f"{Decimal(edge).quantize(Decimal('1e-12'), rounding=ROUND_CEILING if up else ROUND_FLOOR)}::DECIMAL(38,12)"


def _same(left: str, right: str, keys: Sequence[str]) -> str:
    """Join condition: every key equal, NULL matching NULL."""
    return " AND ".join(f"{left}.{k} IS NOT DISTINCT FROM {right}.{k}" for k in keys)


def replace_findings(db: Database, findings: pl.DataFrame, horizon_start: datetime, run_id: int) -> int:
    """Replace the findings of incidents ending after `horizon_start`; an incident found again keeps its id
    and its first run.

    Found again: the same `finding_id` (a plain re-run, or later data that extends an incident's end), or,
    for a finding whose id is new, a stored finding of the horizon whose id was not found again, of the
    same kind, detector, subject, trace, request and owner (team, feature, provider, model), or a storm seen
    in the other's series (`details.scopes`: late data may tip which series it is reported for), or a spike or
    level shift of the same subject that the other detector (hourly, daily) reports now, whose window
    overlaps it: earlier records of the incident that arrived late (a chain's first attempt, a storm's
    first minutes) moved its start, which the id hashes. Each stored finding goes to the new one it
    overlaps most; a new one that several stored ones go to (late data joined them) keeps the id of the
    one first found. So a finding alert, keyed by the id, is never sent twice for one incident."""
    with db.transaction(), registered(db, "_found", findings):
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE _first AS SELECT {', '.join(_IDENTITY)}, first_run_id, detected_at, "
            f"{_STORM_SCOPES.format(t='findings')} AS _scopes "
            "FROM findings WHERE window_end > $h",
            {"h": horizon_start},
        )
        db.execute(_FOUND_AGAIN)
        db.execute("DELETE FROM findings WHERE window_end > $h", {"h": horizon_start})
        db.execute(
            "DELETE FROM findings WHERE finding_id IN "
            "(SELECT coalesce(m.old_id, f.finding_id) FROM _found f LEFT JOIN _again m ON m.new_id = f.finding_id)"
        )
        db.execute(
            """INSERT INTO findings BY NAME
               SELECT f.* REPLACE (coalesce(m.old_id, f.finding_id) AS finding_id,
                                   CAST(f.evidence AS JSON) AS evidence, CAST(f.details AS JSON) AS details),
                      coalesce(p.first_run_id, $run) AS first_run_id, $run AS last_run_id,
                      coalesce(p.detected_at, now()) AS detected_at
               FROM _found f LEFT JOIN _again m ON m.new_id = f.finding_id
               LEFT JOIN _first p ON p.finding_id = coalesce(m.old_id, f.finding_id)""",
            {"run": run_id},
        )
        db.execute("DROP TABLE _first")
        db.execute("DROP TABLE _again")
    return findings.height


# what makes two findings one incident, with an overlapping window (see `replace_findings`)
_SAME_INCIDENT = ("kind", "detector", "subject", "trace_id", "request_id", "team", "feature", "provider", "model")
_IDENTITY = ("finding_id", *_SAME_INCIDENT, "window_start", "window_end")

# the series a storm was seen in (`details.scopes`): late data may tip which of them it is reported for
# (its subject, detector and owner), which is still the same storm
_STORM_SCOPES = (
    "CASE WHEN {t}.kind = 'retry_storm' THEN json_extract_string(CAST({t}.details AS JSON), '$.scopes[*].subject') END"
)

# new finding id -> the id of the stored finding of the horizon it is found again as (when its id is new)
_FOUND_AGAIN = f"""
    CREATE OR REPLACE TEMP TABLE _again AS
    WITH fresh AS (SELECT *, {_STORM_SCOPES.format(t="_found")} AS _scopes FROM _found
                   WHERE finding_id NOT IN (SELECT finding_id FROM _first)),
         gone AS (SELECT * FROM _first WHERE finding_id NOT IN (SELECT finding_id FROM _found)),
         pairs AS (
            SELECT f.finding_id AS new_id, g.finding_id AS old_id, g.first_run_id, g.window_start AS old_start,
                   least(f.window_end, g.window_end) - greatest(f.window_start, g.window_start) AS overlap
            FROM fresh f JOIN gone g
              ON ({_same("f", "g", _SAME_INCIDENT)}
                  OR (f.kind = 'retry_storm' AND g.kind = 'retry_storm'
                      AND (list_contains(f._scopes, g.subject) OR list_contains(g._scopes, f.subject)))
                  OR (f.kind IN ('cost_spike', 'level_shift')
                      AND {_same("f", "g", tuple(k for k in _SAME_INCIDENT if k != "detector"))}))
             AND f.window_start < g.window_end AND f.window_end > g.window_start),
         per_old AS (
            SELECT * FROM pairs
            QUALIFY row_number() OVER (PARTITION BY old_id ORDER BY overlap DESC, new_id) = 1)
    SELECT new_id, old_id FROM per_old
    QUALIFY row_number() OVER (PARTITION BY new_id ORDER BY first_run_id, old_start, old_id) = 1"""
