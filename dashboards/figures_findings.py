"""Figures of findings: retry storms, cost spikes, outlier requests... in time, and their dollars by kind.

Each point of the timeline carries its `finding_id`: clicking it opens the finding's row in the table
below the chart, which lists the trace and request ids of its evidence.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from finops.dashboards.style import PALETTE, day_text, exact_text, figure, label, layout, money

__all__ = ["findings_by_kind_figure", "findings_timeline_figure"]

SEVERITIES = ("low", "medium", "high", "critical")
_SIZES = {"low": 8, "medium": 12, "high": 17, "critical": 22}
_SEVERITY_COLOURS = {"low": "#FDD0A2", "medium": "#FD8D3C", "high": "#D94801", "critical": "#7F2704"}


def findings_timeline_figure(frame: pl.DataFrame, *, title: str) -> go.Figure:
    """One point per finding at its window start, its excess dollars up the (log) axis, one trace per kind
    (columns finding_id, kind, team, feature, model, window_start, trace_id, request_id, excess_cost_usd,
    severity, evidence_count)."""
    data = frame.with_columns(
        pl.col("excess_cost_usd").fill_null(0),
        where=pl.concat_str(
            pl.col("team").fill_null("(company)"), pl.col("feature").fill_null("(all features)"), separator=" / "
        ),
        ids=pl.coalesce(
            pl.format("request {}", pl.col("request_id")),
            pl.format("trace {}", pl.col("trace_id")),
            pl.format("{} events", pl.col("evidence_count")),
        ),
        size=pl.col("severity").replace_strict(_SIZES, default=10, return_dtype=pl.Int64),
    )
    traces = []
    for i, kind in enumerate(data["kind"].unique().sort().to_list()):  # one trace per kind
        part = data.filter(pl.col("kind") == kind)
        details = zip(
            exact_text(part["excess_cost_usd"]),
            part["finding_id"].to_list(),
            [label(w) for w in part["where"]],
            [label(m) for m in part["model"]],
            part["severity"].to_list(),
            [label(x) for x in part["ids"]],
            strict=True,
        )
        traces.append(
            {
                "type": "scatter",
                "name": label(kind),
                "x": day_text(part["window_start"]),
                "y": money(part["excess_cost_usd"]),
                "mode": "markers",
                "marker": {
                    "size": part["size"].to_list(),
                    "color": PALETTE[i % len(PALETTE)],
                    "line": {"width": 1, "color": "#333333"},
                    "opacity": 0.85,
                },
                "customdata": list(details),
                "hovertemplate": f"<b>{label(kind)}</b> %{{x|%Y-%m-%d %H:%M}} UTC<br>%{{customdata[2]}} "
                "(%{customdata[3]})<br>excess %{y:$,.2f}, exact $%{customdata[0]}<br>severity %{customdata[4]}"
                "<br>%{customdata[5]}<br>id %{customdata[1]} (click for the ids)<extra></extra>",
            }
        )
    y_axis = {"type": "log", "title": {"text": "excess cost (USD, log)"}}
    return figure(traces, layout(title=title, height=420, xaxis={"type": "date"}, yaxis=y_axis))


def findings_by_kind_figure(frame: pl.DataFrame, *, title: str) -> go.Figure:
    """Excess dollars per kind of finding, stacked by severity (columns kind, severity, excess_cost_usd)."""
    data = (
        frame.group_by("kind", "severity")
        .agg(pl.col("excess_cost_usd").fill_null(0).sum(), pl.len().alias("findings"))
        .sort("kind", "severity")
    )
    found = data["severity"].unique().to_list()
    ordered = [s for s in SEVERITIES if s in found] + sorted(s for s in found if s not in SEVERITIES)
    traces: list[dict[str, Any]] = []
    for severity in ordered:  # one trace per severity
        part = data.filter(pl.col("severity") == severity)
        traces.append(
            {
                "type": "bar",
                "name": label(severity),
                "x": [label(k) for k in part["kind"]],
                "y": money(part["excess_cost_usd"]),
                "customdata": list(zip(exact_text(part["excess_cost_usd"]), part["findings"].to_list(), strict=True)),
                "marker": {"color": _SEVERITY_COLOURS.get(severity, "#999999")},
                "hovertemplate": "<b>%{x}</b>, " + label(severity) + "<br>%{y:$,.2f}<br>exact $%{customdata[0]}<br>"
                "%{customdata[1]} findings<extra></extra>",
            }
        )
    y_axis = {"title": {"text": "excess cost (USD)"}}
    return figure(traces, layout(title=title, height=340, barmode="stack", yaxis=y_axis))
