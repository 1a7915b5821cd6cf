"""The reads behind `GET /v1/spend` and `GET /v1/findings` (and the dashboards): fixed SQL, bound values.

No request value is ever formatted into SQL: `group_by` names are looked up in `GROUPS`, a fixed map
from dimension to SQL expression, and every filter value is a bound parameter. Spend grouped only by
day/week/month/team/feature/provider/model/kind is read from the `spend_daily` rollup (tens of
thousands of rows at 10M records); `project` and `user` exist only on the cost lines, so asking for
them reads `spend`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from finops.errors import InputError, QueryTimeout
from finops.store.db import Database

__all__ = [
    "BUCKETS",
    "DAILY_GROUPS",
    "GROUPS",
    "FindingsQuery",
    "Page",
    "SpendQuery",
    "alerts_frame",
    "bucket_spend",
    "findings_frame",
    "findings_page",
    "latest_as_of",
    "parse_group_by",
    "period_forecasts",
    "reconciliation_daily",
    "spend_frame",
    "spend_page",
    "spend_teams",
    "spend_totals",
]

# dimension -> SQL expression over spend_daily / spend (identifiers only; never request text)
GROUPS: dict[str, str] = {
    "day": "charge_day",
    "week": "CAST(date_trunc('week', charge_day) AS DATE)",
    "month": "CAST(date_trunc('month', charge_day) AS DATE)",
    "team": "team",
    "feature": "feature",
    "project": "project",
    "provider": "provider",
    "model": "model",
    "kind": "kind",
    "user": '"user"',
}
DAILY_GROUPS = frozenset({"day", "week", "month", "team", "feature", "provider", "model", "kind"})

_MEASURES_DAILY = """
    sum(cost_usd) AS cost_usd, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
    sum(unpriced_requests) AS unpriced_requests, sum(gpu_seconds) AS gpu_seconds"""
_MEASURES_LINES = """
    sum(cost_usd) AS cost_usd, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
    count(*) FILTER (line_type = 'usage' AND cost_usd IS NULL) AS unpriced_requests,
    sum(gpu_seconds) AS gpu_seconds"""
# filter name -> (column, parameter)
_FILTERS = {
    "teams": "team",
    "features": "feature",
    "providers": "provider",
    "models": "model",
    "kinds": "kind",
}


def parse_group_by(text: str | None) -> tuple[str, ...]:
    """`team,feature` -> ("team", "feature"); an unknown name is an `InputError` that lists the valid ones
    (without repeating the value: it may be another team's name)."""
    if text is None or not text.strip():
        return ()
    names: list[str] = []
    for i, raw in enumerate(text.split(","), start=1):
        name = raw.strip().lower()
        if name not in GROUPS:
            raise InputError(
                f"group_by item {i} is not a dimension. Valid values are: {', '.join(GROUPS)} "
                "(comma-separated, e.g. group_by=team,feature).",
                parameter="group_by",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class SpendQuery:
    start: date
    end: date  # exclusive
    group_by: tuple[str, ...] = ()
    teams: Sequence[str] | None = None
    features: Sequence[str] | None = None
    providers: Sequence[str] | None = None
    models: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    limit: int = 1000
    offset: int = 0

    @property
    def source(self) -> str:
        return "spend_daily" if set(self.group_by) <= DAILY_GROUPS else "spend"


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    has_more: bool


def _where(q: SpendQuery | FindingsQuery, day_column: str) -> tuple[str, dict[str, Any]]:
    clauses = [f"{day_column} >= $start", f"{day_column} < $end"]
    params: dict[str, Any] = {"start": q.start, "end": q.end}
    for attr, column in _FILTERS.items():
        values = getattr(q, attr, None)
        if values is not None:
            clauses.append(f"{column} IN (SELECT unnest(${attr}))")
            params[attr] = list(values)
    return " AND ".join(clauses), params


def spend_page(db: Database, q: SpendQuery, *, time_limit_ms: int) -> Page:
    """One page of spend per the `group_by` dimensions, ordered by them (NULLs last)."""
    where, params = _where(q, "charge_day")
    dims = ", ".join(f"{GROUPS[g]} AS {_ident(g)}" for g in q.group_by)
    measures = _MEASURES_DAILY if q.source == "spend_daily" else _MEASURES_LINES
    select = f"SELECT {dims + ',' if dims else ''}{measures} FROM {q.source} WHERE {where}"
    if q.group_by:
        order = ", ".join(f"{_ident(g)} ASC NULLS LAST" for g in q.group_by)
        select += f" GROUP BY ALL ORDER BY {order}"
    select += " LIMIT $limit OFFSET $offset"
    params |= {"limit": q.limit + 1, "offset": q.offset}
    rows = _records(db, select, params, time_limit_ms)
    if not q.group_by and rows and rows[0]["requests"] is None:
        rows = []  # no line in range: no total row
    return Page(rows[: q.limit], has_more=len(rows) > q.limit)


def data_version(db: Database) -> int:
    """The newest run (`runs.run_id`, 0 before the first): `spend`, `spend_daily` and `findings` change only in
    runs (`finops run`, `reprice`, the scheduler's), so pages read under the same number are of the same data."""
    return int(db.scalar("SELECT coalesce(max(run_id), 0) FROM runs") or 0)


def spend_totals(db: Database, q: SpendQuery, *, time_limit_ms: int) -> dict[str, Any]:
    """The totals over the whole filter (every page), from the rollup: it sums to the same as `spend`."""
    where, params = _where(q, "charge_day")
    sql = f"SELECT {_MEASURES_DAILY}, count(*) AS _rows FROM spend_daily WHERE {where}"
    totals = _records(db, sql, params, time_limit_ms)[0]
    # no row at all: nothing was spent, $0; rows that are all unpriced sum to NULL money (unknown, not $0)
    empty = totals.pop("_rows") == 0
    unknown = ("cost_usd", "gpu_seconds")
    return {
        k: (Decimal(0) if k in unknown else 0) if v is None and (empty or k not in unknown) else v
        for k, v in totals.items()
    }


@dataclass(frozen=True)
class FindingsQuery:
    start: date
    end: date
    kinds: Sequence[str] | None = None
    teams: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    limit: int = 1000
    offset: int = 0


_FINDINGS = """
    SELECT finding_id, kind, detector, team, feature, provider, model, subject, window_start, window_end,
           trace_id, request_id, metric, observed, expected, excess_cost_usd, score, severity,
           CAST(evidence AS VARCHAR) AS evidence, CAST(details AS VARCHAR) AS details, detected_at
    FROM findings
    WHERE window_end > $start_ts AND window_start < $end_ts"""


def findings_page(db: Database, q: FindingsQuery, *, time_limit_ms: int) -> Page:
    """Findings whose window overlaps [start, end), costliest first."""
    sql = _FINDINGS
    params: dict[str, Any] = {
        "start_ts": datetime.combine(q.start, time(), UTC),
        "end_ts": datetime.combine(q.end, time(), UTC),
        "limit": q.limit + 1,
        "offset": q.offset,
    }
    for attr, column in (("kinds", "kind"), ("teams", "team"), ("severities", "severity")):
        values = getattr(q, attr)
        if values is not None:
            sql += f" AND {column} IN (SELECT unnest(${attr}))"
            params[attr] = list(values)
    sql += " ORDER BY excess_cost_usd DESC, window_start DESC, finding_id LIMIT $limit OFFSET $offset"
    rows = _records(db, sql, params, time_limit_ms)
    for row in rows:
        for key in ("evidence", "details"):
            row[key] = json.loads(row[key]) if row[key] is not None else None
    return Page(rows[: q.limit], has_more=len(rows) > q.limit)


def _ident(name: str) -> str:
    return f'"{name}"'


def _records(db: Database, sql: str, params: dict[str, Any], time_limit_ms: int) -> list[dict[str, Any]]:
    with _interrupt_after(db, time_limit_ms):
        try:
            cursor = db.con.execute(sql, params)
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except duckdb.InterruptException:
            raise QueryTimeout(
                f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is "
                "FINOPS_API_QUERY_TIME_LIMIT_MS; narrow the date range or group by fewer dimensions.",
                time_limit_ms=time_limit_ms,
            ) from None


@contextmanager
def _interrupt_after(db: Database, time_limit_ms: int) -> Iterator[None]:
    timer = threading.Timer(time_limit_ms / 1000, db.con.interrupt)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# ------------------------------------------------------------------------------------------ dashboards
# The reads behind the finance dashboards (`finops.dashboards`), as polars frames with exact DECIMAL money.
# Each takes the caller's team filter as `teams` (None: every team; a scoped caller passes its teams);
# company-wide reads (reconciliation, bucket teams) are for callers that see every team.

BUCKETS = ("__unattributed__", "__unpriced__", "__idle__", "__unobserved__")


def spend_frame(db: Database, q: SpendQuery, *, time_limit_ms: int) -> pl.DataFrame:
    """What `spend_page` answers for `q`, every group in one frame (no paging): the same dimensions, filters
    and measures, read from the `spend_daily` rollup unless a group needs `spend`."""
    where, params = _where(q, "charge_day")
    dims = ", ".join(f"{GROUPS[g]} AS {_ident(g)}" for g in q.group_by)
    measures = _MEASURES_DAILY if q.source == "spend_daily" else _MEASURES_LINES
    select = f"SELECT {dims + ',' if dims else ''}{measures} FROM {q.source} WHERE {where}"
    if q.group_by:
        order = ", ".join(f"{_ident(g)} ASC NULLS LAST" for g in q.group_by)
        select += f" GROUP BY ALL ORDER BY {order}"
    result = _frame(db, select, params, time_limit_ms)
    return result if q.group_by else result.filter(pl.col("requests").is_not_null())


def spend_teams(db: Database, *, teams: Sequence[str] | None = None) -> list[str]:
    """The teams (and buckets) that have spend, sorted; only those of `teams` when given."""
    sql = "SELECT DISTINCT team FROM spend_daily WHERE team IS NOT NULL"
    params: dict[str, Any] = {}
    if teams is not None:
        sql += " AND team IN (SELECT unnest($teams))"
        params["teams"] = list(teams)
    return sorted(str(row[0]) for row in db.con.execute(sql + " ORDER BY 1", params).fetchall())


def latest_as_of(db: Database) -> datetime | None:
    """The evaluation time of the last finished pipeline run (what "now" is for the numbers shown)."""
    rows = db.con.execute(
        "SELECT as_of FROM runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT 1"
    ).fetchall()
    return rows[0][0].astimezone(UTC) if rows else None


_LATEST_FORECASTS = """
    WITH ranked AS (
        SELECT *, row_number() OVER (
            PARTITION BY team, feature, period ORDER BY as_of DESC, created_at DESC) AS _rank
        FROM forecasts
        WHERE period_kind = $period_kind AND period_start <= $day AND period_end > $day AND as_of <= $as_of
    )
    SELECT team, feature, scope, period, period_start, period_end, as_of, forecast_start, history_days,
           actual_to_date_usd, remaining_days, forecast_usd, lo80_usd, hi80_usd, lo95_usd, hi95_usd, method, note,
           budget_id, CAST(budget_usd AS DECIMAL(38, 12)) AS budget_usd, breach_date, daily_forecast_usd
    FROM ranked
    WHERE _rank = 1"""


def period_forecasts(
    db: Database, *, as_of: datetime, teams: Sequence[str] | None, period_kind: str = "month", time_limit_ms: int
) -> pl.DataFrame:
    """The latest forecast (as of `as_of`) of each team, budgeted feature and, for a caller that sees every
    team, the company, for the `period_kind` period containing the UTC day of `as_of`; with the budget its
    breach date is computed against. Rows: company first, then by team and feature."""
    sql = _LATEST_FORECASTS
    params: dict[str, Any] = {"period_kind": period_kind, "day": as_of.astimezone(UTC).date(), "as_of": as_of}
    if teams is not None:
        sql += " AND team IN (SELECT unnest($teams))"
        params["teams"] = list(teams)
    sql += " ORDER BY team NULLS FIRST, feature NULLS FIRST"
    return _frame(db, sql, params, time_limit_ms)


_BUCKET_SPEND = """
    SELECT bucket, sum(cost_usd) AS cost_usd, sum(requests) AS requests, sum(unpriced_requests) AS unpriced_requests
    FROM (
        SELECT CASE WHEN team IN (SELECT unnest($buckets)) THEN team
                    WHEN feature = '__unattributed__' THEN '__unattributed__' END AS bucket,
               cost_usd, requests, 0 AS unpriced_requests
        FROM spend_daily WHERE {where}
        UNION ALL
        SELECT '__unpriced__', NULL, 0, unpriced_requests FROM spend_daily WHERE {where} AND unpriced_requests > 0
    )
    WHERE bucket IS NOT NULL
    GROUP BY bucket"""


def bucket_spend(db: Database, q: SpendQuery, *, time_limit_ms: int) -> pl.DataFrame:
    """Spend held by each named bucket over the filter: one row per bucket of `BUCKETS` (zeros included).

    `__unattributed__` is spend of no team, plus spend of a team that no rule gave a feature; `__unpriced__`
    counts usage with no price (`unpriced_requests`; its cost is unknown, never 0) and any provider bill kept
    under that name; `__idle__` is idle GPU capacity; `__unobserved__` billed spend the gateway never saw."""
    where, params = _where(q, "charge_day")
    params["buckets"] = list(BUCKETS)
    found = _frame(db, _BUCKET_SPEND.format(where=where), params, time_limit_ms)
    order = pl.DataFrame({"bucket": BUCKETS, "_order": range(len(BUCKETS))})
    return (
        order.join(found, on="bucket", how="left")
        .sort("_order")
        .drop("_order")
        .with_columns(pl.col("requests", "unpriced_requests").fill_null(0).cast(pl.Int64))
    )


_RECONCILIATION_DAILY = """
    SELECT charge_day, provider, any_value(measure) AS measure,
           sum(priced_cost_usd) AS priced_cost_usd, sum(billed_cost_usd) AS billed_cost_usd,
           sum(billed_cost_usd) - coalesce(sum(priced_cost_usd), 0) AS diff_usd
    FROM reconciliation
    WHERE charge_day >= $start AND charge_day < $end
    GROUP BY ALL
    HAVING sum(billed_cost_usd) IS NOT NULL
    ORDER BY charge_day, provider"""


def reconciliation_daily(db: Database, *, start: date, end: date, time_limit_ms: int) -> pl.DataFrame:
    """Per UTC day and billed provider: our price of the measure that counts, the bill, and the gap (billed -
    priced). Company-wide: for callers that see every team."""
    return _frame(db, _RECONCILIATION_DAILY, {"start": start, "end": end}, time_limit_ms)


def findings_frame(db: Database, q: FindingsQuery, *, time_limit_ms: int) -> pl.DataFrame:
    """What `findings_page` answers for `q` (costliest first, at most `q.limit` rows), as a frame with the
    evidence's ids as a list (`evidence_ids`) and their count (`evidence_count`)."""
    sql = _FINDINGS
    params: dict[str, Any] = {
        "start_ts": datetime.combine(q.start, time(), UTC),
        "end_ts": datetime.combine(q.end, time(), UTC),
        "limit": q.limit,
        "offset": q.offset,
    }
    for attr, column in (("kinds", "kind"), ("teams", "team"), ("severities", "severity")):
        values = getattr(q, attr)
        if values is not None:
            sql += f" AND {column} IN (SELECT unnest(${attr}))"
            params[attr] = list(values)
    sql = f"""
        SELECT f.*, CAST(json_extract_string(f.evidence, '$.ids[*]') AS VARCHAR[]) AS evidence_ids,
               CAST(coalesce(CAST(json_extract(f.evidence, '$.count') AS BIGINT),
                             json_array_length(json_extract(f.evidence, '$.ids'))) AS BIGINT) AS evidence_count
        FROM ({sql} ORDER BY excess_cost_usd DESC, window_start DESC, finding_id LIMIT $limit OFFSET $offset) f
        ORDER BY excess_cost_usd DESC, window_start DESC, finding_id"""
    return _frame(db, sql, params, time_limit_ms)


_ALERTS = """
    SELECT a.alert_id, a.budget_id, b.team, b.feature, b.tag, a.kind, a.threshold_pct, a.period, a.fired_at,
           a.state, a.delivery, CAST(a.amount_usd AS DECIMAL(38, 12)) AS amount_usd, a.actual_usd, a.forecast_usd,
           a.finding_id, a.message
    FROM alerts a LEFT JOIN budgets b USING (budget_id)
    WHERE a.fired_at > $start_ts AND a.fired_at <= $end_ts"""


def alerts_frame(
    db: Database, *, start: date, end: date, teams: Sequence[str] | None, limit: int, time_limit_ms: int
) -> pl.DataFrame:
    """Alerts fired over the UTC days [start, end), newest first, with their budget's team and feature; a
    scoped caller sees only the alerts of its teams' budgets. An alert fired at midnight evaluated the day
    before it, so the range is (start 00:00, end 00:00]."""
    sql = _ALERTS
    params: dict[str, Any] = {
        "start_ts": datetime.combine(start, time(), UTC),
        "end_ts": datetime.combine(end, time(), UTC),
        "limit": limit,
    }
    if teams is not None:
        sql += " AND b.team IN (SELECT unnest($teams))"
        params["teams"] = list(teams)
    sql += " ORDER BY a.fired_at DESC, a.alert_id LIMIT $limit"
    return _frame(db, sql, params, time_limit_ms)


def _frame(db: Database, sql: str, params: dict[str, Any], time_limit_ms: int) -> pl.DataFrame:
    """A query's result as a polars frame (through Arrow, column at a time), stopped at `time_limit_ms`."""
    with _interrupt_after(db, time_limit_ms):
        try:
            result: pl.DataFrame = db.con.sql(sql, params=params).pl()
            return result
        except duckdb.InterruptException:
            raise QueryTimeout(
                f"The query ran longer than {time_limit_ms} ms and was stopped. The limit is "
                "FINOPS_API_QUERY_TIME_LIMIT_MS; narrow the date range or pick fewer teams.",
                time_limit_ms=time_limit_ms,
            ) from None


# ------------------------------------------------------------------------------------- forecasts API
# The reads behind `GET /v1/forecasts`: they depend only on the columns of the `forecasts` table
# (queries/schema/0008_forecasts.sql) and of `spend_daily`, not on the forecast stage's code.

_SCOPE_FORECAST = """
    SELECT team, feature, scope, period, period_kind, period_start, period_end, as_of, forecast_start, data_through,
           history_days, actual_to_date_usd, remaining_days, remaining_usd, forecast_usd, lo80_usd, hi80_usd,
           lo95_usd, hi95_usd, daily_forecast_usd, method, note, budget_id, budget_usd, breach_date
    FROM forecasts
    WHERE team IS NOT DISTINCT FROM $team AND feature IS NOT DISTINCT FROM $feature AND period = $period"""


def scope_forecast(
    db: Database,
    *,
    team: str | None,
    feature: str | None,
    period: str,
    as_of: datetime | None = None,
    time_limit_ms: int,
) -> dict[str, Any] | None:
    """The newest forecast (greatest `as_of`, made at or before `as_of` when given) of one scope and period
    label (`2026-11`, `2026-Q4`, `2026-11-10/2026-12-10`); team None with feature None is the company total.
    None when there is none."""
    sql = _SCOPE_FORECAST
    params: dict[str, Any] = {"team": team, "feature": feature, "period": period}
    if as_of is not None:
        sql += " AND as_of <= $as_of"
        params["as_of"] = as_of
    rows = _records(db, sql + " ORDER BY as_of DESC, created_at DESC LIMIT 1", params, time_limit_ms)
    return rows[0] if rows else None


_SCOPE_DAILY_SPEND = """
    SELECT charge_day, sum(cost_usd) AS cost_usd
    FROM spend_daily
    WHERE charge_day >= $start AND charge_day < $end AND cost_usd IS NOT NULL
      AND ($team IS NULL OR team = $team) AND ($feature IS NULL OR feature = $feature)
    GROUP BY charge_day
    ORDER BY charge_day"""


def scope_daily_spend(
    db: Database, *, team: str | None, feature: str | None, start: date, end: date, time_limit_ms: int
) -> list[tuple[date, Any]]:
    """Exact priced spend per UTC day of [start, end) of a team (and feature), or of the company when team is
    None: the same sums the forecast stage reads as history. Days without spend are absent."""
    params: dict[str, Any] = {"team": team, "feature": feature, "start": start, "end": end}
    return [(r["charge_day"], r["cost_usd"]) for r in _records(db, _SCOPE_DAILY_SPEND, params, time_limit_ms)]


__all__ += ["scope_daily_spend", "scope_forecast"]
