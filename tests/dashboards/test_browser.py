"""The dashboards in a real headless Chromium against a real uvicorn server on loopback.

Each page loads with no console error, every chart is drawn with data, a screenshot is kept in
`artifacts/dashboards/`; the totals the browser holds equal the SQL totals for the same filter; a team's
key cannot open another team's dashboard. (The README's picture is the full demo's: `tests/test_demo.py`.)
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

from finops.store.reports import FindingsQuery, SpendQuery, findings_frame, spend_totals
from tests.dashboards.conftest import ARTIFACTS, Demo, Live, Tab

RANGE = {"start": "2026-10-01", "end": "2026-11-16"}

# every plot on the page: its id, how many traces, how many points, and the exact amounts it carries
_PLOTS = """() => Array.from(document.querySelectorAll('.plot')).map(el => ({
    id: el.dataset.chart,
    traces: (el.data || []).length,
    points: (el.data || []).reduce((n, t) => n + ((t.x || t.y || []).length), 0),
    drawn: el.querySelectorAll('.main-svg').length,
    exact: (el.data || []).flatMap(t => (t.customdata || []).map(c => Array.isArray(c) ? c[0] : c)),
}))"""


def login(tab: Tab, live: Live, key: str, path: str) -> None:
    response = tab.open(f"{live.url}/dashboards/login?{urlencode({'key': key, 'next': path})}")
    assert response is not None and response.status == 200, path
    tab.wait_ready()


@pytest.mark.parametrize("view", ["finance", "findings", "team"])
def test_each_page_loads_without_console_errors_and_every_chart_has_data(
    tab: Tab, live: Live, demo: Demo, view: str
) -> None:
    path = f"/dashboards/teams/{demo.findings_team}" if view == "team" else f"/dashboards/{view}"
    login(tab, live, demo.summary.admin_key, f"{path}?{urlencode(RANGE)}")
    plots = tab.page.evaluate(_PLOTS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / f"{view}.png"), full_page=True)
    assert tab.problems == []
    assert len(plots) >= (7 if view == "finance" else 2)
    assert [p["id"] for p in plots if not (p["traces"] and p["points"] and p["drawn"])] == []
    assert tab.page.locator("section[id^=chart-] .empty").count() == 0


def test_a_one_day_range_draws_a_bar_a_day_wide_not_an_empty_two_millisecond_axis(
    tab: Tab, live: Live, demo: Demo
) -> None:
    # hunt E 3: a stacked area of one point draws nothing
    login(tab, live, demo.summary.admin_key, "/dashboards/finance?start=2026-11-10&end=2026-11-11")
    drawn = tab.page.evaluate(
        """() => ['spend_by_team', 'spend_by_feature', 'token_vs_gpu'].map(id => {
            const el = document.getElementById('plot-' + id);
            const [lo, hi] = el._fullLayout.xaxis.range.map(v => new Date(v).getTime());
            return [id, hi - lo >= 0.8 * 86400000, el.querySelectorAll('.bars .point path').length > 0];
        })"""
    )
    assert drawn == [[i, True, True] for i in ("spend_by_team", "spend_by_feature", "token_vs_gpu")]
    assert tab.problems == []


def test_chart_totals_in_the_browser_equal_the_sql_totals(tab: Tab, live: Live, demo: Demo) -> None:
    teams = [demo.team, demo.other_team]
    query_text = urlencode({**RANGE, "team": teams}, doseq=True)
    login(tab, live, demo.summary.admin_key, f"/dashboards/finance?{query_text}")
    shown = {p["id"]: sum((Decimal(x or 0) for x in p["exact"]), Decimal(0)) for p in tab.page.evaluate(_PLOTS)}
    tab.open(f"{live.url}/dashboards/findings?{urlencode(RANGE)}")
    tab.wait_ready()
    found = {p["id"]: sum((Decimal(x or 0) for x in p["exact"]), Decimal(0)) for p in tab.page.evaluate(_PLOTS)}
    with live.database() as db:
        query = SpendQuery(start=date.fromisoformat(RANGE["start"]), end=date.fromisoformat(RANGE["end"]), teams=teams)
        total = spend_totals(db, query, time_limit_ms=10_000)["cost_usd"]
        tokens = spend_totals(db, replace(query, kinds=["tokens"]), time_limit_ms=10_000)["cost_usd"]
        excess = findings_frame(db, FindingsQuery(query.start, query.end), time_limit_ms=10_000)["excess_cost_usd"]
    assert shown["spend_by_team"] == shown["spend_by_feature"] == shown["token_vs_gpu"] == total
    assert shown["top_models"] == tokens
    assert found["findings_timeline"] == found["findings_by_kind"] == excess.sum()
    assert tab.problems == []


def test_a_team_key_cannot_load_another_teams_dashboard_in_the_browser(tab: Tab, live: Live, demo: Demo) -> None:
    login(tab, live, demo.summary.owner_key, f"/dashboards/teams/{demo.team}")
    assert tab.page.title() == f"finops · Team {demo.team}"
    response = tab.open(f"{live.url}/dashboards/teams/{demo.other_team}")
    assert response is not None and response.status == 404
    assert "No team dashboard with that name." in tab.page.content()
    filtered = tab.open(f"{live.url}/dashboards/finance?team={demo.other_team}")
    assert filtered is not None and filtered.status == 403


def test_clicking_a_finding_opens_its_ids(tab: Tab, live: Live, demo: Demo) -> None:
    login(tab, live, demo.summary.admin_key, f"/dashboards/findings?{urlencode(RANGE)}")
    point = tab.page.locator("#plot-findings_timeline .scatterlayer .point").first
    point.click(force=True)
    picked = tab.page.locator("tr.picked")
    picked.wait_for(timeout=5_000)
    assert picked.locator("details").get_attribute("open") is not None
    assert tab.problems == []


def test_the_filter_form_narrows_every_chart_to_the_teams_and_days_chosen(tab: Tab, live: Live, demo: Demo) -> None:
    login(tab, live, demo.summary.admin_key, "/dashboards/finance")
    tab.page.fill("input[name=start]", "2026-11-01")
    tab.page.fill("input[name=end]", "2026-11-08")
    tab.page.select_option("select[name=team]", [demo.team])
    with tab.page.expect_navigation():
        tab.page.click("form.filters button[type=submit]")
    tab.wait_ready()
    assert tab.page.url.endswith(f"/dashboards/finance?start=2026-11-01&end=2026-11-08&team={demo.team}&grain=day")
    teams = tab.page.evaluate("document.getElementById('plot-spend_by_team').data.map(t => t.name)")
    days = tab.page.evaluate("[...new Set(document.getElementById('plot-spend_by_team').data.flatMap(t => t.x))]")
    assert teams == [demo.team]
    assert sorted(days) == [f"2026-11-0{d}" for d in range(1, 8)]
    assert tab.problems == []


def test_download_csv_in_the_browser_is_the_data_behind_the_chart(tab: Tab, live: Live, demo: Demo) -> None:
    login(tab, live, demo.summary.admin_key, f"/dashboards/finance?{urlencode(RANGE)}")
    with tab.page.expect_download() as started:
        tab.page.click("#chart-top_models .tools a")
    download = started.value
    assert download.suggested_filename == "finance-top_models.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    shown = tab.page.evaluate(_PLOTS)
    exact = next(p["exact"] for p in shown if p["id"] == "top_models")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(Decimal(r["cost_usd"] or 0) for r in rows) == sum(Decimal(x or 0) for x in exact)
    assert tab.problems == []


def test_the_static_export_opens_from_a_file_with_every_chart_and_its_csv(tab: Tab, demo: Demo, tmp_path: Path) -> None:
    from finops.cli import main

    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo.path, copy)
    main(["--db", str(copy), "dashboard", "--out", str(tmp_path / "site"), "--team", demo.findings_team])
    for name in ("index.html", "findings.html", f"team-{demo.findings_team}.html"):  # three pages
        tab.open((tmp_path / "site" / name).as_uri())
        tab.wait_ready()
        plots = tab.page.evaluate(_PLOTS)
        assert plots and [p["id"] for p in plots if not (p["traces"] and p["points"] and p["drawn"])] == [], name
    tab.open((tmp_path / "site" / "index.html").as_uri())
    tab.wait_ready()
    with tab.page.expect_download() as started:
        tab.page.click("#chart-spend_by_team .tools button")
    rows = list(csv.DictReader(io.StringIO(Path(started.value.path()).read_text(encoding="utf-8"))))
    assert started.value.suggested_filename == "finance-spend_by_team.csv"
    assert {r["team"] for r in rows} == {demo.findings_team}
    assert tab.problems == []
