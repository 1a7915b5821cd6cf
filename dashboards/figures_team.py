"""The team view's own figure: a month's budget burn-down with the forecast cone and the breach date."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from finops.dashboards.style import day_text, exact_text, figure, layout, money

__all__ = ["burn_down_figure"]

_CONES = (
    ("95", "lo95_usd", "hi95_usd", "rgba(31, 119, 180, 0.12)"),
    ("80", "lo80_usd", "hi80_usd", "rgba(31, 119, 180, 0.25)"),
)
_PATH = ("forecast_cumulative_usd", "lo80_usd", "hi80_usd", "lo95_usd", "hi95_usd")


def burn_down_figure(frame: pl.DataFrame, *, title: str) -> go.Figure:
    """Cumulative spend through one month, from the frame of `data.burn_down` (one row per day: charge_day,
    actual_usd, cumulative_usd, forecast_cumulative_usd, lo80_usd, hi80_usd, lo95_usd, hi95_usd, budget_usd,
    breach_date): actuals as a solid line, the point forecast dashed, its 80 % and 95 % cones shaded, the
    budget as a red line, the projected breach date marked."""
    first, last = frame["charge_day"].min(), frame["charge_day"].max()
    assert isinstance(first, date) and isinstance(last, date)
    budget: Decimal | None = frame["budget_usd"][0]
    breach: date | None = frame["breach_date"][0]
    actual = frame.filter(pl.col("actual_usd").is_not_null())
    ahead = frame.filter(pl.col("forecast_cumulative_usd").is_not_null())
    # the forecast and its cones start from the last actual point, so they join the line
    anchor = actual.tail(1).select("charge_day", *(pl.col("cumulative_usd").alias(c) for c in _PATH))
    path = pl.concat([anchor, ahead.select(anchor.columns)]) if ahead.height else ahead
    days = day_text(path["charge_day"])
    traces: list[dict[str, Any]] = []
    for level, lo, hi, colour in _CONES if path.height else ():
        traces.append(
            {
                "type": "scatter",
                "x": days,
                "y": money(path[lo]),
                "mode": "lines",
                "line": {"width": 0},
                "showlegend": False,
                "hoverinfo": "skip",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "name": f"forecast {level} % interval",
                "x": days,
                "y": money(path[hi]),
                "mode": "lines",
                "line": {"width": 0},
                "fill": "tonexty",
                "fillcolor": colour,
                "customdata": list(zip(exact_text(path[lo]), exact_text(path[hi]), strict=True)),
                "hovertemplate": f"%{{x|%Y-%m-%d}}: {level} % of the cumulative spend between $%{{customdata[0]}} "
                "and $%{customdata[1]}<extra></extra>",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "name": "spent (cumulative)",
            "x": day_text(actual["charge_day"]),
            "y": money(actual["cumulative_usd"]),
            "mode": "lines+markers",
            "line": {"color": "#1F4E79", "width": 3},
            "marker": {"size": 5},
            "customdata": list(
                zip(exact_text(actual["cumulative_usd"]), exact_text(actual["actual_usd"]), strict=True)
            ),
            "hovertemplate": "%{x|%Y-%m-%d}<br>spent to date %{y:$,.2f}<br>exact $%{customdata[0]}<br>"
            "that day $%{customdata[1]}<extra></extra>",
        }
    )
    if path.height:
        traces.append(
            {
                "type": "scatter",
                "name": "forecast (cumulative)",
                "x": days,
                "y": money(path["forecast_cumulative_usd"]),
                "mode": "lines",
                "line": {"color": "#1F77B4", "width": 2, "dash": "dash"},
                "customdata": exact_text(path["forecast_cumulative_usd"]),
                "hovertemplate": "%{x|%Y-%m-%d}<br>forecast to date %{y:$,.2f}<br>exact $%{customdata}<extra></extra>",
            }
        )
    if budget is not None:
        traces.append(
            {
                "type": "scatter",
                "name": "monthly budget",
                "x": [first.isoformat(), last.isoformat()],
                "y": [float(budget)] * 2,
                "mode": "lines",
                "line": {"color": "#D62728", "width": 2},
                "customdata": [str(budget)] * 2,
                "hovertemplate": "budget %{y:$,.2f}<br>exact $%{customdata}<extra></extra>",
            }
        )
    extra: dict[str, Any] = {}
    if breach is not None:
        extra["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": breach.isoformat(),
                "x1": breach.isoformat(),
                "y0": 0,
                "y1": 1,
                "line": {"color": "#D62728", "dash": "dot", "width": 1},
            }
        ]
        extra["annotations"] = [
            {
                "x": breach.isoformat(),
                "y": 1,
                "yref": "paper",
                "text": f"projected breach {breach.isoformat()}",
                "showarrow": False,
                "xanchor": "left",
                "font": {"color": "#D62728"},
            }
        ]
    x_axis = {"type": "date", "range": [f"{first.isoformat()} 00:00", f"{last.isoformat()} 23:59"]}
    return figure(traces, layout(title=title, height=420, xaxis=x_axis, **extra))
