"""The three dashboards: which numbers, charts and tables each shows, built from a `Context`.

A chart is a `ChartSpec`: how to load its frame (`data`) and how to draw it (`figures_*`). The page shows
every chart; the CSV download of one chart loads only its frame. Charts that read company-wide data (the
provider bills, the bucket teams) are left out of a view narrowed to teams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from finops.dashboards import data
from finops.dashboards.data import Context
from finops.dashboards.figures_findings import findings_by_kind_figure, findings_timeline_figure
from finops.dashboards.figures_spend import (
    KIND_COLOURS,
    buckets_figure,
    forecast_budget_figure,
    reconciliation_figure,
    stacked_spend_figure,
    top_models_figure,
)
from finops.dashboards.figures_team import burn_down_figure
from finops.dashboards.style import BUCKET_COLOURS

from finops.errors import NotFound

__all__ = ["VIEWS", "Chart", "ChartSpec", "Kpi", "Table", "View", "build_view", "load_frame"]


@dataclass(frozen=True)
class ChartSpec:
    chart_id: str
    title: str
    note: str
    load: Callable[[Context], pl.DataFrame]
    draw: Callable[[pl.DataFrame, Context], go.Figure]
    company_only: bool = False


@dataclass(frozen=True)
class TableSpec:
    table_id: str
    title: str
    note: str
    load: Callable[[Context], pl.DataFrame]
    columns: tuple[tuple[str, str], ...]  # (column, heading) shown; the CSV has every column


@dataclass(frozen=True)
class Chart:
    spec: ChartSpec
    frame: pl.DataFrame  # the data behind the chart: what its CSV holds
    figure: go.Figure | None  # None: nothing in the filter


@dataclass(frozen=True)
class Table:
    spec: TableSpec
    frame: pl.DataFrame


@dataclass(frozen=True)
class Kpi:
    label: str
    value: Decimal | None  # exact dollars (None: not known)
    detail: str = ""


@dataclass(frozen=True)
class View:
    name: str  # finance | team | findings
    title: str
    context: Context
    kpis: list[Kpi] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _team_feature() -> pl.Expr:
    """`team / feature`, or the bucket's name alone for a named bucket (`__idle__`, not `__idle__ / __idle__`),
    so the chart keeps, colours and orders it as the bucket it is."""
    team = pl.col("team").fill_null("?")
    pair = pl.concat_str(team, pl.col("feature").fill_null("(none)"), separator=" / ")
    return pl.when(team.is_in(list(BUCKET_COLOURS))).then(team).otherwise(pair).alias("team_feature")


def _grain_title(ctx: Context, what: str) -> str:
    return f"{what}, {'daily' if ctx.filter.grain == 'day' else 'monthly'}"


# ------------------------------------------------------------------------------------------ finance

FINANCE_CHARTS = (
    ChartSpec(
        "spend_by_team",
        "Spend by team",
        "Stacked per day or month; the 12 largest teams, the named buckets, and the rest summed.",
        data.team_spend,
        lambda f, c: stacked_spend_figure(
            f, key="team", title=_grain_title(c, "Spend by team"), grain=c.filter.grain, other="other teams"
        ),
    ),
    ChartSpec(
        "spend_by_feature",
        "Spend by feature",
        "Team / feature, stacked; the 12 largest, and the rest summed.",
        data.feature_spend,
        lambda f, c: stacked_spend_figure(
            f.with_columns(_team_feature()),
            key="team_feature",
            title=_grain_title(c, "Spend by feature"),
            grain=c.filter.grain,
            other="other features",
        ),
    ),
    ChartSpec(
        "token_vs_gpu",
        "Token vs GPU spend",
        "GPU spend split into jobs and idle capacity (`__idle__`).",
        data.kind_spend,
        lambda f, c: stacked_spend_figure(
            f, key="kind", title=_grain_title(c, "Token vs GPU spend"), grain=c.filter.grain, colours=KIND_COLOURS
        ),
    ),
    ChartSpec(
        "top_models",
        "Top models",
        "Token spend per provider and model over the range; the 15 largest, and the rest summed.",
        data.model_spend,
        lambda f, c: top_models_figure(f, title="Top models by token spend"),
    ),
    ChartSpec(
        "forecast_vs_budget",
        "Month-end forecast against budgets",
        "The latest forecast of each team's month as of the last run: spent to date (bar), the month-end "
        "forecast with its 80 % and 95 % intervals, and the monthly budget (red).",
        data.month_forecasts,
        lambda f, c: forecast_budget_figure(f, title=f"Month-end forecast vs budget, as of {c.filter.as_of_day}"),
    ),
    ChartSpec(
        "buckets",
        "Named buckets",
        "Spend no rule gives an owner (`__unattributed__`), usage with no price (`__unpriced__`: requests, "
        "never $0), idle GPU capacity (`__idle__`), and billed spend the gateway never saw (`__unobserved__`).",
        data.buckets,
        lambda f, c: buckets_figure(f, title="Named buckets"),
    ),
    ChartSpec(
        "reconciliation",
        "Reconciliation gap against provider bills",
        "Per day and provider: the bill minus our price of the usage that counts (the `reconciliation` view).",
        data.reconciliation,
        lambda f, c: reconciliation_figure(f, title="Provider bill minus our price"),
        company_only=True,
    ),
)

# --------------------------------------------------------------------------------------------- team

FINDING_COLUMNS = (
    ("kind", "kind"),
    ("team", "team"),
    ("feature", "feature"),
    ("model", "model"),
    ("window_start", "from (UTC)"),
    ("window_end", "to (UTC)"),
    ("excess_cost_usd", "excess $"),
    ("severity", "severity"),
    ("finding_id", "finding id"),
)
ALERT_COLUMNS = (
    ("fired_at", "fired (UTC)"),
    ("team", "team"),
    ("kind", "kind"),
    ("threshold_pct", "threshold %"),
    ("period", "period"),
    ("state", "state"),
    ("actual_usd", "spent $"),
    ("forecast_usd", "forecast $"),
    ("amount_usd", "budget $"),
    ("message", "message"),
)

TEAM_CHARTS = (
    ChartSpec(
        "burn_down",
        "Budget burn-down",
        "Cumulative spend through the month against the monthly budget; for the current month the forecast "
        "with its 80 % and 95 % cone and the projected breach date.",
        data.burn_down,
        lambda f, c: burn_down_figure(f, title=f"{c.team}: budget burn-down, {_month_name(f)}"),
    ),
    ChartSpec(
        "features",
        "Spend by feature",
        "The team's features, stacked.",
        data.feature_spend,
        lambda f, c: stacked_spend_figure(
            f, key="feature", title=_grain_title(c, "Spend by feature"), grain=c.filter.grain, other="other features"
        ),
    ),
    ChartSpec(
        "models",
        "Models",
        "The team's token spend per provider and model.",
        data.model_spend,
        lambda f, c: top_models_figure(f, title="Models by token spend"),
    ),
    ChartSpec(
        "findings_by_kind",
        "Findings",
        "Excess dollars of the team's findings in the range, by kind and severity.",
        data.findings,
        lambda f, c: findings_by_kind_figure(f, title="Findings: excess cost by kind"),
    ),
)
TEAM_TABLES = (
    TableSpec("findings", "Open findings", "Findings whose window overlaps the range.", data.findings, FINDING_COLUMNS),
    TableSpec("alerts", "Alerts", "Budget alerts fired in the range.", data.alerts, ALERT_COLUMNS),
)

# ----------------------------------------------------------------------------------------- findings

FINDINGS_CHARTS = (
    ChartSpec(
        "findings_timeline",
        "Findings over time",
        "One point per finding (retry storms, cost spikes, outlier requests...) at its start; click one for "
        "its trace and request ids.",
        data.findings,
        lambda f, c: findings_timeline_figure(f, title="Findings: excess cost over time"),
    ),
    ChartSpec(
        "findings_by_kind",
        "Findings by kind",
        "Excess dollars by kind and severity.",
        data.findings,
        lambda f, c: findings_by_kind_figure(f, title="Findings: excess cost by kind"),
    ),
)
FINDINGS_TABLES = (
    TableSpec(
        "findings",
        "Findings",
        "Costliest first; open a row for the ids of the events involved.",
        data.findings,
        FINDING_COLUMNS,
    ),
)

VIEWS: dict[str, tuple[str, tuple[ChartSpec, ...], tuple[TableSpec, ...]]] = {
    "finance": ("Finance overview", FINANCE_CHARTS, ()),
    "team": ("Team", TEAM_CHARTS, TEAM_TABLES),
    "findings": ("Findings", FINDINGS_CHARTS, FINDINGS_TABLES),
}


def build_view(name: str, ctx: Context) -> View:
    """Every number, chart and table of view `name` for `ctx`."""
    title, charts, tables = VIEWS[name]
    if name == "team":
        title = f"Team {ctx.team}"
    loaded: dict[Callable[[Context], pl.DataFrame], pl.DataFrame] = {}

    def load(fn: Callable[[Context], pl.DataFrame]) -> pl.DataFrame:
        if fn not in loaded:  # findings feed a chart and a table: read once
            loaded[fn] = fn(ctx)
        return loaded[fn]

    built = []
    for spec in charts:  # a handful of charts per view
        if spec.company_only and not ctx.company_wide:
            continue
        frame = load(spec.load)
        built.append(Chart(spec, frame, spec.draw(frame, ctx) if _has_data(frame) else None))
    return View(
        name=name,
        title=title,
        context=ctx,
        kpis=_kpis(name, ctx, load),
        charts=built,
        tables=[Table(spec, load(spec.load)) for spec in tables],
    )


def load_frame(name: str, item: str, ctx: Context) -> pl.DataFrame:
    """The frame behind one chart or table of a view (for its CSV), or `NotFound` naming the valid ones."""
    _, charts, tables = VIEWS[name]
    specs: dict[str, Callable[[Context], pl.DataFrame]] = {
        s.chart_id: s.load for s in charts if not s.company_only or ctx.company_wide
    }
    specs |= {t.table_id: t.load for t in tables}
    if item not in specs:
        raise NotFound(
            f"The {VIEWS[name][0].lower()} dashboard has no chart or table with that name. "
            f"Valid names are: {', '.join(sorted(specs))}."
        )
    return specs[item](ctx)


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _month_name(frame: pl.DataFrame) -> str:
    first = frame["charge_day"].min()
    return first.strftime("%B %Y") if isinstance(first, date) else ""


def _has_data(frame: pl.DataFrame) -> bool:
    return frame.height > 0


def _kpis(name: str, ctx: Context, load: Callable[[Callable[[Context], pl.DataFrame]], pl.DataFrame]) -> list[Kpi]:
    if name == "findings":
        found = load(data.findings)
        total = _decimal(found["excess_cost_usd"].sum()) if found.height else None
        kinds = ", ".join(f"{k} {n}" for k, n in found.group_by("kind").len().sort("kind").iter_rows())
        detail = f"{found.height} findings: {kinds}" if kinds else "none"
        if found.height >= data.MAX_TABLE_ROWS:  # the read stops there: say so rather than show a partial total
            detail = f"the {data.MAX_TABLE_ROWS:,} costliest findings only (narrow the range or teams): {kinds}"
        return [Kpi("Excess cost of findings", total, detail)]
    months = data.month_to_date(ctx)
    this, same, last = months["this_month"], months["last_month_same_days"], months["last_month"]
    assert isinstance(this, Decimal) and isinstance(same, Decimal) and isinstance(last, Decimal)
    change = f"{(this - same) / same * 100:+.1f} % vs the same days of last month" if same else ""
    kpis = [
        Kpi(f"This month to {months['as_of_day']}", this, change),
        Kpi("Last month, same days", same, f"from {months['last_start']}"),
        Kpi("Last month", last, f"{months['last_start']:%B %Y}"),
    ]
    forecasts = load(data.month_forecasts)
    if name == "team":
        forecasts = forecasts.filter(pl.col("team") == ctx.team)
    elif ctx.company_wide:
        forecasts = forecasts.filter(pl.col("team").is_null())
    else:
        forecasts = forecasts.filter(pl.col("team").is_not_null())
    if forecasts.height == 1:
        row = forecasts.row(0, named=True)
        detail = f"80 %: ${row['lo80_usd']:,.2f} to ${row['hi80_usd']:,.2f}"
        if row["budget_usd"] is not None:
            breach = f", projected breach {row['breach_date']}" if row["breach_date"] else ", no breach projected"
            detail += f"; budget ${row['budget_usd']:,.2f}{breach}"
        kpis.append(Kpi(f"Month-end forecast ({row['period']})", row["forecast_usd"], detail))
    elif forecasts.height > 1:
        total = _decimal(forecasts["forecast_usd"].sum())
        kpis.append(Kpi("Month-end forecast", total, f"sum of {forecasts.height} teams' point forecasts"))
    return kpis
