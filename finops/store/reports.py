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
from typing import Any

import duckdb

from finops.errors import InputError, QueryTimeout
from finops.store.db import Database

__all__ = [
    "DAILY_GROUPS",
    "GROUPS",
    "FindingsQuery",
    "Page",
    "SpendQuery",
    "findings_page",
    "parse_group_by",
    "spend_page",
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


def spend_totals(db: Database, q: SpendQuery, *, time_limit_ms: int) -> dict[str, Any]:
    """The totals over the whole filter (every page), from the rollup: it sums to the same as `spend`."""
    where, params = _where(q, "charge_day")
    rows = _records(db, f"SELECT {_MEASURES_DAILY} FROM spend_daily WHERE {where}", params, time_limit_ms)
    # an empty filter sums to NULL; counts are 0 then, money stays NULL (nothing priced is not $0)
    return {k: (0 if v is None and k not in ("cost_usd", "gpu_seconds") else v) for k, v in rows[0].items()}


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
