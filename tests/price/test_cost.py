"""The cost of a record equals what genai-prices' own `calc_price` charges for the same usage and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import polars as pl
import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.price.catalog import TIER_CONTEXT, catalog_rows
from finops.price.cost import price_usage
from finops.price.resolve import resolve_models

TWELVE = Decimal("1e-12")
# first-party providers' models as logs name them: dated snapshots, aliases, gateway prefixes
MODELS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("openai", "gpt-5"),
    ("openai", "o1-mini"),
    ("openai", "text-embedding-3-small"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-1.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("deepseek", "deepseek-reasoner"),
    ("mistral", "mistral-large-latest"),
    ("perplexity", "sonar"),
    ("x-ai", "grok-3"),
]


@cache
def catalog() -> pl.DataFrame:
    return catalog_rows()


def priced(rows: list[dict[str, object]]) -> list[Decimal | None]:
    usage = (
        pl.DataFrame(rows)
        .with_row_index("_id")
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC"), requests=pl.lit(1, pl.Int64))
        .with_columns(charge_day=pl.col("ts").dt.date())
    )
    out = price_usage(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy()).collect().sort("_id")
    return out["list_cost_usd"].to_list()


def expected(row: dict[str, object]) -> Decimal:
    usage = Usage(
        input_tokens=row["input_tokens"],
        cache_read_tokens=row["cached_input_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        output_tokens=row["output_tokens"],
        output_reasoning_tokens=row["reasoning_tokens"],
    )
    result = calc_price(
        usage,
        str(row["model"]),
        provider_id=str(row["provider"]),
        genai_request_timestamp=row["ts"],  # type: ignore[arg-type]
        price_context=TIER_CONTEXT[str(row["service_tier"])],
    )
    return result.total_price.quantize(TWELVE)


@st.composite
def usages(draw: st.DrawFn) -> dict[str, object]:
    provider, model = draw(st.sampled_from(MODELS))
    inp = draw(st.integers(0, 1_200_000))
    cached = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - cached))
    write_1h = draw(st.integers(0, write))
    out = draw(st.integers(0, 100_000))
    reasoning = draw(st.integers(0, out))
    day = draw(st.integers(0, 2 * 365))
    seconds = draw(st.integers(0, 86_399))
    return {
        "provider": provider,
        "model": model,
        "service_tier": draw(st.sampled_from(list(TIER_CONTEXT))),
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": write_1h,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
        "ts": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day, seconds=seconds),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(usages(), min_size=1, max_size=25))
def test_cost_equals_genai_prices_calc_price(rows: list[dict[str, object]]) -> None:
    assert priced(rows) == [expected(r) for r in rows]


@pytest.mark.parametrize(
    ("model", "input_tokens", "expected_cost"),
    [
        # Anthropic and Google charge the whole request at the higher rate once input passes 200k,
        # and the boundary is exclusive: 200,000 tokens is still the base rate
        ("claude-sonnet-4-5", 200_000, Decimal("0.600000000000")),
        ("claude-sonnet-4-5", 200_001, Decimal("1.200006000000")),
        ("gemini-2.5-pro", 200_000, Decimal("0.250000000000")),
        ("gemini-2.5-pro", 200_001, Decimal("0.500002500000")),
    ],
)
def test_long_context_tier_prices_the_whole_request(model: str, input_tokens: int, expected_cost: Decimal) -> None:
    provider = "anthropic" if model.startswith("claude") else "google"
    row = {
        "provider": provider,
        "model": model,
        "service_tier": "default",
        "input_tokens": input_tokens,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "ts": datetime(2026, 11, 1, tzinfo=UTC),
    }

    assert priced([row]) == [expected_cost] == [expected(row)]


def test_one_token_at_ten_cents_a_million_is_not_zero() -> None:
    row = {
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "service_tier": "default",
        "input_tokens": 1,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "ts": datetime(2026, 11, 1, tzinfo=UTC),
    }

    assert priced([row]) == [Decimal("0.000000100000")]


def test_unknown_model_keeps_a_null_cost() -> None:
    row = {
        "provider": "openai",
        "model": "gpt-9-turbo-imaginary",
        "service_tier": "default",
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 10,
        "reasoning_tokens": 0,
        "ts": datetime(2026, 11, 1, tzinfo=UTC),
    }

    assert priced([row]) == [None]


def test_deepseek_peak_and_off_peak_hours() -> None:
    base = {
        "provider": "deepseek",
        "model": "deepseek-chat",
        "service_tier": "default",
        "input_tokens": 1_000_000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
    }
    rows = [{**base, "ts": datetime(2026, 11, 1, h, 0, tzinfo=UTC)} for h in (0, 1, 16, 17)]

    assert priced(rows) == [expected(r) for r in rows]
    assert len(set(priced(rows))) == 2
