"""The alert state machine on its own: fire once per crossing, recover below the re-arm level, hysteresis."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finops.alert.machine import Fired, Measures, Rules, Transition, transitions

RULES = Rules(rearm_pct=Decimal(90), forecast_min_history_days=14, forecast_min_threshold_pct=100)
AMOUNT = Decimal(1000)


def measures(actual: str, forecast: str | None = None, *, history: int = 30, ended: bool = False) -> Measures:
    return Measures(Decimal(actual), Decimal(forecast) if forecast is not None else None, history, ended)


def fired(kind: str, pct: int, state: str = "open", episode: int = 1) -> Fired:
    return Fired(f"{kind}-{pct}-{episode}", kind, pct, episode, state)  # type: ignore[arg-type]


def summary(found: list[Transition]) -> list[tuple[str, int, int, bool]]:
    return [(t.kind, t.threshold_pct, t.episode, t.is_recovery) for t in found]


def test_every_threshold_crossed_fires_once_in_ascending_order() -> None:
    result = transitions(AMOUNT, (100, 50, 80), measures("850"), [], RULES)

    assert summary(result) == [("actual", 50, 1, False), ("actual", 80, 1, False)]
    assert result[1].target_usd == Decimal(800)


def test_a_firing_condition_does_not_fire_again() -> None:
    assert transitions(AMOUNT, (50, 80), measures("850"), [fired("actual", 50), fired("actual", 80)], RULES) == []


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("790", []),  # under the threshold but above the re-arm level (720): no flapping
        ("720", []),  # exactly at the re-arm level is not under it
        ("719.99", [("actual", 80, 1, True)]),
    ],
)
def test_recovery_needs_the_value_clearly_under(actual: str, expected: list[tuple[str, int, int, bool]]) -> None:
    assert summary(transitions(AMOUNT, (80,), measures(actual), [fired("actual", 80)], RULES)) == expected


def test_after_a_recovery_the_next_crossing_is_a_new_episode() -> None:
    history = [fired("actual", 80, state="recovered")]

    assert summary(transitions(AMOUNT, (80,), measures("801"), history, RULES)) == [("actual", 80, 2, False)]


def test_forecast_fires_only_for_thresholds_from_100_and_while_the_actual_is_under() -> None:
    result = transitions(AMOUNT, (50, 80, 100, 120), measures("400", "1300"), [], RULES)

    assert summary(result) == [("forecast", 100, 1, False), ("forecast", 120, 1, False)]
    assert transitions(AMOUNT, (100,), measures("1000", "1300"), [fired("actual", 100)], RULES) == []


def test_forecast_needs_history_and_a_forecast_and_an_open_period() -> None:
    assert transitions(AMOUNT, (100,), measures("400", "1300", history=13), [], RULES) == []
    assert transitions(AMOUNT, (100,), measures("400", None), [], RULES) == []
    assert transitions(AMOUNT, (100,), measures("400", "1300", ended=True), [], RULES) == []


def test_a_missing_forecast_keeps_the_forecast_condition_firing() -> None:
    assert transitions(AMOUNT, (100,), measures("400", None), [fired("forecast", 100)], RULES) == []


def test_forecast_hysteresis_sequence() -> None:
    history: list[Fired] = []
    seen = []
    for forecast in ("1050", "980", "1030", "950", "899", "1010"):
        for t in transitions(AMOUNT, (100,), measures("300", forecast), history, RULES):
            seen.append((forecast, t.episode, t.is_recovery))
            if t.is_recovery:
                history = [Fired(h.alert_id, h.kind, h.threshold_pct, h.episode, "recovered") for h in history]
            else:
                history.append(fired("forecast", 100, episode=t.episode))

    assert seen == [("1050", 1, False), ("899", 1, True), ("1010", 2, False)]
