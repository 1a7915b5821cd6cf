"""A `View` as one HTML page: header and navigation, the filter form, headline numbers, charts, tables.

Two ways out, one renderer (`Links` says which):
  - served (`finops serve`): plotly.js from `/dashboards/static/...` (cached for good), a filter form that
    reloads the page, CSV downloads from `/dashboards/.../{chart}.csv`;
  - static (`finops dashboard --out DIR`): plotly.js and every chart's CSV embedded, links between the files,
    the filter written out (re-export to change it). One file per view, to mail around.
Everything from the data is escaped (names come from logs); the figures travel as one JSON block.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl
from finops.dashboards.export import csv_text, display_frame
from finops.dashboards.filters import ViewFilter
from finops.dashboards.page_parts import SCRIPT, STYLE
from finops.dashboards.views import Chart, Kpi, Table, View

__all__ = ["Links", "render_page"]

MAX_TABLE_ROWS_SHOWN = 200
MAX_EVIDENCE_IDS_SHOWN = 50


@dataclass(frozen=True)
class Links:
    """Where a page's links go."""

    finance: str
    findings: str
    team: Callable[[str], str]  # team -> its dashboard
    csv: Callable[[str], str] | None  # chart or table id -> its CSV download; None: embed the CSV in the page
    plotly_src: str | None  # None: embed plotly.js (give its text in `plotly_js`)
    form_action: str | None  # None: no filter form (static files)
    logout: str | None = None
    plotly_js: str = ""


def render_page(view: View, links: Links, *, teams: Sequence[str], who: str) -> str:
    """The whole page; `teams` are the teams the caller may pick, `who` says whose key this is."""
    figures = {c.spec.chart_id: _figure_json(c) for c in view.charts if c.figure is not None}
    payload: dict[str, Any] = {"figures": figures, "csv": {}}
    if links.csv is None:
        payload["csv"] = {c.spec.chart_id: csv_text(c.frame) for c in view.charts}
        payload["csv"] |= {t.spec.table_id: csv_text(t.frame) for t in view.tables}
    data = json.dumps(payload, separators=(",", ":"), default=str).replace("<", "\\u003c")
    inline = links.plotly_js.replace("</script", "<\\/script")
    script = f'<script src="{_e(links.plotly_src)}"></script>' if links.plotly_src else f"<script>{inline}</script>"
    body = "\n".join(
        [
            _header(view, links, teams, who),
            "<main>",
            f"<h1>{_e(view.title)}</h1>",
            _filters(view, links, teams),
            _kpis(view.kpis),
            '<div class="grid">',
            *(_chart(c, links, view) for c in view.charts),
            *(_table(t, links, view) for t in view.tables),
            "</div>",
            f"<footer>{_as_of(view.context.filter)} Money is exact: hover a "
            "point for its exact dollars; CSV downloads hold every digit. Dates are UTC days; end is exclusive."
            "</footer>",
            "</main>",
        ]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>finops · {_e(view.title)}</title>'
        f"<style>{STYLE}</style>{script}</head>\n<body>\n{body}\n"
        f'<script type="application/json" id="finops-data">{data}</script>\n<script>{SCRIPT}</script>\n'
        "</body></html>\n"
    )


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _figure_json(chart: Chart) -> Any:
    """The figure as plain data, without plotly.py's default template (plotly.js has its own defaults, and
    the template would add about 8 KB to every chart)."""
    assert chart.figure is not None
    figure = chart.figure.to_plotly_json()
    figure["layout"].pop("template", None)
    return figure


def _header(view: View, links: Links, teams: Sequence[str], who: str) -> str:
    current = view.context.team
    options = "".join(
        f'<option value="{_e(links.team(t))}"{" selected" if t == current else ""}>{_e(t)}</option>'
        for t in teams
        if not t.startswith("__")
    )
    team_nav = (
        f'<label>Team <select id="team-view-pick" aria-label="team dashboard">'
        f'<option value="">choose…</option>{options}</select></label>'
        if options
        else ""
    )
    logout = f' · <a href="{_e(links.logout)}">log out</a>' if links.logout else ""

    def nav(name: str, href: str, text: str) -> str:
        return f'<a href="{_e(href)}"{" class=current" if view.name == name else ""}>{text}</a>'

    return (
        '<header><span class="brand">finops</span><nav>'
        f"{nav('finance', links.finance, 'Finance overview')}{nav('findings', links.findings, 'Findings')}"
        f'</nav>{team_nav}<span class="who">{_e(who)}{logout}</span></header>'
    )


def _filters(view: View, links: Links, teams: Sequence[str]) -> str:
    f = view.context.filter
    chosen = set(f.teams or ())
    if links.form_action is None:
        shown = ", ".join(f.teams) if f.teams is not None else "every team"
        if view.context.team is not None:
            shown = view.context.team
        return (
            f'<div class="filters static">Exported for {f.start} to {f.end} (end exclusive, UTC), {_e(shown)}, '
            f"{'daily' if f.grain == 'day' else 'monthly'}. Re-export with "
            "<code>finops dashboard --start --end --team</code> to change it.</div>"
        )
    team_field = ""
    if view.context.team is None and len(teams) > 1:
        options = "".join(f"<option{' selected' if t in chosen else ''}>{_e(t)}</option>" for t in teams)
        team_field = f'<label>Teams (none: all)<select name="team" multiple>{options}</select></label>'
    grains = "".join(f"<option{' selected' if g == f.grain else ''}>{g}</option>" for g in ("day", "month"))
    return (
        f'<form class="filters" method="get" action="{_e(links.form_action)}">'
        f'<label>Start (UTC)<input type="date" name="start" value="{f.start}"></label>'
        f'<label>End (exclusive)<input type="date" name="end" value="{f.end}"></label>'
        f'{team_field}<label>Grain<select name="grain">{grains}</select></label>'
        '<button type="submit">Apply</button></form>'
    )


def _kpis(kpis: list[Kpi]) -> str:
    cards = "".join(
        f'<div class="kpi"><div class="label">{_e(k.label)}</div><div class="value" title="exact ${_e(k.value)}">'
        f'{_dollars(k.value)}</div><div class="detail">{_e(k.detail)}</div></div>'
        for k in kpis
    )
    return f'<div class="kpis">{cards}</div>' if cards else ""


def _dollars(value: Decimal | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _download(item: str, links: Links, view: View) -> str:
    filename = f"{view.name}{'-' + view.context.team if view.context.team else ''}-{item}.csv"
    if links.csv is None:
        return f'<button type="button" data-csv="{_e(item)}" data-filename="{_e(filename)}">Download CSV</button>'
    return f'<a href="{_e(links.csv(item))}" download="{_e(filename)}">Download CSV</a>'


def _chart(chart: Chart, links: Links, view: View) -> str:
    spec = chart.spec
    wide = " wide" if spec.chart_id in ("spend_by_team", "spend_by_feature", "burn_down", "findings_timeline") else ""
    inner = (
        f'<div class="plot" id="plot-{_e(spec.chart_id)}" data-chart="{_e(spec.chart_id)}"></div>'
        if chart.figure is not None
        else '<div class="empty">No data for this filter.</div>'
    )
    return (
        f'<section class="card{wide}" id="chart-{_e(spec.chart_id)}"><h2>{_e(spec.title)}</h2>'
        f'<p class="note">{_e(spec.note)}</p>{inner}<div class="tools">{_download(spec.chart_id, links, view)}</div>'
        "</section>"
    )


def _table(table: Table, links: Links, view: View) -> str:
    spec = table.spec
    frame = table.frame.head(MAX_TABLE_ROWS_SHOWN)
    cells = display_frame(frame, spec.columns)
    money = {name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Decimal)}
    head = "".join(f"<th>{_e(h)}</th>" for _, h in spec.columns)
    has_evidence = "evidence_ids" in frame.columns
    if has_evidence:
        head += "<th>trace / request ids</th>"
    rows = []
    for i, row in enumerate(cells.iter_rows()):  # the rows shown, at most MAX_TABLE_ROWS_SHOWN
        tds = "".join(
            f'<td class="num">{_e(v)}</td>' if name in money else f"<td>{_e(v)}</td>"
            for (name, _), v in zip(spec.columns, row, strict=True)
        )
        row_id = ""
        if has_evidence:
            tds += f"<td>{_evidence(frame.row(i, named=True))}</td>"
            row_id = f' id="finding-{_e(frame["finding_id"][i])}"'
        rows.append(f"<tr{row_id}>{tds}</tr>")
    more = (
        f'<p class="note">Showing {MAX_TABLE_ROWS_SHOWN} of {table.frame.height}; the CSV has them all.</p>'
        if table.frame.height > MAX_TABLE_ROWS_SHOWN
        else ""
    )
    body = (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<div class="empty">Nothing in this filter.</div>'
    )
    return (
        f'<section class="card wide" id="table-{_e(spec.table_id)}"><h2>{_e(spec.title)}</h2>'
        f'<p class="note">{_e(spec.note)}</p>{body}{more}'
        f'<div class="tools">{_download(spec.table_id, links, view)}</div></section>'
    )


def _evidence(row: dict[str, Any]) -> str:
    ids = row.get("evidence_ids") or []
    count = row.get("evidence_count") or len(ids)
    first = [f"trace {row['trace_id']}"] if row.get("trace_id") else []
    first += [f"request {row['request_id']}"] if row.get("request_id") else []
    shown = " ".join(_e(i) for i in ids[:MAX_EVIDENCE_IDS_SHOWN])
    extra = f" … and {count - MAX_EVIDENCE_IDS_SHOWN} more (CSV)" if count > MAX_EVIDENCE_IDS_SHOWN else ""
    summary = f"{_e('; '.join(first)) + '; ' if first else ''}{count} ids"
    return f"<details><summary>{summary}</summary><code>{shown}{extra}</code></details>"


def _as_of(view_filter: ViewFilter) -> str:
    if not view_filter.ran:
        return "No run yet: <code>finops run</code> (or the scheduler of <code>finops serve</code>) prices the usage."
    return f"As of the last run: {view_filter.as_of:%Y-%m-%d %H:%M} UTC."
