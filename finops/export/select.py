"""The SELECT behind each export, with its parameters: `spend` (one cost line), `spend_daily`, or FOCUS rows.

Only fixed SQL fragments are joined here (one per filter that is set); the filter values travel as DuckDB
named parameters (`$start`, `$end`, `$teams`), never inside the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from finops.export.focus import focus_select

__all__ = ["Grain", "Selection", "SpendFilter", "selection"]

Grain = Literal["line", "daily", "focus"]

# the relation each grain reads, and its order (deterministic files: the same data writes the same bytes)
_SOURCES: dict[str, tuple[str, str]] = {
    "line": ("spend", "charge_day, ts, source, request_id, line_type, team, feature, provider, model"),
    "daily": ("spend_daily", "charge_day, team, feature, provider, model, kind, line_type"),
}


@dataclass(frozen=True)
class SpendFilter:
    """UTC days [start, end) (either side open when None) and teams (every team when empty)."""

    start: date | None = None
    end: date | None = None
    teams: tuple[str, ...] = ()

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause over `charge_day` and `team`, and its parameters."""
        clauses: list[str] = ["true"]
        params: dict[str, Any] = {}
        if self.start is not None:
            clauses.append("charge_day >= $start")
            params["start"] = self.start
        if self.end is not None:
            clauses.append("charge_day < $end")
            params["end"] = self.end
        if self.teams:
            clauses.append("list_contains($teams, team)")
            params["teams"] = list(self.teams)
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class Selection:
    """A SELECT to export (unordered, plus its ORDER BY), its parameters, and what the totals read."""

    unordered_sql: str
    order_by: str
    params: dict[str, Any]
    cost_column: str
    unpriced_sql: str  # a boolean over one output row: the row holds usage with no known price

    @property
    def sql(self) -> str:
        return f"{self.unordered_sql} ORDER BY {self.order_by}"


def selection(grain: Grain, spend_filter: SpendFilter) -> Selection:
    """The rows of one export."""
    where, params = spend_filter.where()
    if grain == "focus":
        sql, order, focus_params = focus_select(where)
        unpriced = "\"x_PriceStatus\" = 'Unpriced'"
        return Selection(sql, order, {**params, **focus_params}, '"BilledCost"', unpriced)
    relation, order = _SOURCES[grain]
    unpriced = "cost_usd IS NULL" if grain == "line" else "(cost_usd IS NULL OR unpriced_requests > 0)"
    return Selection(f"SELECT * FROM {relation} WHERE {where}", order, params, "cost_usd", unpriced)
