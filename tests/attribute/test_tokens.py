"""Token spend conserves money: every record in is one line out, every priced dollar lands with a team or a
named bucket, costs are never negative, and running the job again gives the same frame."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import cache

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from finops.attribute.owners import RULE_SCHEMA
from finops.attribute.tokens import SPEND_LINE_COLUMNS, token_spend
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
]
KEYS = ["k-a", "k-b", "svc-x-1", None]


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
                "key_hash": Decimal(i),
                "content_hash": i,
                "source": "gateway",
                "request_id": f"r{i}",
                "ts": draw(st.datetimes(min_value=datetime(2026, 9, 1), max_value=datetime(2026, 11, 30))),
                "provider": provider,
                "model": model,
                "team": draw(st.sampled_from([None, "support"])),
                "feature": draw(st.sampled_from([None, "chat"])),
                "project": draw(st.sampled_from([None, "p1"])),
                "user": None,
                "api_key": draw(st.sampled_from(KEYS)),
                "tags": draw(st.sampled_from([None, '{"app": "ui"}'])),
                "trace_id": None, "prompt_hash": None, "latency_ms": None,
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
        pl.col("ts").dt.replace_time_zone("UTC"), pl.col("key_hash").cast(pl.Decimal(38, 0))
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
    return token_spend(usage.lazy(), resolutions, catalog().lazy(), DISCOUNTS.lazy(), RULES.lazy()).collect()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_frames())
def test_token_spend_conserves_every_priced_dollar(usage: pl.DataFrame) -> None:
    lines = spend(usage)
    priced = price_usage(usage.lazy(), resolve_models(usage).lazy(), catalog().lazy()).collect()

    assert lines.height == usage.height
    assert list(lines.columns) == list(SPEND_LINE_COLUMNS)
    assert lines["team"].null_count() == 0 and lines["feature"].null_count() == 0
    assert lines["list_cost_usd"].sum() == priced["list_cost_usd"].sum()
    assert (lines["cost_usd"].drop_nulls() >= 0).all()
    assert (lines["cost_usd"].drop_nulls() <= lines["list_cost_usd"].drop_nulls()).all()
    by_owner = lines.group_by("team", "feature").agg(pl.col("list_cost_usd").sum())["list_cost_usd"].sum()
    assert by_owner == lines["list_cost_usd"].sum()
    assert (
        lines.filter(pl.col("model") == "not-a-model")["cost_usd"].null_count()
        == usage.filter(pl.col("model") == "not-a-model").height
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_frames())
def test_token_spend_is_deterministic(usage: pl.DataFrame) -> None:
    first = spend(usage).sort("request_id")
    second = spend(usage.sample(fraction=1.0, shuffle=True, seed=1)).sort("request_id")

    assert_frame_equal(first, second)
