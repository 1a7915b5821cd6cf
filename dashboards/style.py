"""What every figure shares: colours, the layout, exact-dollar hover text, and folding small series.

Plotly plots floats; the exact amount travels beside each point as text (`customdata`) and the hover shows
both: `$1,234.57` to read, `exact $1234.567890123` to check. Dates and names are formatted here, last.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl

__all__ = [
    "BUCKET_COLOURS",
    "MONEY_HOVER",
    "PALETTE",
    "colour_of",
    "day_text",
    "exact_text",
    "figure",
    "fold_series",
    "label",
    "layout",
    "money",
    "series_order",
]

PALETTE = (
    "#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B", "#9D755D",
    "#FF9DA6", "#439894", "#83BCB6", "#D67195", "#8CD17D", "#B6992D", "#499894", "#79706E",
)  # fmt: skip
BUCKET_COLOURS = {
    "__unattributed__": "#9E9E9E",
    "__unpriced__": "#616161",
    "__idle__": "#BDBDBD",
    "__unobserved__": "#757575",
}
OTHER_COLOUR = "#CFCFCF"
MONEY_HOVER = "%{y:$,.2f}<br>exact $%{customdata}"


def colour_of(name: str, index: int) -> str:
    if name in BUCKET_COLOURS:
        return BUCKET_COLOURS[name]
    if name.startswith("other"):
        return OTHER_COLOUR
    return PALETTE[index % len(PALETTE)]


def exact_text(values: pl.Series) -> list[str]:
    """DECIMAL dollars as exact text, trailing zeros dropped past the cents: 1234.5678, 5.00, -0.10."""
    text = values.cast(pl.String).str.replace(r"(\.\d\d\d*?)0+$", "${1}").fill_null("")
    return text.to_list()


def money(values: pl.Series) -> list[float]:
    """The float a chart plots (never summed or shown as the amount: `exact_text` is)."""
    return values.cast(pl.Float64).fill_null(0.0).to_list()


def label(name: object) -> str:
    """A name from the data as plotly text: escaped, so a team called `<b>x</b>` shows as typed."""
    return html.escape("(none)" if name is None else str(name), quote=False)


def fold_series(frame: pl.DataFrame, key: str, value: str, keep: int, other: str) -> pl.DataFrame:
    """Keep the `keep` series of `key` with the largest total `value` (named buckets always kept) and sum
    the rest into one series called `other` (exact: DECIMAL sums). Every other column is grouped by."""
    totals = frame.group_by(key).agg(pl.col(value).sum().alias("_total"))
    top = totals.sort("_total", key, descending=[True, False], nulls_last=True).head(keep)[key].to_list()
    kept = pl.col(key).is_in(top) | pl.col(key).is_in(list(BUCKET_COLOURS))
    others = frame.filter(~kept)
    if others.height == 0:
        return frame
    count = others[key].n_unique()
    dims = [c for c in frame.columns if c not in (key, value)]
    folded = (
        others.group_by(dims)
        .agg(pl.col(value).sum())
        .with_columns(pl.lit(f"{other} ({count})").alias(key))
        .select(frame.columns)
    )
    return pl.concat([frame.filter(kept), folded])


def series_order(frame: pl.DataFrame, key: str, value: str) -> list[Any]:
    """Series names, largest total first, named buckets and the folded rest last."""
    totals = frame.group_by(key).agg(pl.col(value).sum().alias("_total"))
    tail = pl.col(key).is_in(list(BUCKET_COLOURS)) | pl.col(key).cast(pl.String).str.starts_with("other ")
    return (
        totals.with_columns(_tail=tail)
        .sort("_tail", "_total", key, descending=[False, True, False], nulls_last=True)[key]
        .to_list()
    )


def layout(*, title: str, y_title: str = "USD", height: int = 380, **extra: Any) -> dict[str, Any]:
    """The layout every figure starts from; `extra` adds or replaces top-level keys."""
    base: dict[str, Any] = {
        "title": {"text": html.escape(title, quote=False), "x": 0.01, "font": {"size": 15}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "v", "font": {"size": 11}},
        "hoverlabel": {"font": {"family": "ui-monospace, SFMono-Regular, Menlo, monospace", "size": 12}},
        "plot_bgcolor": "#FFFFFF",
        "paper_bgcolor": "#FFFFFF",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "yaxis": {
            "title": {"text": y_title},
            "gridcolor": "#EEEEEE",
            "zerolinecolor": "#BDBDBD",
            "tickprefix": "$",
            "exponentformat": "none",
        },
        "xaxis": {"gridcolor": "#F5F5F5"},
    }
    for key, value in extra.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


def figure(traces: list[dict[str, Any]], figure_layout: dict[str, Any]) -> go.Figure:
    """The figure of plain trace and layout dicts, built without plotly's per-property validation (a page
    builds dozens of traces per request; the tests validate every figure instead)."""
    return go.Figure(data=traces, layout=figure_layout, _validate=False)


def day_text(values: pl.Series) -> list[str]:
    """Dates as plotly reads them (ISO days; times to the second, UTC)."""
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S").to_list()
    return values.cast(pl.Date).dt.strftime("%Y-%m-%d").to_list()
