"""Payloads stay small on large data: the finance overview of 90 days and 50 teams is under 2 MB and
Chromium draws it in under a second (the daily rollup is written directly, 54,000 rows: the pipeline is not
under test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from finops.api import create_app
from finops.store.db import connect
from finops.store.keys import create_key
from tests.dashboards.conftest import AS_OF, Live, Tab, dashboard_settings, serve

RANGE = {"start": "2026-08-18", "end": "2026-11-16"}  # 90 days
TEAMS, FEATURES, MODELS = 50, 4, 3

_SPEND = """
INSERT INTO spend_daily BY NAME
SELECT CAST(d.day AS DATE) AS charge_day, 'team-' || lpad(t.i::VARCHAR, 2, '0') AS team,
       'feature-' || f.i AS feature, 'openai' AS provider, 'model-' || m.i AS model, 'tokens' AS kind,
       'usage' AS line_type,
       CAST((t.i + 1) * (f.i + 1) * (m.i + 1) * (1 + (hash(d.day, t.i, f.i, m.i) % 1000) / 1000.0) / 7
            AS DECIMAL(38, 12)) AS cost_usd,
       NULL AS list_cost_usd, 100 AS requests, 100000 AS input_tokens, 0 AS cached_input_tokens,
       0 AS cache_write_tokens, 20000 AS output_tokens, 0 AS reasoning_tokens, 0 AS unpriced_requests,
       NULL AS gpu_seconds
FROM range(DATE '2026-08-18', DATE '2026-11-16', INTERVAL 1 DAY) d(day), range($teams) t(i), range($features) f(i),
     range($models) m(i)
"""


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    settings = dashboard_settings(tmp_path_factory.mktemp("dashboards-large"))
    with connect(settings) as db:
        db.execute("INSERT INTO runs (run_id, as_of, started_at, finished_at) VALUES (1, $t, $t, $t)", {"t": AS_OF})
        db.execute(_SPEND, {"teams": TEAMS, "features": FEATURES, "models": MODELS})
        key = create_key(db, "finance").token
    return settings.db, key


@pytest.fixture(scope="module")
def large_live(large: tuple[Path, str]) -> Iterator[Live]:
    yield from serve(dashboard_settings(large[0].parent))


def test_the_finance_overview_of_90_days_and_50_teams_is_under_2_mb(large: tuple[Path, str]) -> None:
    with TestClient(create_app(dashboard_settings(large[0].parent))) as client:
        response = client.get(
            "/dashboards/finance", params=RANGE, headers={"Authorization": f"Bearer {large[1]}", "Accept-Encoding": ""}
        )
    assert response.status_code == 200
    size = len(response.content)
    print(f"finance overview, 90 days x 50 teams: {size:,} bytes of HTML")
    assert size < 2_000_000
    # every chart but the forecasts and the bills: the pipeline did not run (the forecasts chart is 50 points)
    assert response.text.count('class="plot"') == 5


def test_chromium_draws_the_large_finance_overview_in_under_a_second(
    tab: Tab, large_live: Live, large: tuple[Path, str]
) -> None:
    tab.open(f"{large_live.url}/dashboards/login?key={large[1]}&next=/dashboards/finance")
    tab.wait_ready()  # plotly.js is now in the browser's cache, as for any later page
    timings: list[dict[str, Any]] = []
    for _ in range(3):
        tab.open(f"{large_live.url}/dashboards/finance?start={RANGE['start']}&end={RANGE['end']}")
        tab.wait_ready()
        timings.append(tab.page.evaluate("({draw: window.finopsDrawMs, ready: window.finopsRenderMs})"))
    best = min(timings, key=lambda t: t["draw"])
    print(f"Chromium: drawn in {best['draw']:.0f} ms, ready {best['ready']:.0f} ms after the request")
    assert tab.problems == []
    assert best["draw"] < 1000
