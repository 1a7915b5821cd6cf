"""Token spend: price every usage record and attribute it to a team and feature (a polars job, no I/O).

Order of operations:
  1. price each record with the catalog row in force on its UTC day (`finops.price.cost`);
  2. apply the negotiated discount in force for its provider and model, if any: cost = list x (1 - pct);
  3. resolve its owner (`finops.attribute.owners`): the record's own team/feature, else the rules,
     else `__unattributed__`;
  4. hand back what was decided per record (`TOKEN_LINE_COLUMNS`, keyed by the record's 126-bit key in two
     UInt64 halves): the store writes the `spend_lines` row (line_type 'usage', kind 'tokens') from it and
     the record's own columns.
Invariant: one line per record in, one line out; a record with no price keeps cost NULL (`__unpriced__`).
The text columns decided per combination (price_model, price_source, team, feature, attribution) come
out as Categorical; DuckDB takes them as VARCHAR.

How it stays fast: steps 1-3 depend on a record only through a few columns (provider, model, tier, UTC
day, the owner columns the rules read, and which context threshold and time-of-day window it falls
in). Those make one combination key, the decisions are taken once per distinct combination (thousands,
for millions of records), and one lookup of the key brings them back; the only per-record arithmetic is
the cost itself.

The text columns of a record (`DIMENSION_COLUMNS`) come dictionary-encoded: each record carries the
number `dim` of its text tuple and a small frame holds the distinct tuples (`dimensions`). The store has
DuckDB do this as it scans (`finops.store.spend.read_usage`), so no text is copied per record;
`encode_dimensions` does the same in polars for a frame that has the text. The combination key is exact
arithmetic, not a hash: `dim`, UTC day, bucket flag and bands packed into one Int64. Only the text
columns the decisions read need encoding (`needed_dimensions`): fewer columns, fewer combinations.
"""

from __future__ import annotations

import fnmatch
from datetime import date
from decimal import Decimal

import polars as pl

from finops.attribute.owners import assign_owner, owner_keys
from finops.price.cost import (
    COST,
    UNIT_PRICES,
    in_mode,
    integer_cost,
    integer_mode,
    price_bands,
    price_rows,
    unit_prices,
)

__all__ = [
    "DIMENSION_COLUMNS",
    "SPEND_LINE_COLUMNS",
    "TOKEN_LINE_COLUMNS",
    "apply_discounts",
    "discount_factors",
    "encode_dimensions",
    "needed_dimensions",
    "token_spend",
]

# the text columns of a usage record that pricing and the ownership rules read, dictionary-encoded
DIMENSION_COLUMNS = (
    "provider",
    "model",
    "service_tier",
    "context_window",
    "team",
    "feature",
    "project",
    "api_key",
    "tags",
)
_PRICE_TEXT = ("provider", "model", "service_tier", "context_window")


def needed_dimensions(rules: pl.DataFrame) -> tuple[str, ...]:
    """The text columns pricing and these ownership rules read (the others need not be encoded)."""
    owners = set(owner_keys(rules))
    return tuple(c for c in DIMENSION_COLUMNS if c in _PRICE_TEXT or c in owners)


SPEND_LINE_COLUMNS = (
    "line_type",
    "kind",
    "usage_key",
    "usage_content",
    "ts",
    "charge_day",
    "source",
    "provider",
    "model",
    "price_model",
    "service_tier",
    "team",
    "feature",
    "project",
    "user",
    "attribution",
    "list_cost_usd",
    "cost_usd",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "requests",
    "gpu_type",
    "gpu_seconds",
    "trace_id",
    "request_id",
    "attempt",
    "status",
    "price_source",
    "prompt_hash",
    "latency_ms",
)
# what the token job decides per record; the store takes every other `spend_lines` column of a token line
# from the record itself (`usage_events`, joined on the key), so only these travel back to DuckDB
TOKEN_LINE_COLUMNS = (
    "key_hi",
    "key_lo",
    "charge_day",
    "price_model",
    "team",
    "feature",
    "attribution",
    "list_cost_usd",
    "cost_usd",
    "price_source",
)


def token_spend(
    usage: pl.LazyFrame,
    resolutions: pl.LazyFrame,
    prices: pl.LazyFrame,
    discounts: pl.LazyFrame,
    rules: pl.LazyFrame,
    dimensions: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """`spend_lines` rows for usage records (see the module docstring for the order of operations).

    `usage` holds either the text columns themselves, or (with `dimensions`: `dim` and the text columns of
    each distinct tuple) each record's `dim` instead."""
    price_table, rule_table = prices.collect(), rules.collect()
    needed = needed_dimensions(rule_table)
    if dimensions is None:
        usage, dimensions = encode_dimensions(usage, needed)
    dims = dimensions.collect()
    if missing := [c for c in needed if c not in dims.columns]:
        raise ValueError(f"the usage dimensions lack {missing}, which pricing or the ownership rules read")
    if "is_bucket" not in usage.collect_schema():  # records of single requests
        usage = usage.with_columns(is_bucket=pl.lit(False))
    _check_days(usage)
    bands = price_bands(price_table)
    # the combination key of every record, computed once (both uses below read it)
    per_record = usage.select(_k=_combination(bands)).collect()
    # one representative record per combination, with its text: every decision below reads only what they share
    combos = (
        pl.concat(
            [usage.select("dim", "charge_day", "is_bucket", "ts", "input_tokens"), per_record.lazy()], how="horizontal"
        )
        .unique("_k", keep="any")
        .join(dims.lazy(), on="dim", how="left")
        .drop("dim")
        .with_columns(
            **{c: pl.lit(None, pl.String()) for c in DIMENSION_COLUMNS if c not in dims.columns},
            **{c: pl.lit(0, pl.Int64()) for c in _TOKEN_COLUMNS if c != "input_tokens"},
        )
        .collect()
    )
    decided = (
        price_rows(combos.lazy(), resolutions, price_table.lazy())
        .pipe(unit_prices)
        .pipe(discount_factors, discounts)
        .pipe(assign_owner, rule_table.lazy())
        .select("_k", *_DECIDED)
        .collect()
    )
    mode = integer_mode(decided, _token_bound(usage))
    # the decisions, record by record: each record's row in `decided` (a hash lookup of one key column),
    # then a gather; text goes as Categorical (a 4-byte code per record instead of a copied string)
    row = per_record.select(
        pl.col("_k").replace_strict(decided["_k"], pl.int_range(decided.height, dtype=pl.UInt32, eager=True))
    ).to_series()
    handed = (
        in_mode(decided, mode)
        .drop("_k")
        .with_columns(pl.col(_DECIDED_TEXT).cast(pl.Categorical()))
        .lazy()
        .select(pl.all().gather(row))
    )
    return (
        pl.concat([usage.select("key_hi", "key_lo", "charge_day", *_TOKEN_COLUMNS), handed], how="horizontal")
        .with_columns(list_cost_usd=integer_cost(mode))
        .with_columns(
            cost_usd=pl.when(pl.col("_factor").is_null())
            .then(pl.col("list_cost_usd"))
            .otherwise((pl.col("list_cost_usd") * pl.col("_factor")).cast(COST))
        )
        .pipe(_as_lines)
    )


def encode_dimensions(
    usage: pl.LazyFrame, columns: tuple[str, ...] = DIMENSION_COLUMNS
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Records with their text columns -> (the records with `dim`, the number of their tuple of `columns`, in
    place of the text; the distinct tuples with their `dim`). Missing text columns are NULL."""
    schema = usage.collect_schema()
    text = [pl.col(c).cast(pl.String) if c in schema else pl.lit(None, pl.String).alias(c) for c in columns]
    with_text = usage.with_columns(text)
    # collected once each: the numbering of the tuples must be the one the records get, and the job reads
    # the records several times, each read in the same row order
    dims = with_text.select(columns).unique().with_row_index("dim").collect()
    records = (
        with_text.join(dims.lazy(), on=list(columns), how="left", nulls_equal=True, maintain_order="left")
        .drop(*(c for c in DIMENSION_COLUMNS if c in schema or c in columns))
        .collect()
    )
    return records.lazy(), dims.lazy()


def _token_bound(usage: pl.LazyFrame) -> int:
    """An upper bound of any record's sum of absolute token counts as `integer_cost` weighs them
    (each count appears in at most two of them: 2 x the sum of the columns' largest magnitudes)."""
    largest = usage.select(pl.col(*_TOKEN_COLUMNS).abs().max()).collect().row(0)
    return 2 * sum(int(v or 0) for v in largest)


_TOKEN_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "requests",
)
# what the per-combination decisions hand to every record of the combination
_DECIDED_TEXT = ("price_model", "price_source", "team", "feature", "attribution")
_DECIDED = (*_DECIDED_TEXT, *UNIT_PRICES, "_factor")


def _combination(bands: dict[str, pl.Expr]) -> pl.Expr:
    """The combination key, exact: `dim` and the small keys packed into one Int64 (UTC day: 17 bits, days
    since 1970 up to the year 2328; bucket flag: 2; context band: 6; time-of-day bits: 6; `dim`: the rest).
    Two records with the same key share every input of the decisions."""
    packed = pl.col("charge_day").cast(pl.Int64).fill_null(-1) + 1  # in [0, 2**17): `_check_days`
    packed = packed * 4 + pl.col("is_bucket").cast(pl.Int64).fill_null(-1) + 1
    for expr in bands.values():  # < 64 values each (a dozen thresholds, a few time windows)
        packed = packed * 64 + expr.cast(pl.Int64)
    return pl.col("dim").cast(pl.Int64) * 2**31 + packed


def _check_days(usage: pl.LazyFrame) -> None:
    first, last = usage.select(a=pl.col("charge_day").min(), b=pl.col("charge_day").max()).collect().row(0)
    if first is not None and not (date(1970, 1, 1) <= first and last < date(2328, 1, 1)):
        raise ValueError(f"usage charge days from {first} to {last}: the job prices days from 1970 to 2327")


def apply_discounts(priced: pl.LazyFrame, discounts: pl.LazyFrame) -> pl.LazyFrame:
    """`cost_usd` = `list_cost_usd` less the discount in force (provider, model glob, UTC day)."""
    return (
        priced.pipe(discount_factors, discounts)
        .with_columns(
            cost_usd=pl.when(pl.col("_factor").is_null())
            .then(pl.col("list_cost_usd"))
            .otherwise((pl.col("list_cost_usd") * pl.col("_factor")).cast(COST))
        )
        .drop("_factor")
    )


def discount_factors(priced: pl.LazyFrame, discounts: pl.LazyFrame) -> pl.LazyFrame:
    """`_factor` (1 - pct/100, NULL without a discount) of the discount in force for each priced row's
    provider, model and UTC day, the most recently started first; `price_source` names it."""
    table = discounts.collect()
    if table.height == 0:
        return priced.with_columns(_factor=pl.lit(None, pl.Decimal(38, 12)))
    combos = priced.select("price_provider", "price_model", "charge_day").drop_nulls().unique().collect()
    models = combos["price_model"].unique().to_list()
    patterns = table["model_pattern"].unique().to_list()
    glob = pl.DataFrame(
        [(m, p) for p in patterns for m in models if fnmatch.fnmatchcase(m, p)],
        schema={"price_model": pl.String(), "model_pattern": pl.String()},
        orient="row",
    )
    in_force = (
        combos.join(glob, on="price_model")
        .join(table.rename({"provider": "price_provider"}), on=["price_provider", "model_pattern"])
        .filter(
            (pl.col("charge_day") >= pl.col("valid_from"))
            & (pl.col("valid_to").is_null() | (pl.col("charge_day") < pl.col("valid_to")))
        )
        .sort("valid_from", descending=True)  # the most recently started discount wins
        .unique(["price_provider", "price_model", "charge_day"], keep="first")
        .select(
            "price_provider",
            "price_model",
            "charge_day",
            _factor=(pl.lit(Decimal(100)) - pl.col("discount_pct")).cast(pl.Decimal(38, 12))
            * pl.lit(Decimal("0.01"), pl.Decimal(38, 12)),
            _discount=pl.col("source"),
        )
    )
    return (
        priced.join(in_force.lazy(), on=["price_provider", "price_model", "charge_day"], how="left")
        .with_columns(
            price_source=pl.when(pl.col("_discount").is_null())
            .then(pl.col("price_source"))
            .otherwise(pl.col("price_source") + pl.lit(", less ") + pl.col("_discount")),
        )
        .drop("_discount")
    )


def _as_lines(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(TOKEN_LINE_COLUMNS)
