"""`/dashboards/...` over the demo data: role rules, the browser login, bad input, exact CSVs."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from finops.dashboards.assets import plotly_js_name

from finops.api import create_app
from finops.store.reports import FindingsQuery, SpendQuery, findings_frame, spend_totals
from tests.api.conftest import api_settings, make_keys
from tests.dashboards.conftest import Demo, copy_of

RANGE = {"start": "2026-10-01", "end": "2026-11-16"}


@pytest.fixture(scope="module")
def client(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = copy_of(demo, tmp_path_factory.mktemp("dashboards-routes"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def figures(page: str) -> dict[str, Any]:
    block = re.search(r'<script type="application/json" id="finops-data">(.*?)</script>', page, re.S)
    assert block is not None
    payload: dict[str, Any] = json.loads(block.group(1))
    return payload["figures"]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("path", ["/dashboards/finance", "/dashboards/findings", "/dashboards/teams/{team}"])
def test_every_chart_of_every_view_has_data_for_an_admin(client: TestClient, demo: Demo, path: str) -> None:
    # the team of the costliest finding: the owner's team need not have a finding in the demo data
    response = client.get(path.format(team=demo.findings_team), headers=bearer(demo.summary.admin_key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "No data for this filter" not in response.text
    for chart_id, figure in figures(response.text).items():
        assert figure["data"], chart_id


@pytest.mark.parametrize("path", ["/dashboards/finance", "/dashboards/findings", "/dashboards/teams/{team}"])
def test_every_figure_served_is_one_plotly_accepts(client: TestClient, demo: Demo, path: str) -> None:
    """The figures are built as plain dicts without plotly.py's checks: here plotly checks every property."""
    response = client.get(path.format(team=demo.findings_team), params=RANGE, headers=bearer(demo.summary.admin_key))
    assert response.status_code == 200, response.text
    for chart_id, figure in figures(response.text).items():
        try:
            go.Figure(figure)
        except ValueError as error:
            pytest.fail(f"{chart_id}: {error}")


def test_named_buckets_are_series_of_their_own_in_the_feature_chart(client: TestClient, demo: Demo) -> None:
    response = client.get("/dashboards/finance", params=RANGE, headers=bearer(demo.summary.admin_key))
    names = [trace["name"] for trace in figures(response.text)["spend_by_feature"]["data"]]
    assert "__idle__" in names and not any(n.startswith("__idle__ /") for n in names)
    assert names.index("__idle__") > max(i for i, n in enumerate(names) if not n.startswith(("__", "other ")))


def test_a_team_key_cannot_load_another_teams_dashboard(client: TestClient, demo: Demo) -> None:
    owner = bearer(demo.summary.owner_key)
    other = client.get(f"/dashboards/teams/{demo.other_team}", headers=owner)
    unknown = client.get("/dashboards/teams/no-such-team", headers=owner)
    assert other.status_code == unknown.status_code == 404
    assert other.json() == unknown.json() == {"detail": "No team dashboard with that name.", "code": "not_found"}
    assert client.get(f"/dashboards/teams/{demo.other_team}/features.csv", headers=owner).status_code == 404
    assert client.get(f"/dashboards/teams/{demo.team}", headers=owner).status_code == 200


def test_a_team_filter_naming_another_team_is_out_of_scope(client: TestClient, demo: Demo) -> None:
    owner = bearer(demo.summary.owner_key)
    response = client.get("/dashboards/finance", params={"team": demo.other_team}, headers=owner)
    assert response.status_code == 403
    assert response.json()["code"] == "out_of_scope"
    assert re.search(rf"\b{re.escape(demo.other_team)}\b", response.json()["detail"]) is None


def test_an_owner_sees_only_its_teams_on_the_finance_overview(client: TestClient, demo: Demo) -> None:
    response = client.get("/dashboards/finance", params=RANGE, headers=bearer(demo.summary.owner_key))
    assert response.status_code == 200
    shown = figures(response.text)
    assert "reconciliation" not in shown  # company-wide: only for keys that see every team
    teams = {trace["name"] for trace in shown["spend_by_team"]["data"]}
    assert teams == {demo.team}
    assert re.search(rf"\b{re.escape(demo.other_team)}\b", json.dumps(shown)) is None


def test_an_owner_sees_only_its_teams_findings(client: TestClient, demo: Demo) -> None:
    owner, admin = bearer(demo.summary.owner_key), bearer(demo.summary.admin_key)
    every = csv_rows(client.get("/dashboards/findings/findings.csv", params=RANGE, headers=admin).text)
    mine = csv_rows(client.get("/dashboards/findings/findings.csv", params=RANGE, headers=owner).text)
    assert {r["team"] for r in every} - {demo.team}  # other teams have findings the owner must not see
    assert mine == [r for r in every if r["team"] == demo.team]
    page = client.get("/dashboards/findings", params=RANGE, headers=owner)
    assert all(r["finding_id"] not in page.text for r in every if r["team"] != demo.team)


def test_a_browser_without_a_key_is_sent_to_the_login_form(client: TestClient) -> None:
    browser = client.get("/dashboards/finance?grain=month", headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/dashboards/login?next=%2Fdashboards%2Ffinance%3Fgrain%3Dmonth"
    script = client.get("/dashboards/finance")
    assert script.status_code == 401 and script.json()["code"] == "unauthenticated"
    form = client.get("/dashboards/login")
    assert form.status_code == 200 and 'name="key"' in form.text


def test_login_keeps_the_key_in_an_httponly_cookie_for_the_dashboards(client: TestClient, demo: Demo) -> None:
    client.cookies.clear()
    response = client.get(
        "/dashboards/login", params={"key": demo.summary.owner_key, "next": f"/dashboards/teams/{demo.team}"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303 and response.headers["location"] == f"/dashboards/teams/{demo.team}"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/dashboards" in cookie and "SameSite=lax" in cookie
    page = client.get(f"/dashboards/teams/{demo.team}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "budget burn-down" in page.text
    assert client.get("/v1/spend").status_code == 401  # the cookie is for the dashboards only
    client.get("/dashboards/logout")
    assert client.get("/dashboards/finance").status_code == 401
    client.cookies.clear()


def test_login_refuses_a_bad_key_and_a_foreign_next(client: TestClient, demo: Demo) -> None:
    bad = client.get("/dashboards/login", params={"key": "fo_0123456789ab_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text and "set-cookie" not in bad.headers
    posted = client.post(
        "/dashboards/login",
        data={"key": demo.summary.admin_key, "next": "//evil.example/dashboards"},
        follow_redirects=False,
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/dashboards"
    wrong_type = client.post("/dashboards/login", json={"key": demo.summary.admin_key})
    assert wrong_type.status_code == 415
    client.cookies.clear()


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"start": "2026-02-30"}, "start '2026-02-30' is not a date; expected YYYY-MM-DD (UTC)."),
        ({"start": "2026-11-01", "end": "2026-10-01"}, "The date range 2026-11-01 to 2026-10-01 is empty; end is "
         "exclusive and must be after start."),
        ({"team": "no-such-team"}, "Team 'no-such-team' has no spend in the database; pick teams from the "
         "dashboard's list."),
        ({"grain": "week"}, "grain must be one of: day, month."),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_with_one_sentence(
    client: TestClient, demo: Demo, params: dict[str, str], detail: str
) -> None:
    response = client.get("/dashboards/finance", params=params, headers=bearer(demo.summary.admin_key))
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert response.json()["code"] == "invalid_input"


def test_an_unknown_chart_lists_the_valid_ones(client: TestClient, demo: Demo) -> None:
    response = client.get("/dashboards/finance/nope.csv", headers=bearer(demo.summary.admin_key))
    assert response.status_code == 404
    assert response.json()["detail"].endswith(
        "Valid names are: buckets, forecast_vs_budget, reconciliation, spend_by_feature, spend_by_team, "
        "token_vs_gpu, top_models."
    )


def test_csv_totals_equal_the_sql_totals_for_the_same_filter(client: TestClient, demo: Demo) -> None:
    admin = bearer(demo.summary.admin_key)
    teams = [demo.team, demo.other_team]
    params = {**RANGE, "team": teams}
    by_team = client.get("/dashboards/finance/spend_by_team.csv", params=params, headers=admin)
    models = client.get("/dashboards/finance/top_models.csv", params=params, headers=admin)
    found = client.get("/dashboards/findings/findings.csv", params=RANGE, headers=admin)
    assert by_team.status_code == models.status_code == found.status_code == 200
    assert by_team.headers["content-disposition"] == 'attachment; filename="finance-spend_by_team.csv"'
    with client.app.state.finops.database() as db:  # type: ignore[attr-defined]
        query = SpendQuery(start=date.fromisoformat(RANGE["start"]), end=date.fromisoformat(RANGE["end"]), teams=teams)
        total = spend_totals(db, query, time_limit_ms=10_000)["cost_usd"]
        tokens = spend_totals(db, replace(query, kinds=["tokens"]), time_limit_ms=10_000)
        findings = findings_frame(db, FindingsQuery(start=query.start, end=query.end), time_limit_ms=10_000)
    assert sum(Decimal(r["cost_usd"] or 0) for r in csv_rows(by_team.text)) == total
    assert sum(Decimal(r["cost_usd"] or 0) for r in csv_rows(models.text)) == tokens["cost_usd"]
    assert sum(Decimal(r["excess_cost_usd"]) for r in csv_rows(found.text)) == findings["excess_cost_usd"].sum()
    assert {r["finding_id"] for r in csv_rows(found.text)} == set(findings["finding_id"])


def test_plotly_js_is_served_gzipped_and_cached_for_good(client: TestClient) -> None:
    response = client.get(f"/dashboards/static/{plotly_js_name()}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.text.startswith("/**") and "plotly.js" in response.text[:200]
    assert client.get("/dashboards/static/plotly-0.min.js").status_code == 404


def test_an_owner_key_opens_its_team_dashboard(client: TestClient, demo: Demo) -> None:
    response = client.get("/dashboards", headers=bearer(demo.summary.owner_key), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/dashboards/teams/{demo.team}"


def test_static_export_writes_one_file_per_view(demo: Demo, tmp_path: Path) -> None:
    from finops.cli import main

    settings_db = tmp_path / "copy.duckdb"
    settings_db.write_bytes(demo.path.read_bytes())
    main(["--db", str(settings_db), "dashboard", "--out", str(tmp_path / "site"), "--team", demo.team])
    files = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert files == ["findings.html", "index.html", f"team-{demo.team}.html"]
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Plotly.newPlot" in page and "/dashboards/static/" not in page  # plotly.js is embedded
    assert 'data-csv="spend_by_team"' in page  # CSV from the embedded data


def test_static_export_names_an_unknown_team_in_one_sentence(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finops.cli import main

    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(demo.path.read_bytes())
    with pytest.raises(SystemExit) as done:
        main(["--db", str(copy), "dashboard", "--out", str(tmp_path / "site"), "--team", "no-such-team"])
    assert done.value.code == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: Team 'no-such-team' has no spend in {copy}; teams with spend: ")
    assert message.count("\n") == 0 and not (tmp_path / "site").exists()


def test_a_database_that_never_ran_says_so_instead_of_an_as_of_time(tmp_path: Path) -> None:
    # hunt E 8: the footer read "As of the last run: <now>" with no run at all
    settings = api_settings(tmp_path)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as fresh:
        page = fresh.get("/dashboards/finance", headers={"Authorization": f"Bearer {keys['admin']}"})

    assert page.status_code == 200
    assert "No run yet: <code>finops run</code>" in page.text and "As of the last run" not in page.text
