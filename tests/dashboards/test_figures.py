"""Pure pieces: frame in, figure (or text) out; exact money all the way."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest
from finops.dashboards.export import csv_text
from finops.dashboards.figures_findings import findings_by_kind_figure
from finops.dashboards.figures_spend import buckets_figure, stacked_spend_figure, top_models_figure
from finops.dashboards.figures_team import burn_down_figure
from finops.dashboards.filters import default_range, parse_filter
from finops.dashboards.style import exact_text, fold_series
from polars.testing import assert_frame_equal

from finops.errors import InputError

MONEY = pl.Decimal(38, 12)
AS_OF = datetime(2026, 11, 16, tzinfo=UTC)


def exact_total(fig: go.Figure, index: int | None = None) -> Decimal:
    """The sum of the exact amounts a figure carries (customdata, or its first element per point)."""
    total = Decimal(0)
    for trace in fig.to_plotly_json()["data"]:
        for item in trace.get("customdata") or []:
            value = item[0] if isinstance(item, list | tuple) else item
            total += Decimal(value or 0)
    return total


def spend(teams: int, days: int) -> pl.DataFrame:
    rows = [
        {"period": date(2026, 10, d + 1), "team": f"team-{t:02d}", "cost_usd": Decimal(f"{t + 1}.{d:02d}0000000001")}
        for t in range(teams)
        for d in range(days)
    ]
    rows.append({"period": date(2026, 10, 1), "team": "__idle__", "cost_usd": Decimal("0.000000000001")})
    return pl.DataFrame(rows, schema={"period": pl.Date, "team": pl.String, "cost_usd": MONEY})


@pytest.mark.parametrize("grain", ["day", "month"])
def test_stacked_spend_figure_carries_every_exact_dollar(grain: Any) -> None:
    frame = spend(teams=20, days=3)
    fig = stacked_spend_figure(frame, key="team", title="t", grain=grain, keep=5, other="other teams")
    names = [t["name"] for t in fig.to_plotly_json()["data"]]
    assert exact_total(fig) == frame["cost_usd"].sum()
    assert names[:5] == ["team-19", "team-18", "team-17", "team-16", "team-15"]
    assert sorted(names[5:]) == ["__idle__", "other teams (15)"]  # the bucket is kept, however small
    go.Figure(fig.to_dict())  # every property is one plotly knows


def test_fold_series_sums_the_rest_exactly() -> None:
    frame = pl.DataFrame(
        {"team": ["a", "b", "c", "__idle__"], "cost_usd": ["3", "0.1", "0.2", "0.05"]},
        schema_overrides={"cost_usd": MONEY},
    )
    result = fold_series(frame, "team", "cost_usd", 1, "other").sort("team")
    expected = pl.DataFrame(
        {"team": ["__idle__", "a", "other (2)"], "cost_usd": ["0.05", "3", "0.3"]},
        schema_overrides={"cost_usd": MONEY},
    )
    assert_frame_equal(result, expected)


def test_exact_text_keeps_every_digit_and_drops_trailing_zeros() -> None:
    values = pl.Series(["1234.567800000000", "5", None, "-0.1", "0.000000000001"], dtype=MONEY)
    assert exact_text(values) == ["1234.5678", "5.00", "", "-0.10", "0.000000000001"]


def test_top_models_figure_folds_the_tail_and_keeps_the_total() -> None:
    frame = pl.DataFrame(
        {
            "provider": ["openai"] * 4,
            "model": ["a", "b", "c", "d"],
            "cost_usd": ["4", "3", "2", "1.000000000001"],
            "requests": [4, 3, 2, 1],
        },
        schema_overrides={"cost_usd": MONEY},
    )
    fig = top_models_figure(frame, title="t", keep=2)
    assert fig.to_plotly_json()["data"][0]["y"] == ["other models (2)", "openai / b", "openai / a"]
    assert exact_total(fig) == Decimal("10.000000000001")


def test_buckets_figure_shows_unpriced_requests_not_dollars() -> None:
    frame = pl.DataFrame(
        {
            "bucket": ["__unattributed__", "__unpriced__", "__idle__", "__unobserved__"],
            "cost_usd": ["1.5", None, "20", "0.25"],
            "requests": [3, 0, 0, 0],
            "unpriced_requests": [0, 7, 0, 0],
        },
        schema_overrides={"cost_usd": MONEY},
    )
    trace = buckets_figure(frame, title="t").to_plotly_json()["data"][0]
    assert trace["text"] == ["$1.50", "no cost", "$20.00", "$0.25"]
    assert trace["customdata"][1] == ("0", "7 requests without a price (cost unknown)")


def test_burn_down_figure_draws_the_budget_cone_and_breach() -> None:
    money = ["10", "20", None, None]
    frame = pl.DataFrame(
        {
            "charge_day": [date(2026, 11, d) for d in (1, 2, 3, 4)],
            "actual_usd": ["10", "10", None, None],
            "cumulative_usd": money,
            "forecast_cumulative_usd": [None, None, "35", "50"],
            **{c: [None, None, "30", "40"] for c in ("lo80_usd", "lo95_usd")},
            **{c: [None, None, "40", "60"] for c in ("hi80_usd", "hi95_usd")},
            "budget_usd": ["45"] * 4,
            "breach_date": [date(2026, 11, 4)] * 4,
        },
        schema_overrides={c: MONEY for c in ("actual_usd", "cumulative_usd", "forecast_cumulative_usd", "budget_usd")}
        | {c: MONEY for c in ("lo80_usd", "lo95_usd", "hi80_usd", "hi95_usd")},
    )
    fig = burn_down_figure(frame, title="t").to_plotly_json()
    names = [t.get("name") for t in fig["data"]]
    assert {"spent (cumulative)", "forecast (cumulative)", "monthly budget", "forecast 80 % interval"} <= set(names)
    forecast = next(t for t in fig["data"] if t.get("name") == "forecast (cumulative)")
    assert forecast["x"][0] == "2026-11-02"  # the forecast starts at the last actual point
    assert fig["layout"]["annotations"][0]["text"] == "projected breach 2026-11-04"
    go.Figure(fig)


def test_findings_by_kind_figure_sums_excess_by_kind() -> None:
    frame = pl.DataFrame(
        {
            "kind": ["retry_storm", "retry_storm", "cost_spike"],
            "severity": ["low", "high", "critical"],
            "excess_cost_usd": ["0.5", "200", "1500.000000000001"],
        },
        schema_overrides={"excess_cost_usd": MONEY},
    )
    fig = findings_by_kind_figure(frame, title="t")
    assert exact_total(fig) == Decimal("1700.500000000001")
    assert [t["name"] for t in fig.to_plotly_json()["data"]] == ["low", "high", "critical"]


def test_csv_is_exact_and_neutralises_formulas() -> None:
    frame = pl.DataFrame(
        {
            "team": ["=HYPERLINK(1)", "plain", "-2"],
            "cost_usd": ["0.000000000001", "-1.5", None],
            "ids": [["a", "b"], [], None],
            "at": [datetime(2026, 11, 1, 12, tzinfo=UTC)] * 3,
        },
        schema_overrides={"cost_usd": MONEY},
    )
    assert csv_text(frame).splitlines() == [
        "team,cost_usd,ids,at",
        "'=HYPERLINK(1),0.000000000001,a b,2026-11-01T12:00:00Z",
        'plain,-1.500000000000,"",2026-11-01T12:00:00Z',
        "'-2,,,2026-11-01T12:00:00Z",
    ]


def test_default_range_is_last_month_and_this_month_so_far() -> None:
    assert default_range(AS_OF) == (date(2026, 10, 1), date(2026, 11, 16))
    assert default_range(datetime(2026, 11, 16, 9, 30, tzinfo=UTC)) == (date(2026, 10, 1), date(2026, 11, 17))


@pytest.mark.parametrize(
    ("start", "end", "grain", "message"),
    [
        ("2026-13-01", None, None, r"^start '2026-13-01' is not a date; expected YYYY-MM-DD \(UTC\)\.$"),
        ("2026-11-10", "2026-11-10", None, r"^The date range 2026-11-10 to 2026-11-10 is empty"),
        ("2020-01-01", "2026-01-01", None, r"^The date range is 2192 days; a dashboard shows at most 731"),
        (None, None, "hour", r"^grain must be one of: day, month\.$"),
    ],
)
def test_parse_filter_bad_input_is_one_sentence(start: str, end: str, grain: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_filter(start=start, end=end, grain=grain, teams=None, as_of=AS_OF)


def test_parse_filter_empty_fields_mean_the_default() -> None:
    result = parse_filter(start="", end=" ", grain="", teams=["a"], as_of=AS_OF)
    expected = (date(2026, 10, 1), date(2026, 11, 16), "day", ("a",))
    assert (result.start, result.end, result.grain, result.teams) == expected


def test_the_findings_view_says_when_it_shows_only_the_costliest(monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.dashboards import data, views

    frame = pl.DataFrame(
        {"kind": ["retry_storm", "cost_spike", "cost_spike"], "excess_cost_usd": ["1", "2", "3"]},
        schema_overrides={"excess_cost_usd": MONEY},
    )
    monkeypatch.setattr(data, "MAX_TABLE_ROWS", 3)
    (kpi,) = views._kpis("findings", None, lambda _: frame)  # type: ignore[arg-type]
    assert kpi.value == Decimal(6)
    assert kpi.detail == "the 3 costliest findings only (narrow the range or teams): cost_spike 2, retry_storm 1"
    monkeypatch.setattr(data, "MAX_TABLE_ROWS", 4)
    (kpi,) = views._kpis("findings", None, lambda _: frame)  # type: ignore[arg-type]
    assert kpi.detail == "3 findings: cost_spike 2, retry_storm 1"
