"""Provider bills are the truth: which usage counts (gateway vs provider buckets), each bill shared out exactly
over the counted usage, the rest in `__unobserved__` / `__unpriced__`, and the `reconciliation` view."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from finops.attribute.bills import bill_pools, bill_spend, usage_measures
from finops.attribute.tokens import SPEND_LINE_COLUMNS
from finops.pipeline import run_once
from finops.schema import UNOBSERVED, UNPRICED
from finops.store.bill_spend import rebuild_bill_lines
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

COST = pl.Decimal(38, 12)
D1, D2 = date(2025, 1, 2), date(2025, 1, 3)
RESOLUTIONS = pl.LazyFrame(
    {
        "provider": ["openai", "openai", "openai", "anthropic"],
        "model": ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o1", "claude-sonnet-4-5-20250929"],
        "price_model": ["gpt-4o", "gpt-4o-mini", "o1", "claude-sonnet-4-5"],
    }
)
OUT = ["line_type", "model", "team", "feature", "cost_usd", "price_source"]


def usage(*records: tuple[Any, ...]) -> pl.LazyFrame:
    """(day, provider, source, model, price_model, team, feature, cost[, tokens]) records; tokens default to
    a million per priced dollar (1,000 when unpriced)."""
    names = ("charge_day", "provider", "source", "model", "price_model", "team", "feature", "cost_usd")
    data = []
    for r in records:
        cost = _dec(r[7])
        tokens = r[8] if len(r) > 8 else 1000 if cost is None else int(cost * 1_000_000)
        data.append({**dict(zip(names, r[:8], strict=True)), "cost_usd": cost, "input_tokens": tokens})
    schema = {n: pl.String() for n in names} | {"charge_day": pl.Date(), "cost_usd": COST, "input_tokens": pl.Int64()}
    return pl.LazyFrame(data, schema=schema).with_columns(output_tokens=pl.lit(0, pl.Int64()))


def bills(*records: tuple[Any, ...]) -> pl.LazyFrame:
    """(day, provider, source, batch_id, line_item, model, description, amount) records."""
    names = ("charge_day", "provider", "source", "batch_id", "line_item", "model", "description", "amount_usd")
    data = [dict(zip(names, r, strict=True)) for r in records]
    schema = {n: pl.String() for n in names} | {"charge_day": pl.Date(), "batch_id": pl.Int64(), "amount_usd": COST}
    return pl.LazyFrame([{**d, "amount_usd": _dec(d["amount_usd"])} for d in data], schema=schema)


def openai_bill(day: date, line_item: str | None, amount: str, batch: int = 1) -> tuple[Any, ...]:
    return (day, "openai", "openai-costs", batch, line_item, None, None, amount)


def expected(*records: tuple[Any, ...]) -> pl.DataFrame:
    """(line_type, model, team, feature, cost, price_source) records."""
    schema = {n: pl.String() for n in OUT} | {"cost_usd": COST}
    data = [dict(zip(OUT, (*r[:4], _dec(r[4]), r[5]), strict=True)) for r in records]
    return pl.DataFrame(data, schema=schema).sort(OUT, nulls_last=True)


def result_of(lines: pl.LazyFrame, bill: pl.LazyFrame, resolutions: pl.LazyFrame = RESOLUTIONS) -> pl.DataFrame:
    return bill_spend(lines, bill, resolutions).collect().select(OUT).sort(OUT, nulls_last=True)


def _dec(value: str | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# ------------------------------------------------------------------------------------ which usage counts


def test_usage_measures_gateway_where_any_gateway_line_else_provider_buckets() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "1"),
        (D1, "openai", "openai-usage", "gpt-4o", "gpt-4o", "a", "x", "1"),
        (D1, "anthropic", "anthropic-usage", "claude", None, "a", "x", None),
        (D2, "openai", "litellm", "gpt-4o", "gpt-4o", "a", "x", None),
    )

    result = usage_measures(lines).collect().sort("charge_day", "provider")

    expected_measures = pl.DataFrame(
        {
            "charge_day": [D1, D1, D2],
            "provider": ["anthropic", "openai", "openai"],
            "measure": ["provider_usage", "gateway", "gateway"],
        }
    )
    assert_frame_equal(result, expected_measures)


def test_provider_buckets_left_out_where_the_gateway_measured_the_same_provider_day() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "search", "chat", "3"),
        (D1, "openai", "openai-usage", "gpt-4o-2024-08-06", "gpt-4o", "__unattributed__", "__unattributed__", "3"),
    )
    bill = bills(openai_bill(D1, None, "6"))

    result = result_of(lines, bill)

    # the bucket weighs nothing: the gateway's line takes the whole bill (6), not half of it
    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "gpt-4o", "search", "chat", "3", "openai-costs bill 2025-01-02, all models"),
        ),
    )


def test_provider_buckets_count_where_no_gateway_usage_that_provider_day() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "search", "chat", "1"),
        (D2, "openai", "openai-usage", "gpt-4o-2024-08-06", "gpt-4o", "__unattributed__", "__unattributed__", "3"),
        (D1, "anthropic", "anthropic-usage", "claude-sonnet-4-5", "claude-sonnet-4-5", "t", "f", "2"),
    )
    bill = bills(
        openai_bill(D2, None, "4"),
        (D1, "anthropic", "anthropic-costs", 1, None, None, None, "2.5"),
    )

    result = result_of(lines, bill)

    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "claude-sonnet-4-5", "t", "f", "0.5", "anthropic-costs bill 2025-01-02, all models"),
            (
                "bill_adjustment",
                "gpt-4o-2024-08-06",
                "__unattributed__",
                "__unattributed__",
                "1",
                "openai-costs bill 2025-01-03, all models",
            ),
        ),
    )


# ------------------------------------------------------------------------------------------- pools


def test_bill_pools_read_the_model_from_openai_line_items_and_anthropic_model() -> None:
    bill = bills(
        openai_bill(D1, "gpt-4o-2024-08-06, input", "1.5"),
        openai_bill(D1, "gpt-4o-2024-08-06, cached input", "0.25"),
        openai_bill(D1, "dall-e-3, 1024x1024", "0.96"),
        (D1, "anthropic", "anthropic-costs", 2, None, "claude-sonnet-4-5-20250929", "Input Tokens", "4"),
        (D1, "anthropic", "anthropic-costs", 2, None, None, "Web Search Usage", "0.4"),
    )

    result = bill_pools(bill, RESOLUTIONS).collect().sort("provider", "pool_model", nulls_last=True)

    expected_pools = pl.DataFrame(
        {
            "charge_day": [D1] * 4,
            "provider": ["anthropic", "anthropic", "openai", "openai"],
            "source": ["anthropic-costs", "anthropic-costs", "openai-costs", "openai-costs"],
            "pool_model": ["claude-sonnet-4-5", None, "dall-e-3", "gpt-4o"],
            "price_model": ["claude-sonnet-4-5", None, None, "gpt-4o"],
            "billed_usd": pl.Series([Decimal("4"), Decimal("0.4"), Decimal("0.96"), Decimal("1.75")], dtype=COST),
        }
    )
    assert_frame_equal(result, expected_pools)


def test_bill_pools_leave_out_a_coarse_pull_that_an_itemised_pull_of_the_day_covers() -> None:
    bill = bills(
        openai_bill(D1, None, "10", batch=1),  # by project only: the same money as batch 2
        openai_bill(D1, "gpt-4o-2024-08-06, input", "7", batch=2),
        openai_bill(D1, "o1, output", "3", batch=2),
        openai_bill(D2, None, "5", batch=1),  # no itemised pull that day: kept
    )

    result = bill_pools(bill, RESOLUTIONS).collect().sort("charge_day", "pool_model", nulls_last=True)

    assert result.select("charge_day", "pool_model", "billed_usd").rows() == [
        (D1, "gpt-4o", Decimal("7")),
        (D1, "o1", Decimal("3")),
        (D2, None, Decimal("5")),
    ]


def test_bill_pools_count_only_the_finest_of_two_coarse_pulls_of_a_day() -> None:
    # hunt H 4: a pull by project and an ungrouped pull of the same day are the same money: the finer one
    # counts ($0.30), never both ($0.61)
    by_project = bills(openai_bill(D1, None, "0.1", batch=1), openai_bill(D1, None, "0.2", batch=1)).with_columns(
        project_id=pl.Series(["proj_a", "proj_b"])
    )
    total = bills(openai_bill(D1, None, "0.31", batch=2), openai_bill(D2, None, "0.5", batch=2)).with_columns(
        project_id=pl.lit(None, pl.String)
    )

    result = bill_pools(pl.concat([by_project, total]), RESOLUTIONS).collect().sort("charge_day")

    assert result.select("charge_day", "billed_usd").rows() == [(D1, Decimal("0.3")), (D2, Decimal("0.5"))]


# -------------------------------------------------------------------------------------- allocation


def test_model_pool_allocated_in_proportion_to_the_priced_usage_of_that_model() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "search", "chat", "1"),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "search", "chat", "1"),
        (D1, "openai", "gateway", "gpt-4o-2024-08-06", "gpt-4o", "support", "bot", "2"),
        (D1, "openai", "gateway", "o1", "o1", "support", "bot", "5"),
    )
    bill = bills(
        openai_bill(D1, "gpt-4o-2024-08-06, input", "4"),
        openai_bill(D1, "gpt-4o-2024-08-06, output", "2"),
        openai_bill(D1, "o1, input", "4"),
    )

    result = result_of(lines, bill)

    # gpt-4o: priced 2 + 2 of 4, billed 6 -> 3 + 3; o1: priced 5, billed 4
    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "gpt-4o", "search", "chat", "1", "openai-costs bill 2025-01-02, gpt-4o"),
            ("bill_adjustment", "gpt-4o-2024-08-06", "support", "bot", "1", "openai-costs bill 2025-01-02, gpt-4o"),
            ("bill_adjustment", "o1", "support", "bot", "-1", "openai-costs bill 2025-01-02, o1"),
        ),
    )


def test_provider_pool_allocated_over_every_model_of_the_provider_day() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "search", "chat", "1"),
        (D1, "openai", "gateway", "o1", "o1", "support", "bot", "3"),
        (D1, "anthropic", "gateway", "claude-sonnet-4-5", "claude-sonnet-4-5", "support", "bot", "9"),
    )
    bill = bills(openai_bill(D1, None, "2"))

    result = result_of(lines, bill)

    # anthropic has no bill that day: its line is left as priced
    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "gpt-4o", "search", "chat", "-0.5", "openai-costs bill 2025-01-02, all models"),
            ("bill_adjustment", "o1", "support", "bot", "-1.5", "openai-costs bill 2025-01-02, all models"),
        ),
    )


def test_model_and_provider_pools_of_one_day_take_the_priced_cost_off_once() -> None:
    lines = usage(
        (D1, "anthropic", "gateway", "claude-sonnet-4-5", "claude-sonnet-4-5", "a", "x", "1"),
        (D1, "anthropic", "gateway", "claude-sonnet-4-5", "claude-sonnet-4-5", "b", "y", "3"),
    )
    bill = bills(
        (D1, "anthropic", "anthropic-costs", 1, None, "claude-sonnet-4-5-20250929", "Output Tokens", "8"),
        (D1, "anthropic", "anthropic-costs", 1, None, None, "Web Search Usage", "0.4"),
    )

    result = result_of(lines, bill)

    label = "anthropic-costs bill 2025-01-02, "
    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "claude-sonnet-4-5", "a", "x", "0.1", label + "all models"),
            ("bill_adjustment", "claude-sonnet-4-5", "b", "y", "0.3", label + "all models"),
            ("bill_adjustment", "claude-sonnet-4-5", "a", "x", "1", label + "claude-sonnet-4-5"),
            ("bill_adjustment", "claude-sonnet-4-5", "b", "y", "3", label + "claude-sonnet-4-5"),
        ),
    )


def test_pool_without_counted_usage_goes_to_unobserved() -> None:
    lines = usage((D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "2"))
    bill = bills(openai_bill(D1, "gpt-4o-2024-08-06, input", "2"), openai_bill(D1, "o1, input", "0.7"))

    result = result_of(lines, bill)

    assert_frame_equal(
        result, expected(("unobserved", "o1", UNOBSERVED, UNOBSERVED, "0.7", "openai-costs bill 2025-01-02, o1"))
    )


def test_pool_with_only_unpriced_usage_goes_to_unpriced() -> None:
    lines = usage(
        (D1, "openai", "gateway", "dall-e-3", None, "a", "x", None),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "2"),
    )
    bill = bills(openai_bill(D1, "dall-e-3, 1024x1024", "0.96"), openai_bill(D1, "gpt-4o-2024-08-06, input", "2"))

    result = result_of(lines, bill)

    assert_frame_equal(
        result,
        expected(("bill_adjustment", "dall-e-3", UNPRICED, UNPRICED, "0.96", "openai-costs bill 2025-01-02, dall-e-3")),
    )


def test_usage_a_model_level_bill_does_not_name_is_billed_nothing() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "2"),
        (D1, "openai", "gateway", "o1", "o1", "b", "y", "0.5"),
    )
    bill = bills(openai_bill(D1, "gpt-4o-2024-08-06, input", "2"))

    result = result_of(lines, bill)

    assert_frame_equal(
        result, expected(("bill_adjustment", "o1", "b", "y", "-0.5", "openai-costs bill 2025-01-02, not billed"))
    )


def test_provider_usage_above_the_gateways_goes_to_unobserved() -> None:
    # the gateway saw 3 of gpt-4o; OpenAI's own usage report priced 4: a quarter was not seen
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "1"),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "b", "y", "2"),
        (D1, "openai", "openai-usage", "gpt-4o-2024-08-06", "gpt-4o", "__unattributed__", "__unattributed__", "4"),
    )
    bill = bills(openai_bill(D1, "gpt-4o-2024-08-06, input", "8"))

    result = result_of(lines, bill)

    label = "openai-costs bill 2025-01-02, gpt-4o"
    assert_frame_equal(
        result,
        expected(
            ("bill_adjustment", "gpt-4o", "a", "x", "1", label),
            ("bill_adjustment", "gpt-4o", "b", "y", "2", label),
            ("unobserved", "gpt-4o", UNOBSERVED, UNOBSERVED, "2", label),
        ),
    )


def test_leftover_units_go_to_the_largest_remainders_ties_by_team() -> None:
    lines = usage(*((D1, "openai", "gateway", "gpt-4o", "gpt-4o", t, "x", "1") for t in ("c", "a", "b")))
    bill = bills(openai_bill(D1, None, "0.000000000010"))  # 10 units of 1e-12 over three equal weights

    result = bill_spend(lines, bill, RESOLUTIONS).collect()

    shares = result.select("team", share=pl.col("cost_usd") + Decimal(1)).sort("team")
    assert shares["share"].to_list() == [Decimal("0.000000000004"), Decimal("0.000000000003"), Decimal("3E-12")]


def test_credit_a_negative_bill_is_allocated_exactly() -> None:
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "1"),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "b", "x", "2"),
    )
    bill = bills(openai_bill(D1, None, "-1"))

    result = bill_spend(lines, bill, RESOLUTIONS).collect().sort("team")

    # exact shares -1/3 and -2/3: floors -0.333333333334 and -0.666666666667, the unit left to the larger remainder
    assert result["cost_usd"].to_list() == [Decimal("-1.333333333333"), Decimal("-2.666666666667")]
    assert sum(result["cost_usd"]) + 3 == -1


def test_pool_above_the_weight_limit_still_sums_to_the_bill() -> None:
    big = "40000000.123456789012"  # $40M of priced usage in one pool-day: weights past 2**63 units
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", big),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "b", "x", big),
        (D1, "openai", "gateway", "gpt-4o", "gpt-4o", "c", "x", "0.000000000001"),
    )
    bill = bills(openai_bill(D1, None, "90000000.000000000001"))

    result = bill_spend(lines, bill, RESOLUTIONS).collect()

    assert sum(result["cost_usd"]) + 2 * Decimal(big) + Decimal("0.000000000001") == Decimal("90000000.000000000001")
    a, b = (Decimal(big) + c for c in result.sort("team")["cost_usd"][:2])
    assert abs(a - Decimal(45_000_000)) < Decimal("0.000001") and abs(a - b) <= Decimal("0.000000000001")


def test_no_bill_no_lines() -> None:
    lines = usage((D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "2"))

    result = bill_spend(lines, bills(), RESOLUTIONS).collect()

    assert result.height == 0
    assert result.columns == list(SPEND_LINE_COLUMNS)


def test_before_its_bill_a_day_shows_what_the_provider_reports_beyond_the_gateway_as_unobserved() -> None:
    # hunt H 5: $2.50 of gpt-4o the gateway never saw was in no team and no bucket until the bill was loaded
    lines = usage(
        (D1, "openai", "gateway", "gpt-4o-mini", "gpt-4o-mini", "a", "x", "0.15", 1_000_000),
        (D1, "openai", "openai-usage", "gpt-4o-mini", "gpt-4o-mini", None, None, "0.30", 2_000_000),  # 2x seen
        (D1, "openai", "openai-usage", "gpt-4o", "gpt-4o", None, None, "2.50", 1_000_000),  # never seen
    )

    result = bill_spend(lines, bills(), RESOLUTIONS).collect().sort("model")

    assert result.select("line_type", "model", "team", "feature", "cost_usd").rows() == [
        ("unobserved", "gpt-4o", "__unobserved__", "__unobserved__", Decimal("2.5")),
        ("unobserved", "gpt-4o-mini", "__unobserved__", "__unobserved__", Decimal("0.15")),
    ]
    assert set(result["price_source"]) == {"openai-usage usage 2025-01-02, list price"}


def test_lines_have_the_spend_lines_shape() -> None:
    lines = usage((D1, "openai", "gateway", "gpt-4o", "gpt-4o", "a", "x", "2"))

    result = bill_spend(lines, bills(openai_bill(D1, None, "3")), RESOLUTIONS).collect()

    assert result.columns == list(SPEND_LINE_COLUMNS)
    row = result.row(0, named=True)
    assert (row["kind"], row["request_id"], row["list_cost_usd"], row["requests"]) == ("tokens", None, None, 0)
    assert row["ts"] == datetime(2025, 1, 2, tzinfo=UTC)
    assert row["source"] == "openai-costs" and row["attribution"] == "bill: share of the priced usage"


# -------------------------------------------------------------------------------- conservation (property)

PROVIDERS = {"openai": ("openai-usage", "openai-costs"), "anthropic": ("anthropic-usage", "anthropic-costs")}
MODELS = {"m1": "m1", "m2": "m2", "m3-2024": "m3", "m4": None}  # as sent -> price_model (m4: unpriced)
PROPERTY_RESOLUTIONS = pl.LazyFrame(
    [{"provider": p, "model": m, "price_model": pm} for p in PROVIDERS for m, pm in MODELS.items()],
    schema={"provider": pl.String(), "model": pl.String(), "price_model": pl.String()},
)
money = st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False, allow_infinity=False)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    lines = []
    for _ in range(draw(st.integers(0, 14))):
        provider = draw(st.sampled_from(sorted(PROVIDERS)))
        model = draw(st.sampled_from(sorted(MODELS)))
        source = draw(st.sampled_from(["gateway", "litellm", PROVIDERS[provider][0]]))
        cost = None if MODELS[model] is None or draw(st.booleans()) and draw(st.booleans()) else draw(money)
        owner = draw(st.sampled_from(["a", "b", "c"]))
        tokens = draw(st.integers(0, 10_000_000))
        day = draw(st.sampled_from([D1, D2]))
        lines.append((day, provider, source, model, MODELS[model], owner, owner, cost, tokens))
    bill_rows = []
    for _ in range(draw(st.integers(0, 6))):
        provider = draw(st.sampled_from(sorted(PROVIDERS)))
        billed_model = draw(st.sampled_from([None, *sorted(MODELS), "m9"]))
        amount = draw(st.decimals(min_value=-5, max_value=1000, places=12, allow_nan=False, allow_infinity=False))
        item = f"{billed_model}, input" if provider == "openai" and billed_model else None
        named = billed_model if provider == "anthropic" else None
        bill_rows.append(
            (draw(st.sampled_from([D1, D2])), provider, PROVIDERS[provider][1], 1, item, named, None, amount)
        )
    return lines, bill_rows


def _counted(lines: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The reference rule: gateway-measured lines where a provider/day has any, else provider buckets."""
    gateway_days = {(r[0], r[1]) for r in lines if not r[2].endswith("-usage")}
    return [r for r in lines if ((r[0], r[1]) in gateway_days) != r[2].endswith("-usage")]


_NO_BILL = "provider usage the gateway did not see; no bill loaded"


def _unseen_reference(lines: list[tuple[Any, ...]]) -> dict[tuple[date, str], Decimal]:
    """What an unbilled gateway-measured provider/day adds as `__unobserved__`, per provider/day: per model, the
    provider's tokens beyond the gateway's at the gateway's price per token (in 1e-12 units, rounded down), or
    the buckets' own priced cost for a model the gateway never saw."""
    gateway_days = {(r[0], r[1]) for r in lines if not r[2].endswith("-usage")}
    models: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # seen, cost, told, cost
    for r in lines:
        if (r[0], r[1]) not in gateway_days:
            continue
        acc = models[(r[0], r[1], r[4] or r[3])]
        units = int((r[7] or 0) * 10**12)
        if r[2].endswith("-usage"):
            acc[2] += r[8]
            acc[3] += units
        else:
            acc[0] += r[8]
            acc[1] += units
    unseen: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for (day, provider, _), (seen, seen_cost, told, told_cost) in models.items():
        units = seen_cost * max(told - seen, 0) // seen if seen > 0 else told_cost
        if units > 0:
            unseen[(day, provider)] += Decimal(units) / 10**12
    return unseen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_conservation_each_billed_provider_day_totals_its_bill_else_its_priced_usage(
    scenario: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    lines, bill_rows = scenario

    result = bill_spend(usage(*lines), bills(*bill_rows), PROPERTY_RESOLUTIONS).collect()

    billed: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for r in bill_rows:
        billed[(r[0], r[1])] += r[7]
    total: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for r in _counted(lines):
        total[(r[0], r[1])] += r[7] or 0
    unseen = _unseen_reference(lines)  # an unbilled day: its priced usage and what the gateway did not see
    priced = {day: total.get(day, Decimal(0)) + unseen.get(day, Decimal(0)) for day in set(total) | set(unseen)}
    for line in result.iter_rows(named=True):
        total[(line["charge_day"], line["provider"])] += line["cost_usd"]
    for day in set(total) | set(billed):
        assert total.get(day, 0) == billed.get(day, priced.get(day, 0)), day
    assert result.filter(pl.col("attribution") == _NO_BILL)["team"].unique().to_list() in ([], ["__unobserved__"])
    assert result.filter(pl.col("cost_usd") == 0).height == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_conservation_adjustments_of_a_pool_sum_to_its_bill_less_the_priced_usage_it_takes_off(
    scenario: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    lines, bill_rows = scenario

    result = bill_spend(usage(*lines), bills(*bill_rows), PROPERTY_RESOLUTIONS).collect()

    pools: dict[tuple[date, str, str | None], Decimal] = defaultdict(Decimal)
    for r in bill_rows:
        name = r[5] or (r[4].split(",")[0] if r[4] else None)
        pools[(r[0], r[1], (MODELS.get(name) or name) if name else None)] += r[7]
    expected_sums = dict(pools)
    for r in _counted(lines):
        key = (r[0], r[1], r[4] or r[3])
        primary = key if key in pools else (r[0], r[1], None)  # a model pool, else the provider/day pool
        if primary in pools:
            expected_sums[primary] -= r[7] or 0
    got: dict[tuple[date, str, str | None], Decimal] = defaultdict(Decimal)
    for line in result.filter(~pl.col("attribution").is_in(["bill: not on the bill", _NO_BILL])).iter_rows(named=True):
        pool = line["price_source"].split(", ", 1)[1]
        got[(line["charge_day"], line["provider"], None if pool == "all models" else pool)] += line["cost_usd"]
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected_sums.items() if v}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False))
def test_shares_within_one_unit_of_the_exact_proportion_whatever_the_input_order(
    scenario: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]], rnd: random.Random
) -> None:
    lines, bill_rows = scenario
    shuffled = lines[:]
    rnd.shuffle(shuffled)

    result = bill_spend(usage(*lines), bills(*bill_rows), PROPERTY_RESOLUTIONS).collect()
    again = bill_spend(usage(*shuffled), bills(*bill_rows[::-1]), PROPERTY_RESOLUTIONS).collect()

    assert_frame_equal(result, again)
    # a pool over one provider/day of one day's model-free bill: each group's share is B x w / W, to 1e-12
    for (day, provider), amount in _model_free_bills(bill_rows).items():
        groups: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for r in _counted(lines):
            if (r[0], r[1]) == (day, provider):
                groups[(r[3], r[5])] += r[7] or 0
        weight = sum(groups.values()) + _blind_spot(lines, day, provider)
        if weight == 0:
            continue
        got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for line in result.filter(
            (pl.col("charge_day") == day)
            & (pl.col("provider") == provider)
            & pl.col("price_source").str.ends_with("all models")
        ).iter_rows(named=True):
            got[(line["model"], line["team"])] += line["cost_usd"]
        for key, w in groups.items():
            exact = Fraction(amount) * Fraction(w) / Fraction(weight)
            assert abs(Fraction(got[key] + w) - exact) < Fraction(1, 10**12), key


def _blind_spot(lines: list[tuple[Any, ...]], day: date, provider: str) -> Decimal:
    """The reference `__unobserved__` weight of a provider/day pool on a gateway-measured day, per model:
    gateway cost x (bucket tokens - gateway tokens) / gateway tokens, or the buckets' cost when the gateway
    saw no tokens of that model (in 1e-12 units, floored, as the job computes it)."""
    of_day = [r for r in lines if (r[0], r[1]) == (day, provider)]
    if all(r[2].endswith("-usage") for r in of_day):
        return Decimal(0)
    cost: dict[tuple[str, bool], int] = defaultdict(int)
    tokens: dict[tuple[str, bool], int] = defaultdict(int)
    for r in of_day:
        key = (r[4] or r[3], r[2].endswith("-usage"))
        cost[key] += int((r[7] or 0) * 10**12)
        tokens[key] += r[8]
    units = 0
    for model in {k for k, _ in cost}:
        seen, reported = tokens[(model, False)], tokens[(model, True)]
        units += cost[(model, False)] * max(reported - seen, 0) // seen if seen else cost[(model, True)]
    return Decimal(units) / 10**12


def _model_free_bills(bill_rows: list[tuple[Any, ...]]) -> dict[tuple[date, str], Decimal]:
    """Bills of provider/days whose rows name no model at all (one pool over the whole day)."""
    named = {(r[0], r[1]) for r in bill_rows if r[4] or r[5]}
    out: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for r in bill_rows:
        if (r[0], r[1]) not in named:
            out[(r[0], r[1])] += r[7]
    return out


# ------------------------------------------------------------------------------------- store, end to end

OPENAI = Path(__file__).resolve().parents[2] / "fixtures" / "raw" / "openai"
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def gateway_file(tmp_path: Path, day: date, *records: tuple[str, str, int, int]) -> Path:
    """Canonical gateway records (request_id, model, input, output) at noon UTC of `day`."""
    lines = [
        f'{{"request_id": "{rid}", "ts": "{day}T12:00:00Z", "model": "{model}", "provider": "openai", '
        f'"input_tokens": {inp}, "output_tokens": {out}, "team": "search", "feature": "chat"}}'
        for rid, model, inp, out in records
    ]
    return write_file(tmp_path, f"gateway-{day}-{records[0][0]}.jsonl", "\n".join(lines) + "\n")


def spend_by_day(db: Database, provider: str = "openai") -> dict[date, Decimal]:
    found = rows(
        db, "SELECT charge_day, sum(cost_usd) AS c FROM spend WHERE provider = $p GROUP BY ALL", {"p": provider}
    )
    return {r["charge_day"]: r["c"] for r in found}


def billed_by_day(db: Database) -> dict[date, Decimal]:
    found = rows(db, "SELECT charge_day, sum(amount_usd) AS b FROM provider_costs WHERE batch_id = 2 GROUP BY ALL")
    return {r["charge_day"]: r["b"] for r in found}


def bill_lines(db: Database) -> list[dict[str, Any]]:
    return rows(
        db,
        "SELECT * EXCLUDE (run_id) FROM spend_lines WHERE line_type IN ('bill_adjustment', 'unobserved', "
        "'provider_usage') ORDER BY ALL",
    )


@pytest.fixture
def openai_db(db: Database) -> Database:
    """The OpenAI fixtures: completions usage buckets (batch 1) and the Costs API by project (batch 2)."""
    ingest_one(db, OPENAI / "usage_completions_2025-01.jsonl", "openai-usage")
    ingest_one(db, OPENAI / "costs_2025-01.jsonl", "openai-costs")
    return db


def test_run_once_makes_each_openai_day_total_its_bill(openai_db: Database) -> None:
    run_once(openai_db, as_of=AS_OF)

    spend, billed = spend_by_day(openai_db), billed_by_day(openai_db)
    assert len(billed) == 28
    assert {day: spend.get(day) for day in billed} == billed
    day = rows(openai_db, "SELECT * FROM reconciliation WHERE provider = 'openai' AND charge_day = DATE '2025-01-02'")
    assert len(day) == 1 and day[0]["model"] is None and day[0]["billed_by"] == "provider_day"
    assert day[0]["measure"] == "provider_usage" and day[0]["gateway_cost_usd"] is None
    assert day[0]["billed_cost_usd"] == Decimal("6.550540510000") == day[0]["counted_cost_usd"]
    assert day[0]["diff_usd"] == day[0]["billed_cost_usd"] - day[0]["priced_cost_usd"] != 0


def test_reconciliation_shows_the_difference_per_model_with_an_itemised_bill(openai_db: Database) -> None:
    ingest_one(openai_db, OPENAI / "costs_2025-01-02_line_items.json", "openai-costs")

    run_once(openai_db, as_of=AS_OF)

    # the by-project pull of 2 January is the same money as the line items: counted once
    assert spend_by_day(openai_db)[D1] == Decimal("6.550540510000")
    recon = rows(
        openai_db,
        "SELECT model, priced_cost_usd, billed_cost_usd, superseded_billed_usd, counted_cost_usd, diff_usd, "
        "diff_pct FROM reconciliation WHERE provider = 'openai' AND charge_day = DATE '2025-01-02' ORDER BY model",
    )
    by_model = {r["model"]: r for r in recon}
    assert by_model["gpt-4o"]["diff_usd"] == 0 == by_model["gpt-4o-mini"]["diff_usd"]
    # o1-mini was billed at its January 2025 price ($3/$12), above today's catalog price
    o1 = by_model["o1-mini"]
    assert (o1["priced_cost_usd"], o1["billed_cost_usd"]) == (Decimal("0.812309300000"), Decimal("2.215389000000"))
    assert o1["diff_usd"] == Decimal("1.403079700000") and o1["counted_cost_usd"] == o1["billed_cost_usd"]
    assert o1["diff_pct"] == Decimal("172.7273")
    assert by_model[None]["superseded_billed_usd"] == Decimal("6.550540510000")
    assert by_model[None]["billed_cost_usd"] == 0


def test_reconciliation_has_rows_for_days_with_only_usage_or_only_a_bill(openai_db: Database, tmp_path: Path) -> None:
    ingest_one(openai_db, OPENAI / "costs_2025-01-02_line_items.json", "openai-costs")
    ingest_one(openai_db, gateway_file(tmp_path, date(2025, 2, 10), ("g1", "gpt-4o", 10_000, 1_000)), "gateway")

    run_once(openai_db, as_of=AS_OF)

    query = "SELECT * FROM reconciliation WHERE provider = 'openai' AND charge_day = $day AND model = $model"
    usage_only = rows(openai_db, query, {"day": date(2025, 2, 10), "model": "gpt-4o"})[0]
    assert (usage_only["billed_by"], usage_only["billed_cost_usd"], usage_only["diff_usd"]) == (None, None, None)
    assert usage_only["measure"] == "gateway" and usage_only["gateway_cost_usd"] == Decimal("0.035")
    assert usage_only["counted_cost_usd"] == usage_only["priced_cost_usd"] == usage_only["gateway_cost_usd"]
    bill_only = rows(openai_db, query, {"day": D1, "model": "text-embedding-3-small"})[0]
    assert (bill_only["priced_cost_usd"], bill_only["billed_cost_usd"]) == (None, Decimal("0.268794560000"))
    assert bill_only["counted_cost_usd"] == bill_only["diff_usd"] == bill_only["billed_cost_usd"]
    unobserved = rows(
        openai_db,
        "SELECT sum(cost_usd) AS c FROM spend WHERE team = '__unobserved__' AND model = "
        "'text-embedding-3-small' AND charge_day = DATE '2025-01-02'",
    )
    assert unobserved[0]["c"] == Decimal("0.268794560000")


def test_late_gateway_file_flips_the_provider_buckets_of_its_day(openai_db: Database, tmp_path: Path) -> None:
    run_once(openai_db, as_of=AS_OF)
    ingest_one(
        openai_db,
        gateway_file(tmp_path, D1, ("g1", "gpt-4o-2024-08-06", 100_000, 10_000), ("g2", "o1-mini", 50_000, 5_000)),
        "gateway",
    )

    run_once(openai_db, as_of=AS_OF)

    types = rows(
        openai_db,
        "SELECT charge_day, source, line_type, count(*) AS n FROM spend_lines WHERE line_type IN "
        "('usage', 'provider_usage') AND charge_day IN (DATE '2025-01-02', DATE '2025-01-03') GROUP BY ALL "
        "ORDER BY ALL",
    )
    assert [(r["charge_day"], r["source"], r["line_type"]) for r in types] == [
        (D1, "gateway", "usage"),
        (D1, "openai-usage", "provider_usage"),
        (D2, "openai-usage", "usage"),
    ]
    assert spend_by_day(openai_db)[D1] == billed_by_day(openai_db)[D1]
    teams = rows(openai_db, "SELECT DISTINCT team FROM spend WHERE charge_day = DATE '2025-01-02' ORDER BY team")
    assert [r["team"] for r in teams] == ["__unobserved__", "search"]  # the buckets show what it did not see
    recon = rows(
        openai_db,
        "SELECT measure, gateway_cost_usd, provider_usage_cost_usd, priced_cost_usd FROM reconciliation "
        "WHERE provider = 'openai' AND charge_day = DATE '2025-01-02'",
    )
    assert recon[0]["measure"] == "gateway" and recon[0]["priced_cost_usd"] == recon[0]["gateway_cost_usd"]
    assert recon[0]["provider_usage_cost_usd"] > recon[0]["gateway_cost_usd"]


def test_rebuilding_a_day_twice_gives_the_same_lines(openai_db: Database, tmp_path: Path) -> None:
    ingest_one(openai_db, gateway_file(tmp_path, D1, ("g1", "gpt-4o", 1_000, 100)), "gateway")
    run_once(openai_db, as_of=AS_OF)
    first = bill_lines(openai_db)

    rebuild_bill_lines(openai_db, [D1, D2], run_id=99)
    rebuild_bill_lines(openai_db, [D1, D2], run_id=100)

    assert bill_lines(openai_db) == first
    assert spend_by_day(openai_db)[D1] == billed_by_day(openai_db)[D1]


def test_restated_provider_bucket_replaces_its_line_not_adds_one(openai_db: Database, tmp_path: Path) -> None:
    ingest_one(openai_db, gateway_file(tmp_path, D1, ("g1", "gpt-4o", 1_000, 100)), "gateway")
    run_once(openai_db, as_of=AS_OF)
    page = (OPENAI / "usage_completions_2025-01.jsonl").read_text().splitlines()[0]
    restated = write_file(tmp_path, "restated.jsonl", page.replace('"input_tokens":1766117', '"input_tokens":1766118'))
    ingest_one(openai_db, restated, "openai-usage")

    run_once(openai_db, as_of=AS_OF)

    counts = rows(
        openai_db,
        "SELECT usage_key, count(*) AS n FROM spend_lines WHERE usage_key IS NOT NULL GROUP BY ALL HAVING n > 1",
    )
    assert counts == []
    assert spend_by_day(openai_db)[D1] == billed_by_day(openai_db)[D1]
