"""Token spend conserves money: every record in is one line out, every priced dollar lands with a team or a
named bucket, costs are never negative, and running the job again gives the same frame."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from finops.attribute.owners import RULE_SCHEMA, assign_owner
from finops.attribute.tokens import TOKEN_LINE_COLUMNS, apply_discounts, encode_dimensions, token_spend
from finops.price.catalog import catalog_rows
from finops.price.cost import price_usage
from finops.price.overrides import DISCOUNT_SCHEMA
from finops.price.resolve import resolve_models

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-flash"),
    ("openai", "o3"),
    ("openai", "not-a-model"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
]
KEYS = ["k-a", "k-b", "svc-x-1", None]
DAYS = [datetime(2026, 9, 30), datetime(2026, 10, 1), datetime(2026, 11, 20)]


@cache
def catalog() -> pl.DataFrame:
    return catalog_rows()


@st.composite
def usage_frames(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(1, 40))
    records = []
    for i in range(n):
        provider, model = draw(st.sampled_from(MODELS))
        inp = draw(st.integers(0, 300_000))
        cached = draw(st.integers(0, inp))
        out = draw(st.integers(0, 20_000))
        records.append(
            {
                "key_hi": 7,
                "key_lo": i,
                "content_hash": i,
                "source": "gateway",
                "request_id": f"r{i}",
                # a few days only, so that records share price and owner combinations
                "ts": draw(st.sampled_from(DAYS)) + timedelta(seconds=draw(st.integers(0, 86_399))),
                "provider": provider,
                "model": model,
                "team": draw(st.sampled_from([None, "support"])),
                "feature": draw(st.sampled_from([None, "chat"])),
                "project": draw(st.sampled_from([None, "p1"])),
                "user": None,
                "api_key": draw(st.sampled_from(KEYS)),
                "tags": draw(st.sampled_from([None, '{"app": "ui"}'])),
                "trace_id": None,
                "prompt_hash": None,
                "latency_ms": None,
                "attempt": 1,
                "status": "200",
                "service_tier": draw(st.sampled_from([None, "batch", "flex"])),
                "input_tokens": inp,
                "cached_input_tokens": cached,
                "cache_write_tokens": 0,
                "cache_write_1h_tokens": 0,
                "output_tokens": out,
                "reasoning_tokens": draw(st.integers(0, out)),
                "requests": 1,
            }
        )
    frame = pl.DataFrame(records).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC"), pl.col("key_hi", "key_lo").cast(pl.UInt64)
    )
    return frame.with_columns(charge_day=pl.col("ts").dt.date())


RULES = pl.DataFrame(
    [
        ("api_key", "k-a", "team-a", None, None, None, "t"),
        ("project", "p1", "team-p", "feat-p", None, None, "t"),
        ("tag", "app=ui", None, "ui", None, None, "t"),
        ("api_key_pattern", "svc-*", "svc", None, None, None, "t"),
    ],
    schema=RULE_SCHEMA,
    orient="row",
)
DISCOUNTS = pl.DataFrame(
    [("openai", "gpt-4o*", Decimal("20"), date(2026, 10, 1), None, "d")], schema=DISCOUNT_SCHEMA, orient="row"
)


def spend(usage: pl.DataFrame) -> pl.DataFrame:
    resolutions = resolve_models(usage).lazy()
    lines = token_spend(usage.lazy(), resolutions, catalog().lazy(), DISCOUNTS.lazy(), RULES.lazy()).collect()
    assert lines.schema["team"] == pl.Categorical()  # decided per combination, handed out as codes
    return lines.with_columns(pl.col(pl.Categorical()).cast(pl.String()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_frames())
def test_token_spend_conserves_every_priced_dollar(usage: pl.DataFrame) -> None:
    lines = spend(usage)
    priced = price_usage(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy()).collect()

    assert lines.height == usage.height
    assert list(lines.columns) == list(TOKEN_LINE_COLUMNS)
    assert lines["team"].null_count() == 0 and lines["feature"].null_count() == 0
    assert lines["list_cost_usd"].sum() == priced["list_cost_usd"].sum()
    assert (lines["cost_usd"].drop_nulls() >= 0).all()
    assert (lines["cost_usd"].drop_nulls() <= lines["list_cost_usd"].drop_nulls()).all()
    by_owner = lines.group_by("team", "feature").agg(pl.col("list_cost_usd").sum())["list_cost_usd"].sum()
    assert by_owner == lines["list_cost_usd"].sum()
    assert (
        lines.filter(pl.col("price_model").is_null())["cost_usd"].null_count()
        == usage.filter(pl.col("model") == "not-a-model").height
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_frames())
def test_token_spend_is_deterministic(usage: pl.DataFrame) -> None:
    first = spend(usage).sort("key_lo")
    second = spend(usage.sample(fraction=1.0, shuffle=True, seed=1)).sort("key_lo")

    assert_frame_equal(first, second)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_frames())
def test_deciding_once_per_combination_equals_deciding_per_record(usage: pl.DataFrame) -> None:
    """The job decides price, discount and owner once per distinct combination and joins back; the answer
    must be what each record gets on its own (long-context, time-of-day, tiers, rules and discounts)."""
    lines = spend(usage).sort("key_lo")
    per_record = (
        price_usage(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy())
        .pipe(apply_discounts, DISCOUNTS.lazy())
        .pipe(assign_owner, RULES.lazy())
        .collect()
        .sort("key_lo")
    )
    columns = [
        "key_lo",
        "price_model",
        "team",
        "feature",
        "attribution",
        "list_cost_usd",
        "cost_usd",
        "price_source",
    ]
    assert_frame_equal(lines.select(columns), per_record.select(columns))


def test_records_that_share_everything_but_context_size_or_hour_get_their_own_price() -> None:
    rows = []
    for i, (provider, model, inp, hour) in enumerate(
        [
            ("google", "gemini-2.5-pro", 1_000, 12),
            ("google", "gemini-2.5-pro", 250_000, 12),  # above the 200k threshold: the whole request at the high rate
            ("anthropic", "claude-sonnet-4-5", 1_000, 3),
            ("anthropic", "claude-sonnet-4-5", 300_000, 3),
            ("deepseek", "deepseek-chat", 1_000, 12),
            ("deepseek", "deepseek-chat", 1_000, 17),  # off-peak hours (16:30-00:30 UTC)
        ]
    ):
        rows.append(
            {
                "key_hi": 7,
                "key_lo": i, "content_hash": i, "source": "gateway", "request_id": f"r{i}",
                "ts": datetime(2026, 11, 1, hour), "provider": provider, "model": model, "team": "t", "feature": "f",
                "project": None, "user": None, "api_key": None, "tags": None, "trace_id": None, "prompt_hash": None,
                "latency_ms": None, "attempt": 1, "status": "200", "service_tier": None, "input_tokens": inp,
                "cached_input_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "output_tokens": 0,
                "reasoning_tokens": 0, "requests": 1,
            }
        )  # fmt: skip
    usage = pl.DataFrame(rows).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC"), pl.col("key_hi", "key_lo").cast(pl.UInt64)
    )
    usage = usage.with_columns(charge_day=pl.col("ts").dt.date())

    lines = spend(usage).sort("key_lo")
    reference = price_usage(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy()).collect().sort("key_lo")

    assert lines["list_cost_usd"].to_list() == reference["list_cost_usd"].to_list()
    per_token = (lines["list_cost_usd"] / usage.sort("key_lo")["input_tokens"].cast(pl.Decimal(38, 0))).to_list()
    assert per_token[1] > per_token[0] * Decimal("1.1")  # long-context rate, not the base rate
    assert per_token[3] > per_token[2] * Decimal("1.1")
    assert lines["list_cost_usd"][4] != lines["list_cost_usd"][5]  # DeepSeek peak vs off-peak


def _one_record(**fields: object) -> pl.DataFrame:
    record = {
        "key_hi": 7, "key_lo": 1, "ts": datetime(2026, 11, 1, 12), "provider": "openai", "model": "gpt-4o-mini",
        "team": None, "feature": None, "project": None, "api_key": "k-a", "tags": None, "service_tier": None,
        "input_tokens": 1_000, "cached_input_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
        "output_tokens": 10, "reasoning_tokens": 0, "requests": 1, **fields,
    }  # fmt: skip
    frame = pl.DataFrame([record]).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC"), pl.col("key_hi", "key_lo").cast(pl.UInt64)
    )
    return frame.with_columns(charge_day=pl.col("ts").dt.date())


def test_dimensions_without_a_column_the_rules_read_are_refused() -> None:
    usage = _one_record()
    records, dims = encode_dimensions(usage.lazy(), ("provider", "model", "service_tier", "team", "feature"))
    with pytest.raises(ValueError, match="api_key"):  # RULES read api keys, projects and tags
        token_spend(records, resolve_models(usage).lazy(), catalog().lazy(), DISCOUNTS.lazy(), RULES.lazy(), dims)


def test_charge_days_outside_the_packed_range_are_refused() -> None:
    usage = _one_record(ts=datetime(1969, 12, 31, 12))
    with pytest.raises(ValueError, match="1970 to 2327"):
        token_spend(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy(), DISCOUNTS.lazy(), RULES.lazy())
