"""The user's `model` prices over the catalog: an override in force is the whole price of its model, whatever
the request's tier, size or hour, and it prices records that name its model without a provider."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from finops.price.catalog import TIER_CONTEXT
from finops.price.cost import price_usage
from finops.price.overlay import overlay_overrides
from finops.price.overrides import read_overrides
from finops.price.resolve import resolve_models
from tests.helpers import write_file
from tests.price.test_cost import catalog

HEADER = (
    "kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,"
    "output_mtok,gpu_type,cluster,hourly_usd,note\n"
)
DAY = datetime(2026, 10, 20, 10, tzinfo=UTC)
# catalog models with tier variants starting after 2026-09-01, long-context levels or time-of-day windows
CATALOG_MODELS = [
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
]


def overrides(tmp_path: Path, body: str) -> pl.DataFrame:
    return read_overrides(write_file(tmp_path, "p.csv", HEADER + body)).prices


def record(provider: str | None, model: str, **fields: object) -> dict[str, object]:
    return {
        "provider": provider,
        "model": model,
        "service_tier": "default",
        "input_tokens": 1_000_000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "ts": DAY,
        **fields,
    }


def priced(rows: list[dict[str, object]], own: pl.DataFrame, *, cached_overrides: bool = True) -> pl.DataFrame:
    """`list_cost_usd` and `price_source` of each row, priced with the catalog and `own` override rows;
    `cached_overrides=False` resolves the names as a cache filled before the overrides file existed."""
    usage = (
        pl.DataFrame(rows, schema_overrides={"provider": pl.String(), "ts": pl.Datetime("us", "UTC")})
        .with_row_index("_id")
        .with_columns(requests=pl.lit(1, pl.Int64), charge_day=pl.col("ts").dt.date())
    )
    resolutions = resolve_models(usage, overrides=own if cached_overrides else None)
    prices = pl.concat([catalog(), own])
    out = price_usage(usage.lazy(), resolutions.lazy(), prices.lazy()).collect().sort("_id")
    return out.select("list_cost_usd", "price_source")


def costs(*pairs: tuple[str | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [(Decimal(c) if c is not None else None, s) for c, s in pairs],
        schema={"list_cost_usd": pl.Decimal(38, 12), "price_source": pl.String()},
        orient="row",
    )


def test_a_model_override_prices_every_tier_of_a_catalog_model_3(tmp_path: Path) -> None:
    # the catalog's batch (from 2026-10-14) and priority (2026-10-12) rows start after the override
    own = overrides(tmp_path, "model,openai,gpt-4o,2026-09-01,,,1,,,1,,,,negotiated flat price\n")

    result = priced([record("openai", "gpt-4o", service_tier=tier) for tier in TIER_CONTEXT], own)

    assert_frame_equal(result, costs(*[("1", "p.csv line 2")] * 4))


def test_a_model_override_prices_long_context_requests_too_3(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,anthropic,claude-sonnet-4-5,2026-09-01,,,1,,,1,,,,negotiated flat price\n")

    result = priced(
        [record("anthropic", "claude-sonnet-4-5", input_tokens=n) for n in (100_000, 200_001, 300_000)], own
    )

    assert_frame_equal(result, costs(("0.1", "p.csv line 2"), ("0.200001", "p.csv line 2"), ("0.3", "p.csv line 2")))


def test_a_model_override_prices_peak_hours_too_3(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,deepseek,deepseek-chat,2026-09-01,,,1,,,1,,,,\n")
    peak, off_peak = DAY.replace(hour=10), DAY.replace(hour=20)  # DeepSeek's two time-of-day windows

    result = priced([record("deepseek", "deepseek-chat", ts=t) for t in (peak, off_peak)], own)

    assert_frame_equal(result, costs(("1", "p.csv line 2"), ("1", "p.csv line 2")))


def test_outside_its_validity_the_catalog_prices_the_model_3(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,openai,gpt-4o,2026-09-01,2026-10-15,,1,,,1,,,,\n")
    days = [datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 10, 14, tzinfo=UTC), datetime(2026, 10, 15, tzinfo=UTC)]

    result = priced([record("openai", "gpt-4o", service_tier="batch", ts=d) for d in days], own)

    catalog_source = str(catalog()["source"][0])
    # before 2026-10-14 the catalog's batch price is its standard one; from then on its batch variant
    assert_frame_equal(result, costs(("2.5", catalog_source), ("1", "p.csv line 2"), ("1.25", catalog_source)))


def test_a_dated_snapshot_the_catalog_resolves_to_the_model_gets_its_override_3(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,openai,gpt-4o,2026-09-01,,,1,,,1,,,,\n")

    result = priced([record("openai", "gpt-4o-2024-08-06", service_tier="priority")], own)

    assert_frame_equal(result, costs(("1", "p.csv line 2")))


def test_another_provider_of_the_same_model_name_keeps_its_catalog_price_3(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,anthropic,claude-sonnet-4-5,2026-09-01,,,1,,,1,,,,\n")

    result = priced([record("google", "claude-sonnet-4-5")], own)

    assert result["price_source"].to_list() != ["p.csv line 2"]


def test_without_overrides_the_catalog_rows_are_unchanged_3() -> None:
    rows = catalog().lazy()

    assert_frame_equal(overlay_overrides(rows).collect(), catalog(), check_row_order=False)


@cache
def flat_prices() -> pl.DataFrame:
    """An override of each of CATALOG_MODELS at 0.70 input and 3.30 output per million, from 2026-09-01."""
    body = "".join(f"model,{p},{m},2026-09-01,,,0.7,,,3.3,,,,\n" for p, m in CATALOG_MODELS)
    with tempfile.TemporaryDirectory() as directory:
        return read_overrides(write_file(Path(directory), "p.csv", HEADER + body)).prices


@st.composite
def requests(draw: st.DrawFn) -> dict[str, object]:
    provider, model = draw(st.sampled_from(CATALOG_MODELS))
    inp = draw(st.integers(0, 1_200_000))
    cached = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - cached))
    out = draw(st.integers(0, 100_000))
    ts = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 400 * 86_400)))
    return record(
        provider,
        model,
        service_tier=draw(st.sampled_from(list(TIER_CONTEXT))),
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_write_tokens=write,
        cache_write_1h_tokens=draw(st.integers(0, write)),
        output_tokens=out,
        reasoning_tokens=draw(st.integers(0, out)),
        ts=ts,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(requests(), min_size=1, max_size=20))
def test_an_override_in_force_is_the_whole_price_of_its_model_3(rows: list[dict[str, object]]) -> None:
    result = priced(rows, flat_prices())

    # every kind of input token falls back to the input price, reasoning to the output price
    expected = [
        ((Decimal("0.7") * int(r["input_tokens"]) + Decimal("3.3") * int(r["output_tokens"])) / 10**6).quantize(
            Decimal("1e-12")
        )
        for r in rows
    ]
    assert result["list_cost_usd"].to_list() == expected
    assert set(result["price_source"]) <= {f"p.csv line {i + 2}" for i in range(len(CATALOG_MODELS))}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\n", ("1", "p.csv line 2")),
        ("model,,llama-internal,2026-10-01,,,1,,,2,,,,\n", ("1", "p.csv line 2")),
        # the name is priced by two providers that day: which one the record meant is unknown
        (
            "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\nmodel,lab,llama-internal,2026-10-01,,,5,,,5,,,,\n",
            (None, None),
        ),
        # the other provider's price is not in force on the record's day
        (
            "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\nmodel,lab,llama-internal,2026-11-01,,,5,,,5,,,,\n",
            ("1", "p.csv line 2"),
        ),
        ("model,selfhosted,llama-internal,2026-11-01,,,1,,,2,,,,\n", (None, None)),
    ],
    ids=["one-provider", "any-provider", "two-providers", "other-not-in-force", "not-in-force"],
)
@pytest.mark.parametrize("cached_overrides", [True, False], ids=["resolved-with-overrides", "resolved-before"])
def test_a_record_without_provider_is_priced_by_the_one_override_of_its_name_12(
    tmp_path: Path, body: str, expected: tuple[str | None, str | None], cached_overrides: bool
) -> None:
    own = overrides(tmp_path, body)

    result = priced(
        [record(None, "llama-internal", ts=datetime(2026, 10, 5, 10, tzinfo=UTC))],
        own,
        cached_overrides=cached_overrides,
    )

    assert_frame_equal(result, costs(expected))


def test_an_override_added_after_the_name_was_resolved_prices_it_12(tmp_path: Path) -> None:
    own = overrides(tmp_path, "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\n")

    result = priced([record("selfhosted", "llama-internal", output_tokens=1_000_000)], own, cached_overrides=False)

    assert_frame_equal(result, costs(("3", "p.csv line 2")))


def test_resolution_of_a_name_two_providers_price_follows_the_record_provider_12(tmp_path: Path) -> None:
    own = overrides(
        tmp_path,
        "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,\nmodel,lab,llama-internal,2026-10-01,,,5,,,5,,,,\n",
    )
    pairs = pl.DataFrame(
        {"provider": ["selfhosted", "lab", None], "model": ["llama-internal"] * 3},
        schema_overrides={"provider": pl.String()},
    )

    resolved = resolve_models(pairs, overrides=own).sort("provider", nulls_last=True)

    assert resolved.select("price_provider", "price_model").rows() == [
        ("lab", "llama-internal"),
        ("selfhosted", "llama-internal"),
        (None, None),
    ]
