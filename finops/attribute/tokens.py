"""Token spend: price every usage record and attribute it to a team and feature (a polars job, no I/O).

Order of operations:
  1. price each record with the catalog row in force on its UTC day (`finops.price.cost`);
  2. apply the negotiated discount in force for its provider and model, if any: cost = list x (1 - pct);
  3. resolve its owner (`finops.attribute.owners`): the record's own team/feature, else the rules,
     else `__unattributed__`;
  4. shape it as a `spend_lines` row (line_type 'usage', kind 'tokens').
Invariant: one line per record in, one line out; a record with no price keeps cost NULL (`__unpriced__`).
"""

from __future__ import annotations

import fnmatch
from decimal import Decimal

import polars as pl

from finops.attribute.owners import assign_owner
from finops.price.cost import COST, price_usage

__all__ = ["SPEND_LINE_COLUMNS", "apply_discounts", "token_spend"]

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


def token_spend(
    usage: pl.LazyFrame,
    resolutions: pl.LazyFrame,
    prices: pl.LazyFrame,
    discounts: pl.LazyFrame,
    rules: pl.LazyFrame,
) -> pl.LazyFrame:
    """`spend_lines` rows for usage records (see the module docstring for the order of operations)."""
    return (
        price_usage(usage, resolutions, prices)
        .pipe(apply_discounts, discounts)
        .pipe(assign_owner, rules)
        .pipe(_as_lines)
    )


def apply_discounts(priced: pl.LazyFrame, discounts: pl.LazyFrame) -> pl.LazyFrame:
    """`cost_usd` = `list_cost_usd` less the discount in force (provider, model glob, UTC day)."""
    table = discounts.collect()
    if table.height == 0:
        return priced.with_columns(cost_usd=pl.col("list_cost_usd"))
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
            cost_usd=pl.when(pl.col("_factor").is_null())
            .then(pl.col("list_cost_usd"))
            .otherwise((pl.col("list_cost_usd") * pl.col("_factor")).cast(COST)),
            price_source=pl.when(pl.col("_discount").is_null())
            .then(pl.col("price_source"))
            .otherwise(pl.col("price_source") + pl.lit(", less ") + pl.col("_discount")),
        )
        .drop("_factor", "_discount")
    )


def _as_lines(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(
        line_type=pl.lit("usage"),
        kind=pl.lit("tokens"),
        usage_key=pl.col("key_hash"),
        usage_content=pl.col("content_hash"),
        **{
            c: pl.col(c)
            for c in (
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
            )
        },
        gpu_type=pl.lit(None, pl.String()),
        gpu_seconds=pl.lit(None, pl.Decimal(38, 9)),
        **{c: pl.col(c) for c in ("trace_id", "request_id", "attempt", "status", "price_source", "prompt_hash", "latency_ms")},
    )
