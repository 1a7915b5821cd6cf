"""Provider bills as the truth: which usage counts, and each bill shared out over it (a polars job, no I/O).

Gateway-measured usage (per request: `gateway`, `litellm`, any source that is not a provider's usage
report) and a provider's usage buckets (`openai-usage`, `anthropic-usage`) measure the same spend twice;
the provider's cost report (`openai-costs`, `anthropic-costs`) is what was billed. Totals use one of
them, never a sum (DESIGN promise 2), and every billed dollar lands on an owner or a named bucket
(promise 4).

Order of operations (`bill_spend`):
  1. choose the measure of each provider and UTC day (`usage_measures`): gateway-measured usage when
     there is any, else the provider's usage buckets; only the chosen measure's lines count;
  2. read the bills into pools (`bill_pools`): of the pulls of a provider/day, only those of the finest
     grouping count (itemised, then by project, then by API key): a coarser pull is the same money;
     each row's model (Anthropic `model`, OpenAI the part of `line_item` before the comma) is resolved
     to its catalog model; one pool per provider, day, bill source and model, and one for the rows that
     name no model (a pool over the whole provider/day);
  3. weigh: a pool's members are the counted usage groups (team, feature, model) of its provider/day,
     and of its model for a model pool, each weighted by its priced cost in units of 1e-12 dollars
     (unpriced usage weighs nothing); on a day the gateway's measure counts, what the provider's buckets
     report beyond the gateway's for the same model (in tokens: `_unseen`) is the weight of
     `__unobserved__`; a pool with no weight at all goes whole to `__unobserved__` (no usage seen) or to
     `__unpriced__` (only usage we cannot price seen);
  4. allocate each pool's bill exactly: floor(bill x weight / total weight) in integer units, then the
     units left over one each to the largest remainders (ties by team, feature, model);
  5. write lines: per usage group, its share minus its priced cost (`bill_adjustment`; the priced cost
     is taken off once, in its model pool when it has one); counted usage of a billed provider/day that
     no pool covers gets minus its priced cost (the provider billed nothing for it); bucket shares are
     lines of their own (`unobserved`, or `bill_adjustment` for `__unpriced__`).
Invariant: for each provider/day with a bill, counted priced usage + adjustments + buckets == the bill,
to the last 1e-12 dollar; a gateway-measured provider/day without a bill gets only `unobserved` lines, at
list price, for what the provider's buckets report beyond the gateway's (`_unbilled_lines`).
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from finops.price.cost import COST, require_columns
from finops.schema import UNOBSERVED, UNPRICED

__all__ = [
    "BILL_ADJUSTMENT",
    "BILL_COLUMNS",
    "BILL_LINE_TYPES",
    "PROVIDER_USAGE",
    "PROVIDER_USAGE_SOURCES",
    "UNOBSERVED_LINE",
    "USAGE_COLUMNS",
    "bill_models",
    "bill_pools",
    "bill_spend",
    "usage_measures",
]

PROVIDER_USAGE_SOURCES = ("openai-usage", "anthropic-usage")  # provider-measured buckets; the rest is gateway
PROVIDER_USAGE = "provider_usage"  # line_type of provider buckets that do not count (the gateway's measure does)
BILL_ADJUSTMENT = "bill_adjustment"
UNOBSERVED_LINE = "unobserved"
BILL_LINE_TYPES = (BILL_ADJUSTMENT, UNOBSERVED_LINE)

USAGE_COLUMNS = (
    "charge_day",
    "provider",
    "source",
    "model",
    "price_model",
    "team",
    "feature",
    "cost_usd",
    "input_tokens",
    "output_tokens",
)
BILL_COLUMNS = ("charge_day", "provider", "source", "batch_id", "line_item", "model", "description", "amount_usd")
RESOLUTION_COLUMNS = ("provider", "model", "price_model")

_UNIT = Decimal(10**12)  # money travels through the allocation as Int128 counts of 1e-12 dollars
_WEIGHT_LIMIT = 2**63  # total weights above this are truncated so that remainder x weight fits 128 bits
_POOL = ["charge_day", "provider", "source", "pool_model"]  # pool_model NULL: the whole provider/day
_GROUP = ["charge_day", "provider", "model", "price_model", "team", "feature"]
_I128 = pl.Int128()


def usage_measures(usage: pl.LazyFrame) -> pl.LazyFrame:
    """Which measure counts per provider and UTC day: `gateway` when any gateway-measured line exists, else
    `provider_usage` (the provider's own usage buckets)."""
    require_columns(usage, ("charge_day", "provider", "source"), frame_name="usage")
    return usage.group_by("charge_day", "provider").agg(
        measure=pl.when(_is_gateway().any()).then(pl.lit("gateway")).otherwise(pl.lit(PROVIDER_USAGE))
    )


def bill_models(bills: pl.LazyFrame) -> pl.LazyFrame:
    """The distinct (provider, model) names the bills give, to be resolved against the catalog."""
    require_columns(bills, BILL_COLUMNS, frame_name="bills")
    return bills.select("provider", model=_bill_model()).drop_nulls("model").unique()


def bill_pools(bills: pl.LazyFrame, resolutions: pl.LazyFrame) -> pl.LazyFrame:
    """One row per pool: `charge_day`, `provider`, `source`, `pool_model` (the resolved catalog model, the
    name as billed when it does not resolve, NULL for rows naming no model), `price_model`, `billed_usd`."""
    require_columns(bills, BILL_COLUMNS, frame_name="bills")
    require_columns(resolutions, RESOLUTION_COLUMNS, frame_name="resolutions")
    day = ["charge_day", "provider"]
    names = resolutions.select("provider", pl.col("model").alias("_bill_model"), "price_model").unique(
        ["provider", "_bill_model"]
    )
    # two pulls of one day at different groupings overlap (by line item, by project, ungrouped): only the
    # pulls of the finest grouping count (fixtures/raw/openai); pulls of one grouping are complementary
    grain = _grain(bills.collect_schema().names())
    return (
        bills.with_columns(_bill_model=_bill_model(), _grain=grain.max().over([*day, "batch_id"]))
        .filter(pl.col("_grain") == pl.col("_grain").max().over(day))
        .join(names, on=["provider", "_bill_model"], how="left")
        .with_columns(
            pool_model=pl.coalesce("price_model", "_bill_model"),
            price_model=pl.when(pl.col("_bill_model").is_not_null()).then(pl.col("price_model")),
        )
        .group_by(_POOL)
        .agg(price_model=pl.col("price_model").drop_nulls().first(), billed_usd=pl.col("amount_usd").sum().cast(COST))
    )


def _grain(columns: list[str]) -> pl.Expr:
    """How finely a bill row is grouped: itemised (line item, model or description) 4, by project 2, by API
    key 1 (the grouping columns a caller's frame lacks count as absent)."""
    itemised = pl.col("line_item").is_not_null() | pl.col("model").is_not_null() | pl.col("description").is_not_null()
    grain = itemised.cast(pl.Int32) * 4
    for column, weight in (("project_id", 2), ("api_key_id", 1)):
        if column in columns:
            grain = grain + pl.col(column).is_not_null().cast(pl.Int32) * weight
    return grain


def bill_spend(usage: pl.LazyFrame, bills: pl.LazyFrame, resolutions: pl.LazyFrame) -> pl.LazyFrame:
    """`spend_lines` rows (without `run_id`) that make each billed provider/day total its bill (see the
    module docstring for the order of operations).

    Args:
        usage: token usage lines or groups of them, of both measures (`USAGE_COLUMNS`).
        bills: `provider_costs` rows (`BILL_COLUMNS`).
        resolutions: (provider, model) -> price_model for the names `bill_models` gives.
    """
    require_columns(usage, USAGE_COLUMNS, frame_name="usage")
    usage = usage.with_columns(_units=_to_units(pl.col("cost_usd")), _key=pl.coalesce("price_model", "model"))
    measures = usage_measures(usage)
    pools = bill_pools(bills, resolutions).with_columns(_billed=_to_units(pl.col("billed_usd")))
    groups = _counted_groups(usage, measures)
    members = _members(groups, pools)
    unseen = _unseen(usage, measures)  # a billed day's `__unobserved__` weight, an unbilled day's list price
    buckets = _buckets(pools, members, unseen)
    shares = _allocate(pl.concat([members, buckets], how="diagonal_relaxed"))
    lines = [_share_lines(shares), _uncovered_lines(groups, members, pools), _unbilled_lines(usage, unseen, pools)]
    return pl.concat(lines, how="vertical").pipe(_as_lines)


# --------------------------------------------------------------------------------------------- steps


def _is_gateway() -> pl.Expr:
    return ~pl.col("source").is_in(PROVIDER_USAGE_SOURCES)


def _bill_model() -> pl.Expr:
    """Anthropic names the model; OpenAI's line item reads `gpt-4o-2024-08-06, cached input`."""
    from_item = pl.col("line_item").str.split(",").list.first().str.strip_chars()
    return pl.coalesce(pl.col("model"), pl.when(from_item != "").then(from_item))


def _to_units(money: pl.Expr) -> pl.Expr:
    return (money.cast(COST) * pl.lit(_UNIT)).cast(_I128)


def _to_money(units: pl.Expr) -> pl.Expr:
    return (units.cast(pl.Decimal(38, 0)) * pl.lit(Decimal(1) / _UNIT)).cast(COST)


def _counted_groups(usage: pl.LazyFrame, measures: pl.LazyFrame) -> pl.LazyFrame:
    """Step 1 and the members' grain: counted usage per (day, provider, model, team, feature)."""
    return (
        usage.join(measures, on=["charge_day", "provider"], how="left", nulls_equal=True)
        .filter(_is_gateway() | (pl.col("measure") == PROVIDER_USAGE))
        .group_by(*_GROUP, "_key")
        .agg(
            _priced=pl.col("_units").sum(),
            _unpriced=pl.col("_units").is_null().any(),
        )
    )


def _unseen(usage: pl.LazyFrame, measures: pl.LazyFrame) -> pl.LazyFrame:
    """Per (day, provider, model) on gateway-measured days, the weight of what the gateway did not see.

    Measured in tokens, not in our price: a provider bucket sums many requests, so per-request price
    rules (long-context tiers, say) can price it apart from the same requests seen one by one. When the
    provider's buckets count T tokens and the gateway G of them (G > 0), the unseen part weighs the
    gateway's priced cost x (T - G) / G, so that it takes (T - G) / T of the pool; a model the gateway
    did not see at all weighs the buckets' priced cost.
    """
    tokens = pl.col("input_tokens").cast(_I128) + pl.col("output_tokens").cast(_I128)
    seen_cost = pl.col("_units").filter(_is_gateway()).sum()
    seen = tokens.filter(_is_gateway()).sum()
    reported = tokens.filter(~_is_gateway()).sum()
    return (
        usage.join(measures.filter(pl.col("measure") == "gateway"), on=["charge_day", "provider"])
        .group_by("charge_day", "provider", "_key")
        .agg(
            _unseen=pl.when(seen > 0)
            .then(seen_cost * pl.max_horizontal(reported - seen, pl.lit(0, _I128)) // seen)
            .otherwise(pl.col("_units").filter(~_is_gateway()).sum())
        )
        .filter(pl.col("_unseen") > 0)
    )


def _members(groups: pl.LazyFrame, pools: pl.LazyFrame) -> pl.LazyFrame:
    """Step 3: (pool, usage group) pairs with the group's weight; `_primary` marks the one pairing where the
    group's priced cost is taken off: its model pool, else its provider/day pool (the first by source)."""
    pool_cols = [*_POOL, "billed_usd", "_billed"]
    by_model = pools.filter(pl.col("pool_model").is_not_null()).select(pool_cols)
    by_day = pools.filter(pl.col("pool_model").is_null()).select(pool_cols).drop("pool_model")
    in_model = groups.join(
        by_model, left_on=["charge_day", "provider", "_key"], right_on=["charge_day", "provider", "pool_model"]
    ).with_columns(pool_model=pl.col("_key"), _primary=pl.lit(True))
    covered = in_model.select(_GROUP).unique().with_columns(_covered=pl.lit(True))
    in_day = (
        groups.join(by_day, on=["charge_day", "provider"])
        .join(covered, on=_GROUP, how="left", nulls_equal=True)
        .with_columns(
            pool_model=pl.lit(None, pl.String()),
            _primary=pl.col("_covered").is_null() & (pl.col("source") == pl.col("source").min().over(_GROUP)),
        )
        .drop("_covered")
    )
    return pl.concat([in_model, in_day], how="diagonal_relaxed").with_columns(
        _weight=pl.max_horizontal(pl.col("_priced"), pl.lit(0, _I128)),
        _bucket=pl.lit(None, pl.String()),
        _why=pl.lit("bill: share of the priced usage"),
    )


def _buckets(pools: pl.LazyFrame, members: pl.LazyFrame, unseen: pl.LazyFrame) -> pl.LazyFrame:
    """Step 3: one bucket member per pool that has a blind spot or no weight at all."""
    weights = members.group_by(_POOL).agg(
        _usage_weight=pl.col("_weight").sum(), _any_unpriced=pl.col("_unpriced").any()
    )
    day_unseen = unseen.group_by("charge_day", "provider").agg(_day_unseen=pl.col("_unseen").sum())
    model_unseen = unseen.rename({"_key": "pool_model", "_unseen": "_model_unseen"})
    return (
        pools.join(weights, on=_POOL, how="left", nulls_equal=True)
        .join(model_unseen, on=["charge_day", "provider", "pool_model"], how="left")
        .join(day_unseen, on=["charge_day", "provider"], how="left")
        .with_columns(
            _blind=pl.when(pl.col("pool_model").is_null())
            .then(pl.col("_day_unseen"))
            .otherwise(pl.col("_model_unseen"))
            .fill_null(pl.lit(0, _I128)),
            _usage_weight=pl.col("_usage_weight").fill_null(pl.lit(0, _I128)),
        )
        .filter((pl.col("_blind") > 0) | (pl.col("_usage_weight") == 0))
        .select(
            *_POOL,
            "price_model",
            "billed_usd",
            "_billed",
            model=pl.col("pool_model"),
            _bucket=pl.when((pl.col("_blind") == 0) & pl.col("_any_unpriced").fill_null(False))
            .then(pl.lit(UNPRICED))
            .otherwise(pl.lit(UNOBSERVED)),
            _weight=pl.when(pl.col("_blind") > 0).then(pl.col("_blind")).otherwise(pl.lit(1, _I128)),
            _primary=pl.lit(False),
            _why=pl.when(pl.col("_blind") > 0)
            .then(pl.lit("bill: provider usage the gateway did not see"))
            .when(pl.col("_any_unpriced").fill_null(False))
            .then(pl.lit("bill: only unpriced usage seen"))
            .otherwise(pl.lit("bill: no usage seen")),
        )
    )


def _allocate(members: pl.LazyFrame) -> pl.LazyFrame:
    """Step 4: `_share` (Int128 units) per member; each pool's shares sum to its bill exactly.

    With B the bill, W the total weight and B = qW + r (0 <= r < W): share = qw + floor(rw / W), and the
    B - sum(shares) units left (fewer than the members) go one each to the largest rw mod W. Totals at or
    above 2**63 units (~$9.2M of priced usage in one pool-day) are first divided by a power of ten, so
    that rw < W**2 stays inside 128 bits; the shares still sum exactly to the bill.
    """
    total = pl.col("_weight").sum().over(_POOL)
    scale = (
        pl.when(total >= _WEIGHT_LIMIT)
        .then(pl.lit(10.0).pow((total.cast(pl.Float64) / _WEIGHT_LIMIT).log10().ceil()))
        .otherwise(1.0)
        .cast(_I128)
    )
    ties = ["_bucket", "team", "feature", "model", "price_model"]
    return (
        members.with_columns(_w=pl.col("_weight") // scale)
        .with_columns(_total=pl.col("_w").sum().over(_POOL))
        .with_columns(_q=pl.col("_billed") // pl.col("_total"))
        .with_columns(_r=pl.col("_billed") - pl.col("_q") * pl.col("_total"))
        .with_columns(
            _base=pl.col("_q") * pl.col("_w") + (pl.col("_r") * pl.col("_w")) // pl.col("_total"),
            _rem=(pl.col("_r") * pl.col("_w")) % pl.col("_total"),
        )
        .with_columns(_left=pl.col("_billed") - pl.col("_base").sum().over(_POOL))
        .sort([*_POOL, "_rem", *ties], descending=[False] * len(_POOL) + [True] + [False] * len(ties), nulls_last=True)
        .with_columns(
            _share=pl.col("_base") + (pl.int_range(pl.len()).over(_POOL) < pl.col("_left")).cast(_I128),
        )
    )


def _label(pool_model: pl.Expr) -> pl.Expr:
    return pl.format("{} bill {}, {}", pl.col("source"), pl.col("charge_day"), pool_model)


def _share_lines(shares: pl.LazyFrame) -> pl.LazyFrame:
    """Step 5: a member's share less its priced cost (where primary); a bucket's share as it is."""
    amount = pl.col("_share") - pl.when(pl.col("_primary")).then(pl.col("_priced")).otherwise(pl.lit(0, _I128))
    return shares.filter(amount != 0).select(
        line_type=pl.when(pl.col("_bucket") == UNOBSERVED)
        .then(pl.lit(UNOBSERVED_LINE))
        .otherwise(pl.lit(BILL_ADJUSTMENT)),
        charge_day="charge_day",
        source="source",
        provider="provider",
        model="model",
        price_model="price_model",
        team=pl.coalesce("_bucket", "team"),
        feature=pl.coalesce("_bucket", "feature"),
        attribution="_why",
        _units=amount,
        price_source=_label(pl.col("pool_model").fill_null("all models")),
    )


def _uncovered_lines(groups: pl.LazyFrame, members: pl.LazyFrame, pools: pl.LazyFrame) -> pl.LazyFrame:
    """Step 5: counted usage on a billed provider/day that no pool covers: billed nothing."""
    billed_days = pools.group_by("charge_day", "provider").agg(source=pl.col("source").min())
    return (
        groups.join(members.select(_GROUP).unique(), on=_GROUP, how="anti", nulls_equal=True)
        .join(billed_days, on=["charge_day", "provider"])
        .filter(pl.col("_priced") != 0)
        .select(
            **_line(
                BILL_ADJUSTMENT,
                model=pl.col("model"),
                owner=(pl.col("team"), pl.col("feature")),
                attribution="bill: not on the bill",
                units=pl.lit(0, _I128) - pl.col("_priced"),
                price_source=_label(pl.lit("not billed")),
            )
        )
    )


def _unbilled_lines(usage: pl.LazyFrame, unseen: pl.LazyFrame, pools: pl.LazyFrame) -> pl.LazyFrame:
    """Step 5 on a gateway-measured provider/day with no bill loaded: what the provider's buckets report beyond
    the gateway's (`_unseen`; all of it for a model the gateway never saw) is `__unobserved__` at list price,
    so every dollar has an owner or a bucket before the bill arrives too (the bill then shares itself out)."""
    billed = pools.select("charge_day", "provider").unique()
    names = (
        usage.filter(~_is_gateway())
        .group_by("charge_day", "provider", "_key")
        .agg(source=pl.col("source").min(), price_model=pl.col("price_model").drop_nulls().first())
    )
    return (
        unseen.join(billed, on=["charge_day", "provider"], how="anti")
        .join(names, on=["charge_day", "provider", "_key"], how="left")
        .select(
            **_line(
                UNOBSERVED_LINE,
                model=pl.col("_key"),
                owner=(pl.lit(UNOBSERVED), pl.lit(UNOBSERVED)),
                attribution="provider usage the gateway did not see; no bill loaded",
                units=pl.col("_unseen"),
                price_source=pl.format("{} usage {}, list price", pl.col("source"), pl.col("charge_day")),
            )
        )
    )


def _line(
    line_type: str,
    *,
    model: pl.Expr,
    owner: tuple[pl.Expr, pl.Expr],
    attribution: str,
    units: pl.Expr,
    price_source: pl.Expr,
) -> dict[str, pl.Expr]:
    """The columns of one bill step line (before `_as_lines`); day, source, provider and price model as found."""
    return {
        "line_type": pl.lit(line_type),
        "charge_day": pl.col("charge_day"),
        "source": pl.col("source"),
        "provider": pl.col("provider"),
        "model": model,
        "price_model": pl.col("price_model"),
        "team": owner[0],
        "feature": owner[1],
        "attribution": pl.lit(attribution),
        "_units": units,
        "price_source": price_source,
    }


def _as_lines(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The `spend_lines` shape (as `finops.attribute.tokens.SPEND_LINE_COLUMNS`), sorted."""
    none = {"usage_key": pl.Decimal(38, 0), "usage_content": pl.UInt64(), "service_tier": pl.String()}
    none |= {"project": pl.String(), "user": pl.String(), "gpu_type": pl.String(), "gpu_seconds": pl.Decimal(38, 9)}
    none |= {"trace_id": pl.String(), "request_id": pl.String(), "attempt": pl.Int32(), "status": pl.String()}
    tokens = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
    return frame.select(
        "line_type",
        kind=pl.lit("tokens"),
        usage_key=pl.lit(None, none["usage_key"]),
        usage_content=pl.lit(None, none["usage_content"]),
        ts=pl.col("charge_day").cast(pl.Datetime("us", "UTC")),
        charge_day="charge_day",
        source="source",
        provider="provider",
        model="model",
        price_model="price_model",
        service_tier=pl.lit(None, pl.String()),
        team="team",
        feature="feature",
        project=pl.lit(None, pl.String()),
        user=pl.lit(None, pl.String()),
        attribution="attribution",
        list_cost_usd=pl.lit(None, COST),
        cost_usd=_to_money(pl.col("_units")),
        **{t: pl.lit(0, pl.Int64()) for t in tokens},
        requests=pl.lit(0, pl.Int64()),
        gpu_type=pl.lit(None, pl.String()),
        gpu_seconds=pl.lit(None, pl.Decimal(38, 9)),
        trace_id=pl.lit(None, pl.String()),
        request_id=pl.lit(None, pl.String()),
        attempt=pl.lit(None, pl.Int32()),
        status=pl.lit(None, pl.String()),
        price_source="price_source",
        prompt_hash=pl.lit(None, pl.String()),
        latency_ms=pl.lit(None, pl.Decimal(38, 9)),
    ).sort("charge_day", "provider", "price_source", "line_type", "team", "feature", "model", nulls_last=True)
