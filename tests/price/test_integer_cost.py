"""The integer cost (Int64 at 1e-12, or Int128 at 1e-24 rounded half-even) equals the Decimal cost exactly."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.price.catalog import PRICE_COLUMNS
from finops.price.cost import PER_TOKEN, cost_expr, in_mode, integer_cost, integer_mode, token_counts, unit_prices

PRICES = [f"_p_{c}" for c in PRICE_COLUMNS if c != "requests_kusd"] + ["_p_request"]
TOKENS = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens"]
TOKENS += ["output_tokens", "reasoning_tokens", "requests"]

# per-token prices: whole 1e-12 dollars (the common case), catalog float residue like
# 0.18000000000000002 $/M, exact ties at the 13th digit, and missing prices (fallbacks)
price = st.one_of(
    st.none(),
    st.integers(0, 10**9).map(lambda n: Decimal(n).scaleb(-12)),
    st.integers(0, 10**21).map(lambda n: Decimal(n).scaleb(-24)),
    st.integers(0, 10**9).map(lambda n: Decimal(n).scaleb(-12) + Decimal("5e-13")),
)


@st.composite
def records(draw: st.DrawFn, big: bool) -> dict[str, object]:
    top = 10**13 if big else 10**7
    inp = draw(st.integers(0, top))
    cached = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - cached))
    out = draw(st.integers(0, top))
    row: dict[str, object] = {
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": draw(st.integers(0, write)),
        "output_tokens": out,
        "reasoning_tokens": draw(st.integers(0, out)),
        "requests": draw(st.integers(0, 3)),
        "price_source": draw(st.sampled_from(["catalog", None])),
    }
    return row | {p: draw(price) for p in PRICES}


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    schema = {t: pl.Int64() for t in TOKENS} | {"price_source": pl.String()} | {p: PER_TOKEN for p in PRICES}
    return pl.DataFrame(rows, schema=schema, orient="row")


def check(rows: list[dict[str, object]]) -> None:
    data = frame(rows)
    expected = data.select(cost=cost_expr())["cost"]
    units = data.lazy().pipe(unit_prices).collect()
    largest = data.select(pl.sum_horizontal(t.abs() for t in token_counts()).max()).item()
    mode = integer_mode(units, int(largest or 0))
    got = in_mode(units, mode).select(cost=integer_cost(mode))["cost"]
    assert got.to_list() == expected.to_list(), mode
    wide = in_mode(units, "int128").select(cost=integer_cost("int128"))["cost"]
    assert wide.to_list() == expected.to_list()


@settings(max_examples=150, deadline=None)
@given(st.lists(records(big=False), min_size=1, max_size=30))
def test_integer_cost_equals_decimal_cost(rows: list[dict[str, object]]) -> None:
    check(rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(records(big=True), min_size=1, max_size=10))
def test_integer_cost_equals_decimal_cost_for_huge_provider_buckets(rows: list[dict[str, object]]) -> None:
    check(rows)


def test_whole_prices_and_modest_counts_take_the_int64_path() -> None:
    rows = [{**{t: 10 for t in TOKENS}, "price_source": "c", **{p: Decimal("2.5e-6") for p in PRICES}}]
    units = frame(rows).lazy().pipe(unit_prices).collect()
    assert integer_mode(units, 1_000_000) == "int64"
    assert integer_mode(units, 10**16) == "int128"  # 1e16 tokens x 2.5e6 units would overflow an Int64
    odd = frame([{**rows[0], "_p_input_mtok": Decimal("0.180000000000000020e-6")}]).lazy().pipe(unit_prices).collect()
    assert integer_mode(odd, 10) == "int128"
