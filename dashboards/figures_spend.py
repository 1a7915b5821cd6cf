"""Figures of spend: stacked over time, by kind, top models, forecasts against budgets, buckets, bills.

Pure functions: a frame of `finops.dashboards.data` in, a `go.Figure` out. Every point carries its exact
DECIMAL amount as `customdata` (see `style`), so the sum of a figure's exact amounts is the query's total.
"""

from __future__ import annotations

from typing import Any, Literal

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from finops.dashboards.style import (
    MONEY_HOVER,
    colour_of,
    day_text,
    exact_text,
    figure,
    fold_series,
    label,
    layout,
    money,
    series_order,
)

__all__ = [
    "KIND_COLOURS",
    "buckets_figure",
    "forecast_budget_figure",
    "reconciliation_figure",
    "stacked_spend_figure",
    "top_models_figure",
]

KIND_COLOURS = {"tokens": "#4C78A8", "gpu": "#F58518", "gpu idle": "#BDBDBD"}


_DAY_MS = 86_400_000


def stacked_spend_figure(
    frame: pl.DataFrame,
    *,
    key: str,
    title: str,
    grain: Literal["day", "month"],
    keep: int = 12,
    other: str = "other",
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """Spend per `period` stacked by `key` (columns period, key, cost_usd): the `keep` largest series, the
    named buckets, and the rest summed into one `other (n)` series; stacked areas by day (bars for a single
    day), bars by month.
    A day without spend in a series is a zero in it (so the stack does not interpolate over the gap)."""
    data = frame.select("period", pl.col(key).cast(pl.String).fill_null("(none)"), "cost_usd")
    data = fold_series(data, key, "cost_usd", keep, other)
    periods = data.select("period").unique()
    names = data.select(key).unique()
    data = (
        periods.join(names, how="cross")
        .join(data, on=["period", key], how="left")
        .with_columns(pl.col("cost_usd").fill_null(0))
        .sort("period")
    )
    x_format = "%Y-%m-%d" if grain == "day" else "%b %Y"
    # one day alone has no area to draw (and plotly gives it a 2 ms axis): a bar a day wide instead
    one_day = grain == "day" and periods.height == 1
    traces = []
    for i, name in enumerate(series_order(data, key, "cost_usd")):  # one trace per series (<= keep + 5)
        part = data.filter(pl.col(key) == name)
        colour = (colours or {}).get(name) or colour_of(name, i)
        trace: dict[str, Any] = {
            "name": label(name),
            "x": day_text(part["period"]),
            "y": money(part["cost_usd"]),
            "customdata": exact_text(part["cost_usd"]),
            "hovertemplate": f"<b>{label(name)}</b><br>%{{x|{x_format}}}<br>{MONEY_HOVER}<extra></extra>",
        }
        if grain == "month":  # a bar per month
            trace |= {"type": "bar", "marker": {"color": colour}, "xperiod": "M1", "xperiodalignment": "middle"}
        elif one_day:
            trace |= {"type": "bar", "marker": {"color": colour}, "width": 0.8 * _DAY_MS}
        else:  # stacked areas: one path per series, not one shape per day (fast to draw at 90 days x 50 teams)
            trace |= {
                "type": "scatter",
                "mode": "lines",
                "stackgroup": "spend",
                "line": {"width": 0.5, "color": colour},
                "fillcolor": colour,
            }
        traces.append(trace)
    x_axis: dict[str, Any] = {"type": "date"}
    if grain == "month":
        x_axis |= {"dtick": "M1", "tickformat": "%b %Y"}
    elif one_day:
        x_axis |= {"dtick": _DAY_MS, "tickformat": "%Y-%m-%d"}
    return figure(
        traces,
        layout(
            title=title,
            height=max(380, 21 * len(traces) + 110),  # tall enough for the legend: no scrolling in it
            barmode="relative",
            bargap=0.15 if grain == "day" else 0.35,
            xaxis=x_axis,
        ),
    )


def top_models_figure(frame: pl.DataFrame, *, title: str, keep: int = 15) -> go.Figure:
    """Token spend per model (columns provider, model, cost_usd, requests), largest first, the rest summed."""
    name = pl.concat_str(pl.col("provider").fill_null("?"), pl.col("model").fill_null("?"), separator=" / ")
    data = frame.select(name.alias("name"), "cost_usd", pl.col("requests").cast(pl.Int64))
    data = fold_series(data, "name", "cost_usd", keep, "other models")
    data = data.group_by("name").agg(pl.col("cost_usd").sum(), pl.col("requests").sum())
    order = series_order(data, "name", "cost_usd")
    ranks = pl.DataFrame({"name": order, "_rank": range(len(order))}, schema_overrides={"name": pl.String})
    data = data.join(ranks, on="name").sort("_rank", descending=True)  # largest at the top
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": money(data["cost_usd"]),
        "y": [label(n) for n in data["name"]],
        "customdata": list(zip(exact_text(data["cost_usd"]), data["requests"].to_list(), strict=True)),
        "marker": {"color": "#4C78A8"},
        "hovertemplate": "<b>%{y}</b><br>%{x:$,.2f}<br>exact $%{customdata[0]}<br>%{customdata[1]:,} requests"
        "<extra></extra>",
    }
    return figure(
        [trace],
        layout(
            title=title,
            height=max(300, 28 * data.height + 90),
            xaxis={"tickprefix": "$", "title": {"text": "USD"}},
            yaxis={"tickprefix": "", "title": {"text": ""}, "automargin": True},
        ),
    )


def forecast_budget_figure(frame: pl.DataFrame, *, title: str, keep: int = 25) -> go.Figure:
    """Month-end forecast per team with its 80 % and 95 % intervals, against the team's budget.

    Columns: team (the company row, team NULL, is left out: it has its own number), actual_to_date_usd,
    forecast_usd, lo80_usd, hi80_usd, lo95_usd, hi95_usd, budget_usd, breach_date."""
    data = frame.filter(pl.col("team").is_not_null()).sort("forecast_usd", "team", descending=[True, False])
    data = data.head(keep)
    teams = [label(t) for t in data["team"]]

    def arm(column: str, sign: int) -> list[float]:
        return money(data.select(((pl.col(column) - pl.col("forecast_usd")) * sign).clip(0)).to_series())

    breach = data["breach_date"].cast(pl.String).fill_null("none in the month").to_list()
    intervals = list(
        zip(
            *(exact_text(data[c]) for c in ("forecast_usd", "lo80_usd", "hi80_usd", "lo95_usd", "hi95_usd")),
            breach,
            strict=True,
        )
    )
    traces: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "spent to date",
            "x": teams,
            "y": money(data["actual_to_date_usd"]),
            "customdata": exact_text(data["actual_to_date_usd"]),
            "marker": {"color": "#4C78A8"},
            "hovertemplate": "<b>%{x}</b> spent to date<br>" + MONEY_HOVER + "<extra></extra>",
        }
    ]
    for level, lo, hi, width, colour in (
        ("95", "lo95_usd", "hi95_usd", 1, "#6BAED6"),
        ("80", "lo80_usd", "hi80_usd", 3, "#1F4E79"),
    ):
        traces.append(
            {
                "type": "scatter",
                "name": f"month-end forecast, {level} % interval",
                "x": teams,
                "y": money(data["forecast_usd"]),
                "mode": "markers",
                "marker": {"symbol": "diamond", "size": 10, "color": "#1F4E79"},
                "error_y": {
                    "type": "data",
                    "array": arm(hi, 1),
                    "arrayminus": arm(lo, -1),
                    "thickness": width,
                    "width": 6,
                    "color": colour,
                },
                "customdata": intervals,
                "hovertemplate": "<b>%{x}</b> month-end forecast<br>%{y:$,.2f}<br>exact $%{customdata[0]}<br>"
                "80 %: $%{customdata[1]} to $%{customdata[2]}<br>95 %: $%{customdata[3]} to $%{customdata[4]}"
                "<br>projected breach: %{customdata[5]}<extra></extra>",
            }
        )
    budgeted = data.filter(pl.col("budget_usd").is_not_null())
    traces.append(
        {
            "type": "scatter",
            "name": "budget",
            "x": [label(t) for t in budgeted["team"]],
            "y": money(budgeted["budget_usd"]),
            "mode": "markers",
            "marker": {"symbol": "line-ew", "size": 34, "line": {"width": 3, "color": "#D62728"}},
            "customdata": exact_text(budgeted["budget_usd"]),
            "hovertemplate": "<b>%{x}</b> monthly budget<br>" + MONEY_HOVER + "<extra></extra>",
        }
    )
    return figure(traces, layout(title=title, height=420, barmode="overlay"))


def buckets_figure(frame: pl.DataFrame, *, title: str) -> go.Figure:
    """One bar per named bucket (columns bucket, cost_usd, requests, unpriced_requests). `__unpriced__`
    usage has no cost: its bar shows what a bill kept under that name holds, and its label the requests."""
    shown = frame.select(
        pl.when(pl.col("bucket") == "__unpriced__")
        .then(pl.format("{} requests without a price (cost unknown)", pl.col("unpriced_requests")))
        .otherwise(pl.format("{} requests", pl.col("requests")))
        .alias("note"),
        pl.when(pl.col("cost_usd").is_null())
        .then(pl.lit("no cost"))
        .otherwise(pl.format("${}", pl.col("cost_usd").cast(pl.Decimal(38, 2)).cast(pl.String)))
        .alias("text"),
    )
    exact = [e or "0" for e in exact_text(frame["cost_usd"])]
    trace = {
        "type": "bar",
        "x": [label(b) for b in frame["bucket"]],
        "y": money(frame["cost_usd"]),
        "text": shown["text"].to_list(),
        "textposition": "outside",
        "customdata": list(zip(exact, shown["note"].to_list(), strict=True)),
        "marker": {"color": [colour_of(b, i) for i, b in enumerate(frame["bucket"])]},
        "hovertemplate": "<b>%{x}</b><br>%{y:$,.2f}<br>exact $%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
    }
    return figure([trace], layout(title=title, height=340))


def reconciliation_figure(frame: pl.DataFrame, *, title: str) -> go.Figure:
    """Per day and provider, the bill minus our price of the measure that counts (columns charge_day,
    provider, priced_cost_usd, billed_cost_usd, diff_usd); above zero: billed more than we priced."""
    traces = []
    for i, provider in enumerate(frame["provider"].unique().sort().to_list()):  # one trace per provider
        part = frame.filter(pl.col("provider") == provider)
        columns = ("diff_usd", "billed_cost_usd", "priced_cost_usd")
        traces.append(
            {
                "type": "bar",
                "name": label(provider),
                "x": day_text(part["charge_day"]),
                "y": money(part["diff_usd"]),
                "customdata": list(zip(*(exact_text(part[c]) for c in columns), strict=True)),
                "marker": {"color": colour_of(provider, i)},
                "hovertemplate": f"<b>{label(provider)}</b> %{{x|%Y-%m-%d}}<br>gap %{{y:$,.2f}} (exact "
                "$%{customdata[0]})<br>billed $%{customdata[1]}<br>our price $%{customdata[2]}<extra></extra>",
            }
        )
    frame_layout = layout(title=title, y_title="billed - priced (USD)", height=340, barmode="group")
    return figure(traces, frame_layout | {"xaxis": {**frame_layout["xaxis"], "type": "date"}})
