"""The neighbour (shape) score of `finops detect series`: only earlier rows inform a row, blocks change
nothing, a new shape alarms once, and too few earlier scores mean no judgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.detect import shapes
from finops.detect.shapes import ShapeSettings, knn_conformal
from finops.detect.spikes import score_series

SMALL = ShapeSettings(window=3, neighbours=2, train_share=0.5, train_max_rows=30, min_calibration=5, alarm_p=0.9)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=160),
    cut=st.integers(min_value=1, max_value=159),
)
def test_appending_rows_never_changes_an_earlier_score(values: list[float], cut: int) -> None:
    cut = min(cut, len(values))
    full, prefix = knn_conformal(values, SMALL), knn_conformal(values[:cut], SMALL)

    np.testing.assert_array_equal(full.p[:cut], prefix.p)
    np.testing.assert_array_equal(full.calibrated[:cut], prefix.calibrated)
    assert ((full.p >= 0) & (full.p <= 1)).all()


def test_rows_scored_in_blocks_score_as_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.cumsum(np.random.default_rng(3).normal(size=5000))
    whole = knn_conformal(x)
    monkeypatch.setattr(shapes, "_BLOCK", 700)

    blocks = knn_conformal(x)

    np.testing.assert_allclose(blocks.p, whole.p, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(blocks.calibrated, whole.calibrated)


def test_a_changed_shape_alarms_once_where_the_level_does_not_move() -> None:
    # a daily cycle that flattens to its mean: no value leaves the usual range, the shape does
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    x = 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, len(t))
    x[1500:] = rng.normal(0, 0.5, 500)

    scores = knn_conformal(x)

    alarms = np.flatnonzero(scores.p >= ShapeSettings().alarm_p)
    assert alarms[alarms < 1500].size <= 2  # a conformal alarm is a 0.35 % event in ordinary rows
    assert any(1500 <= a < 1520 for a in alarms)


def test_too_few_earlier_scores_is_no_judgement() -> None:
    x = np.random.default_rng(1).normal(size=300)
    x[250] = 40.0

    scores = knn_conformal(x)  # 100 earlier scores are needed: about 400 rows at a quarter of the rows so far

    assert not scores.calibrated.any()
    assert (scores.p == 0).all()


def test_watched_one_way_a_shape_alarm_the_other_way_is_not_an_anomaly() -> None:
    rng = np.random.default_rng(2)
    values = 100 + rng.normal(0, 1, 1500)
    values[1400:1410] -= 30  # a drop
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({"t": [start + timedelta(hours=i) for i in range(len(values))], "v": values})

    both = score_series(frame.lazy(), time="t", value="v", direction="both").collect()
    up = score_series(frame.lazy(), time="t", value="v", direction="up").collect()

    assert both["is_anomaly"][1400:1410].any()
    assert not up["is_anomaly"][1400:1410].any()


@pytest.mark.parametrize("unit", [1e-12, 1.0, 1e150, 1e300])
def test_the_unit_of_the_values_changes_no_score(unit: float) -> None:
    # distances of values near 1e300 would overflow; the scores are ranks, the same in any unit
    x = np.random.default_rng(4).normal(size=1200)
    x[900:] = np.sin(np.arange(300))

    with np.errstate(all="raise"):
        scaled = knn_conformal(x * unit)

    np.testing.assert_array_equal(scaled.p, knn_conformal(x).p)
