"""Cost spikes and level shifts: found once, at the right grain, with the right window and exact excess; quiet
on flat and sparse spend; honest about short history; the same findings (and ids) on a rerun."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from finops.detect import DetectInputs, run_all
from finops.detect.spikes import SpikeConfig, detect_spikes

START = datetime(2025, 9, 1, tzinfo=UTC)
DAYS = 42
AS_OF = START + timedelta(days=DAYS)
HOURS = DAYS * 24
Series = dict[tuple[str, str, str], npt.NDArray[np.float64]]


def seasonal(seed: int = 0, level: float = 10.0) -> npt.NDArray[np.float64]:
    """Hourly spend with a daily cycle, quieter weekends and 8 % noise."""
    rng = np.random.default_rng(seed)
    h = np.arange(HOURS)
    day = 1 + 0.6 * np.sin(2 * np.pi * ((h % 24) - 8) / 24)
    week = np.where((h // 24) % 7 >= 5, 0.6, 1.0)
    return level * day * week * np.exp(rng.normal(0, 0.08, HOURS))


def inputs(series: Series, *, start: datetime = START, requests: Series | None = None) -> DetectInputs:
    """Detector inputs for hourly costs (rounded to micro-dollars), each hour ten lines of a tenth of it; the
    hourly rollup counts `requests` (one an hour where not given)."""
    frames = []
    for key, values in series.items():
        team, feature, model = key
        hours = [start + timedelta(hours=i) for i in range(len(values))]
        costs = [Decimal(f"{v:.6f}") for v in values]
        counts = (requests or {}).get(key, np.ones(len(values)))
        frames.append(
            pl.DataFrame(
                {"hour": hours, "team": team, "feature": feature, "model": model, "cost_usd": costs}
                | {"requests": counts},
                schema_overrides={"cost_usd": pl.Decimal(38, 12), "requests": pl.Int64},
            )
        )
    hourly = pl.concat(frames).filter(pl.col("cost_usd") > 0).with_columns(provider=pl.lit("openai"))
    lines = (  # ten requests an hour, each a tenth of its cost
        hourly.with_columns(k=pl.lit(list(range(10))))
        .explode("k")
        .select(
            "team",
            "feature",
            "model",
            cost_usd=(pl.col("cost_usd") / 10).cast(pl.Decimal(38, 12)),
            ts=pl.col("hour") + pl.duration(minutes=5 * pl.col("k")),
            request_id=pl.format("{}-{}-{}-{}", "team", "model", pl.col("hour").dt.epoch("s"), "k"),
        )
    )
    return DetectInputs(
        lines=lines.lazy(),
        hourly=hourly.lazy(),
        history_start=START,
        horizon_start=AS_OF - timedelta(days=14),
        as_of=AS_OF,
    )


def found(series: Series, **config: object) -> pl.DataFrame:
    return run_all(inputs(series), [lambda i: detect_spikes(i, SpikeConfig(**config))])  # type: ignore[arg-type]


def test_planted_spike_is_found_once_with_its_window_and_excess() -> None:
    values = seasonal()
    at = (DAYS - 3) * 24 + 14
    values[at : at + 2] *= 5  # x5 for two hours
    planted_extra = Decimal(f"{values[at]:.6f}") + Decimal(f"{values[at + 1]:.6f}")

    result = found({("search", "chat", "gpt-4o"): values})

    [spike] = result.to_dicts()
    assert (spike["kind"], spike["team"], spike["feature"], spike["model"]) == (
        "cost_spike",
        "search",
        "chat",
        "gpt-4o",
    )
    assert (spike["window_start"], spike["window_end"]) == (
        START + timedelta(hours=at),
        START + timedelta(hours=at + 2),
    )
    expected = Decimal(str(round(spike["expected"], 9)))
    assert spike["excess_cost_usd"] == planted_extra - expected  # exact: observed (Decimal) - expected
    assert 0.7 < float(spike["excess_cost_usd"]) / (0.8 * float(planted_extra)) < 1.3  # x5: the excess is ~4/5
    assert json.loads(spike["evidence"])["count"] == 20  # the two hours' requests
    assert spike["score"] > 0.9 and spike["severity"] == "high"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.full(HOURS, 40.0), id="flat"),
        pytest.param(40.0 + np.random.default_rng(1).normal(0, 0.05, HOURS), id="flat-with-jitter"),
        pytest.param(
            np.where(np.random.default_rng(2).random(HOURS) < 0.05, np.random.default_rng(3).uniform(5, 25, HOURS), 0),
            id="sparse",
        ),
        pytest.param(seasonal(seed=4), id="seasonal"),
    ],
)
def test_flat_sparse_and_ordinary_spend_gives_no_finding(values: npt.NDArray[np.float64]) -> None:
    assert found({("search", "chat", "gpt-4o"): values}).height == 0


def test_level_shift_is_one_finding_to_the_end_of_the_data() -> None:
    values = seasonal(seed=5)
    at = (DAYS - 6) * 24 + 9
    values[at:] *= 2

    result = found({("search", "chat", "gpt-4o"): values})

    [shift] = result.to_dicts()
    assert shift["kind"] == "level_shift"
    assert START + timedelta(hours=at - 3) <= shift["window_start"] <= START + timedelta(hours=at + 3)
    assert shift["window_end"] == AS_OF
    # the excess is the spend since the change above the week before: about as much again as the old level
    assert 0.7 < float(shift["excess_cost_usd"]) / float(np.sum(values[at:]) / 2) < 1.3
    assert shift["severity"] in ("high", "critical")


def test_a_spike_in_one_model_is_reported_for_that_model_and_a_feature_wide_one_for_the_feature() -> None:
    one, two = seasonal(seed=6), seasonal(seed=7)
    lone = (DAYS - 5) * 24 + 13
    one[lone : lone + 2] *= 6
    wide = (DAYS - 2) * 24 + 15
    one[wide : wide + 3] *= 4
    two[wide : wide + 3] *= 4

    result = found({("search", "chat", "gpt-4o"): one, ("search", "chat", "claude"): two}).sort("window_start")

    assert result.select("kind", "team", "feature", "model").rows() == [
        ("cost_spike", "search", "chat", "gpt-4o"),
        ("cost_spike", "search", "chat", None),
    ]
    contributors = json.loads(result["details"][1])["contributors"]
    assert {c["subject"] for c in contributors} == {
        "team=search,feature=chat,model=claude",
        "team=search,feature=chat,model=gpt-4o",
    }
    assert all(c["excess_usd"] > 20 for c in contributors)


def test_too_little_history_is_reported_as_such_and_not_judged() -> None:
    young = seasonal(seed=8)[-3 * 24 :]
    young[-10:-8] *= 10  # a jump nobody can judge after three days

    data = inputs({("search", "chat", "gpt-4o"): seasonal(seed=9)})
    fresh = inputs({("newteam", "chat", "gpt-4o"): young}, start=AS_OF - timedelta(days=3))
    both = DetectInputs(
        lines=pl.concat([data.lines, fresh.lines]),
        hourly=pl.concat([data.hourly, fresh.hourly]),
        history_start=data.history_start,
        horizon_start=data.horizon_start,
        as_of=data.as_of,
    )
    result = run_all(both, [detect_spikes])

    [row] = result.to_dicts()
    assert (row["kind"], row["team"], row["feature"], row["score"]) == ("insufficient_history", "newteam", None, 0.0)
    assert row["excess_cost_usd"] == 0 and row["expected"] is None
    assert json.loads(row["details"]) == {
        "grain": "team",
        "history_hours": 72,
        "required_hours": 168,
        "note": "too little history to judge spikes; no expected level is guessed",
    }


def test_a_rerun_gives_identical_findings_and_ids() -> None:
    values = seasonal(seed=10)
    values[(DAYS - 2) * 24 + 12] *= 8
    shifted = seasonal(seed=11)
    shifted[(DAYS - 6) * 24 :] *= 1.8
    data = {("search", "chat", "gpt-4o"): values, ("ads", "rank", "claude"): shifted}

    first, second = found(data).sort("finding_id"), found(data).sort("finding_id")

    assert first.height == 2
    assert_frame_equal(first, second)
    assert first["finding_id"].str.starts_with("cost_spike-").sum() == 1
    assert first["finding_id"].str.starts_with("level_shift-").sum() == 1


def test_a_jump_one_request_explains_is_left_to_the_outlier_detector() -> None:
    values = seasonal(seed=12)
    at = (DAYS - 2) * 24 + 14
    values[at] *= 6
    data = inputs({("search", "chat", "gpt-4o"): values})
    whale = pl.DataFrame(  # one request carries the whole jump: a runaway context or an agent loop
        {
            "team": "search",
            "feature": "chat",
            "model": "gpt-4o",
            "cost_usd": Decimal(f"{values[at] * 0.9:.6f}"),
            "ts": START + timedelta(hours=at, minutes=1),
            "request_id": "whale",
        },
        schema_overrides={"cost_usd": pl.Decimal(38, 12)},
    )
    lines = pl.concat([data.lines, whale.lazy()], how="vertical_relaxed")

    result = run_all(
        DetectInputs(lines, data.hourly, data.history_start, data.horizon_start, data.as_of), [detect_spikes]
    )

    assert result.height == 0


def test_spend_below_the_dollar_floor_is_not_a_finding() -> None:
    values = seasonal(level=0.2)
    values[(DAYS - 2) * 24 + 14] *= 10  # a x10 hour, but under $2 of excess

    assert found({("search", "chat", "gpt-4o"): values}).height == 0
    assert found({("search", "chat", "gpt-4o"): values}, min_excess_usd=Decimal("0.5")).height == 1


def test_a_level_shift_is_one_finding_even_with_a_quiet_day_after_it() -> None:
    values = seasonal(seed=13)
    at = (DAYS - 8) * 24 + 9
    values[at:] *= 2.5
    quiet = (DAYS - 4) * 24
    values[quiet : quiet + 24] *= 0.2  # a holiday: one day far below even the old level

    result = found({("search", "chat", "gpt-4o"): values})

    assert result.select("kind", "team", "feature").rows() == [("level_shift", "search", "chat")] or result.select(
        "kind", "team", "feature"
    ).rows() == [("level_shift", "search", None)]


def test_steady_growth_is_not_a_level_shift() -> None:
    values = seasonal(seed=14) * np.exp(np.linspace(0.0, 1.2, HOURS))  # x3.3 over six weeks, smoothly

    assert found({("search", "chat", "gpt-4o"): values}).filter(pl.col("kind") == "level_shift").height == 0


def test_a_shift_in_one_feature_does_not_swallow_a_later_spike_in_another() -> None:
    shifting, spiking = seasonal(seed=15, level=20.0), seasonal(seed=16)
    shifting[(DAYS - 10) * 24 + 9 :] *= 2.5
    spike = (DAYS - 3) * 24 + 14
    spiking[spike : spike + 2] *= 6

    result = found({("search", "chat", "gpt-4o"): shifting, ("search", "rank", "gpt-4o"): spiking})

    assert result.filter(pl.col("kind") == "level_shift").height == 1
    [lone] = result.filter(pl.col("kind") == "cost_spike").to_dicts()
    assert lone["feature"] == "rank"
    assert lone["window_start"] == START + timedelta(hours=spike)


def test_a_moderate_cost_jump_is_a_spike_only_when_the_request_count_jumps_with_it() -> None:
    values = seasonal(seed=17)
    at = (DAYS - 2) * 24 + 14
    values[at : at + 2] *= 5
    steady = np.full(HOURS, 100)
    busier = steady.copy()
    busier[at : at + 2] = 500  # the extra spend is extra traffic
    key = ("search", "chat", "gpt-4o")
    strict = SpikeConfig(finding_min_score=0.99, corroborated_min_score=0.5)

    def spikes(counts: npt.NDArray[np.int64]) -> pl.DataFrame:
        data = inputs({key: values}, requests={key: counts.astype(np.float64)})
        return run_all(data, [lambda i: detect_spikes(i, strict)])

    assert spikes(steady).height == 0
    assert spikes(busier).select("kind", "window_start").rows() == [("cost_spike", START + timedelta(hours=at))]


def test_a_spike_after_a_silent_day_a_week_before_is_still_judged() -> None:
    values = seasonal(seed=18)
    at = (DAYS - 2) * 24 + 14
    values[at - 7 * 24 : at - 6 * 24 + 12] = 0.0  # the hours a week before were silent (an outage, a holiday)
    values[at : at + 2] *= 6

    result = found({("search", "chat", "gpt-4o"): values})

    assert result.select("kind", "window_start").rows() == [("cost_spike", START + timedelta(hours=at))]


def test_a_shift_in_one_model_is_one_finding_not_again_for_its_feature_days_later() -> None:
    shifting, steady = seasonal(seed=19, level=4.0), seasonal(seed=20, level=6.0)
    at = (DAYS - 12) * 24
    shifting[at:] *= 2.5

    result = found({("search", "chat", "gpt-4o"): shifting, ("search", "chat", "claude"): steady})

    assert result.select("kind", "model").rows() == [("level_shift", "gpt-4o")]


def test_a_jump_that_does_not_double_the_expected_spend_is_not_a_spike() -> None:
    values = seasonal(seed=21, level=40.0)
    at = (DAYS - 2) * 24 + 10
    values[at : at + 4] *= 1.8  # a hundred dollars above a quiet 8 % noise: a high score, but +75 % in all

    assert found({("search", "chat", "gpt-4o"): values}).height == 0
    result = found({("search", "chat", "gpt-4o"): values}, min_excess_rel=0.5)
    assert result.select("kind", "window_start").rows() == [("cost_spike", START + timedelta(hours=at))]


def test_weekday_spend_after_a_quiet_weekend_is_not_a_spike() -> None:
    rng = np.random.default_rng(22)
    h = np.arange(HOURS)
    office = np.where(((h % 24) >= 8) & ((h % 24) < 18), 1.0, 0.1)
    weekend = np.where((h // 24) % 7 >= 5, 0.1, 1.0)  # START is a Monday: days 5 and 6 of each week are quiet
    values = 30.0 * office * weekend * np.exp(rng.normal(0, 0.08, HOURS))

    assert found({("search", "chat", "gpt-4o"): values}).height == 0


def test_a_spike_on_a_fast_growing_series_is_a_spike_not_a_level_shift() -> None:
    values = seasonal(seed=23) * np.exp(np.linspace(0.0, 6 * np.log(1.6), HOURS))  # +60 % a week
    at = (DAYS - 5) * 24 + 14
    values[at : at + 3] *= 8

    result = found({("search", "chat", "gpt-4o"): values})

    assert result.select("kind", "window_start").rows() == [("cost_spike", START + timedelta(hours=at))]


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (README): a x5 spike inflates the plain-deviation floor of the cost scale for four "
    "weeks, and a x2 level shift a week later goes unseen; a winsorised floor fixes this case but cost planted "
    "spikes and precision on the labelled generator (seeds 4 and 5), so it is not on",
)
def test_a_spike_a_week_before_a_level_shift_is_a_spike_and_the_shift_starts_at_the_change() -> None:
    values = seasonal(seed=6)
    spike, change = 29 * 24 + 14, 36 * 24 + 9
    values[spike : spike + 2] *= 5
    values[change:] *= 2

    result = found({("search", "chat", "gpt-4o"): values}).sort("window_start")

    kinds = result.select("kind", "window_start").rows()
    assert [k for k, _ in kinds] == ["cost_spike", "level_shift"], kinds
    assert kinds[0][1] == START + timedelta(hours=spike)
    assert abs(kinds[1][1] - (START + timedelta(hours=change))) <= timedelta(days=1)
