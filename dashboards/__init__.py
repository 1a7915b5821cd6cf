"""The finance dashboards: plotly figures of the named report queries, as HTML pages or static files.

    filters.py   the date range, teams and grain every view is filtered by
    data.py      Context -> the frame behind each chart (through `finops.store.reports` only)
    figures_*.py frame -> plotly figure, pure functions (figures_spend, figures_team, figures_findings)
    style.py     colours, layout and the exact-dollar hover every figure shares
    views.py     the three views (finance overview, team, findings): which charts, tables and numbers
    page.py      a view -> one HTML page (plotly.js from a static route, or embedded for static files)
    export.py    exact CSV of a chart's frame; `write_static` for `finops dashboard --out DIR`
    assets.py    the bundled plotly.js, gzipped once

Served by `finops.api.routes.dashboards` under `/dashboards/...` with the API's roles and scopes.
"""

from __future__ import annotations

from finops.dashboards.filters import ViewFilter, parse_filter
from finops.dashboards.views import VIEWS, View, build_view

__all__ = ["VIEWS", "View", "ViewFilter", "build_view", "parse_filter"]
