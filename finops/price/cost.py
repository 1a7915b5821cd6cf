"""The cost of every usage record, in one place: polars expressions over whole columns, exact decimals.

Order of operations (LazyFrame in, LazyFrame out; no I/O):
  0. lay the user's `model` prices over the catalog (`overlay.overlay_overrides`): on the days an override
     is in force it is the whole price of its (provider, model), whatever the tier, size or hour;
  1. resolve each record's (provider, model) to a price key: the user's own price of its model name in
     force on its day (`overlay.own_prices`), else the stored resolution (a join on the resolution table);
  2. pick its service tier (default when absent, or when the model was found through another
     provider's fallback), its long-context level (the highest threshold its input tokens exceed; for
     a provider usage bucket, which sums many requests, the bucket's own `context_window` label) and
     its time-of-day window (DeepSeek peak hours);
  3. look the price row up as of the record's UTC day (prices change at 00:00 UTC), on the small
     table of distinct (price key, day) combinations, and join it back;
  4. cost = uncached input x input + cached x cached-input + cache writes x cache-write
           + 1-hour writes x 1-hour-write + (output - reasoning) x output + reasoning x reasoning
           + requests x per-1000-requests / 1000,
     each kind without a price of its own falling back as genai-prices does (see catalog.py),
     computed per token at scale 24 and rounded half-even to 12 decimal places once, at the end.
Unresolved models keep a NULL cost (the `__unpriced__` bucket), never 0.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from finops.price.catalog import PRICE_COLUMNS
from finops.price.overlay import is_override, overlay_overrides, own_prices

__all__ = [
    "COST",
    "PRICE_KEY_COLUMNS",
    "UNIT_PRICES",
    "cost_expr",
    "integer_cost",
    "in_mode",
    "integer_mode",
    "price_bands",
    "price_rows",
    "price_usage",
    "require_columns",
    "token_counts",
    "unit_prices",
    "with_cost",
]

COST = pl.Decimal(38, 12)
PER_TOKEN = pl.Decimal(38, 24)
_NO_LEVEL = -1  # base long-context tier / all-day prices, as a join key
_KEYS = ["price_provider", "price_model", "price_tier", "context_above", "tod_start_min"]

USAGE_COLUMNS = (
    "ts",
    "charge_day",
    "provider",
    "model",
    "service_tier",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "requests",
)


def require_columns(frame: pl.LazyFrame, columns: tuple[str, ...], *, frame_name: str) -> None:
    """Fail early, listing what is missing and what was received."""
    have = frame.collect_schema().names()
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(f"{frame_name} lacks columns {missing}; it has {have}")


# the record columns that decide which price row applies (with `price_bands`); optional ones when present
PRICE_KEY_COLUMNS = ("provider", "model", "service_tier", "charge_day", "is_bucket", "context_window")
_PER_TOKEN = (*(f"_p_{c}" for c in PRICE_COLUMNS if c != "requests_kusd"), "_p_request")


def price_usage(usage: pl.LazyFrame, resolutions: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """`usage` with `price_provider`, `price_model`, `price_tier`, `price_valid_from`, `price_source` and
    `list_cost_usd` (Decimal(38,12); NULL when the model has no price)."""
    return price_rows(usage, resolutions, prices).pipe(with_cost)


def price_rows(usage: pl.LazyFrame, resolutions: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """Steps 1-3: `usage` with its price row (`price_*` columns and the per-token prices), no cost yet.

    The result depends on a record only through `PRICE_KEY_COLUMNS` and the values of `price_bands`, so
    it can run on one representative of each distinct combination and be joined back (`token_spend`)."""
    require_columns(usage, USAGE_COLUMNS, frame_name="usage")
    # without overrides (most runs) the overlay and the own-price join change nothing: skip their joins
    overridden = prices.filter(is_override()).select(pl.len()).collect().item() > 0
    keyed_prices = _keyed(overlay_overrides(prices) if overridden else prices)
    return (
        usage.pipe(_resolve, resolutions, prices if overridden else None)
        .pipe(_context_level, keyed_prices)
        .pipe(_time_of_day, keyed_prices)
        .pipe(_lookup, keyed_prices)
    )


def price_bands(prices: pl.DataFrame) -> dict[str, pl.Expr]:
    """Per-record values that, with `PRICE_KEY_COLUMNS`, fix the long-context level and time-of-day window:
    how many of the catalog's distinct context thresholds the input exceeds, and which of its time-of-day
    windows the request falls in (a bit each). Two records equal in both get the same price row."""
    thresholds = sorted(set(prices["context_above"].drop_nulls().to_list()) - {_NO_LEVEL})
    windows = prices.select("tod_start_min", "tod_end_min").drop_nulls().unique().sort("tod_start_min", "tod_end_min")
    if len(thresholds) > 63 or windows.height > 6:  # `token_spend` packs each band into 6 bits
        raise ValueError(f"{len(thresholds)} context thresholds and {windows.height} time-of-day windows: too many")
    # how many thresholds lie strictly below the input: a binary search per record
    band = pl.lit(pl.Series(thresholds, dtype=pl.Int64)).search_sorted(pl.col("input_tokens").fill_null(0), side="left")
    minute = (pl.col("ts").dt.epoch("us") // 60_000_000 % 1440).cast(pl.Int32)  # minute of the UTC day
    tod = pl.lit(0, pl.Int32)
    for bit, (start, end) in enumerate(windows.iter_rows()):
        inside = (minute >= start) & (minute < end) if start <= end else (minute >= start) | (minute < end)
        tod = tod + inside.fill_null(False).cast(pl.Int32) * (1 << bit)
    return {"_context_band": band, "_tod_band": tod}


def _keyed(prices: pl.LazyFrame) -> pl.LazyFrame:
    return prices.with_columns(
        pl.col("service_tier").alias("price_tier"),
        pl.col("context_above").fill_null(_NO_LEVEL),
        pl.col("tod_start_min").fill_null(_NO_LEVEL),
    )


def _resolve(usage: pl.LazyFrame, resolutions: pl.LazyFrame, prices: pl.LazyFrame | None) -> pl.LazyFrame:
    """The price key of each record: the user's own price of its model name when one is in force on its day
    (`own_prices`; `prices` None: there is no override), else its stored resolution."""
    resolved = usage.join(
        resolutions.select("provider", "model", "price_provider", "price_model", "tiers_apply"),
        on=["provider", "model"],
        how="left",
        nulls_equal=True,
    )
    if prices is None:
        return resolved.with_columns(_tier())
    return (
        resolved.join(own_prices(usage, prices), on=["provider", "model", "charge_day"], how="left", nulls_equal=True)
        .with_columns(
            price_provider=pl.coalesce("own_provider", "price_provider"),
            price_model=pl.when(pl.col("own_provider").is_null())
            .then(pl.col("price_model"))
            .otherwise(pl.col("model")),
            tiers_apply=pl.col("own_provider").is_not_null() | pl.col("tiers_apply"),
        )
        .drop("own_provider")
        .with_columns(_tier())
    )


def _tier() -> pl.Expr:
    """The service tier a record is priced at: its own where the catalog's tiers apply, else default."""
    return (
        pl.when(pl.col("tiers_apply"))
        .then(pl.col("service_tier").fill_null("default"))
        .otherwise(pl.lit("default"))
        .alias("price_tier")
    )


def _context_level(usage: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    thresholds = (
        prices.filter(pl.col("context_above") != _NO_LEVEL)
        .group_by("price_provider", "price_model")
        .agg(pl.col("context_above").unique().sort().alias("_t"))
        .select(
            "price_provider",
            "price_model",
            *(pl.col("_t").list.get(i, null_on_oob=True).alias(f"_t{i}") for i in range(3)),
        )
    )
    level = pl.lit(_NO_LEVEL, dtype=pl.Int64)
    for i in range(3):  # highest threshold strictly below the input tokens
        level = pl.when(pl.col("input_tokens") > pl.col(f"_t{i}")).then(pl.col(f"_t{i}")).otherwise(level)
    names = usage.collect_schema().names()
    if "is_bucket" in names:
        # a provider bucket sums many requests: its total says nothing about one request's context; the
        # provider's own context_window label does (Anthropic: "0-200k" / "200k-1M"), else the base tier
        window = pl.col("context_window") if "context_window" in names else pl.lit(None, pl.String)
        above = window.str.starts_with("200k").fill_null(False)
        in_bucket = pl.when(above).then(pl.col("_t0")).otherwise(pl.lit(_NO_LEVEL, dtype=pl.Int64)).fill_null(_NO_LEVEL)
        level = pl.when(pl.col("is_bucket").fill_null(False)).then(in_bucket).otherwise(level)
    return (
        usage.join(thresholds, on=["price_provider", "price_model"], how="left")
        .with_columns(context_above=level)
        .drop("_t0", "_t1", "_t2")
    )


def _time_of_day(usage: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    windows = (
        prices.filter(pl.col("tod_start_min") != _NO_LEVEL)
        .group_by("price_provider", "price_model")
        .agg(pl.col("tod_start_min").first().alias("_ws"), pl.col("tod_end_min").first().alias("_we"))
    )
    minute = pl.col("ts").dt.hour().cast(pl.Int32) * 60 + pl.col("ts").dt.minute().cast(pl.Int32)
    inside = (
        pl.when(pl.col("_ws") <= pl.col("_we"))
        .then((minute >= pl.col("_ws")) & (minute < pl.col("_we")))
        .otherwise((minute >= pl.col("_ws")) | (minute < pl.col("_we")))
    )
    return (
        usage.join(windows, on=["price_provider", "price_model"], how="left")
        .with_columns(
            tod_start_min=pl.when(inside.fill_null(False)).then(pl.col("_ws")).otherwise(pl.lit(_NO_LEVEL, pl.Int32))
        )
        .drop("_ws", "_we")
    )


def _lookup(usage: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """Prices change at 00:00 UTC, so the as-of lookup runs on distinct (key, day), not on every record."""
    per_token = [
        (pl.col(c).cast(PER_TOKEN) * pl.lit(Decimal("0.000001"), PER_TOKEN)).alias(f"_p_{c}")
        for c in PRICE_COLUMNS
        if c != "requests_kusd"
    ]
    table = prices.select(
        *_KEYS,
        "valid_from",
        "valid_to",
        "source",
        *per_token,
        (pl.col("requests_kusd").cast(PER_TOKEN) * pl.lit(Decimal("0.001"), PER_TOKEN)).alias("_p_request"),
    ).sort("valid_from")
    combos = (
        usage.filter(pl.col("price_model").is_not_null())
        .select(*_KEYS, "charge_day")
        .unique()
        .with_columns(_day_start=pl.col("charge_day").cast(pl.Datetime("us", "UTC")))
        .sort("_day_start")
    )
    matched = combos.join_asof(
        table, left_on="_day_start", right_on="valid_from", by=_KEYS, strategy="backward", check_sortedness=False
    )
    matched = matched.filter(pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("_day_start")))
    return usage.join(
        matched.drop("_day_start", "valid_to").rename({"valid_from": "price_valid_from", "source": "price_source"}),
        on=[*_KEYS, "charge_day"],
        how="left",
    )


def _tokens(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Decimal(38, 0))


def with_cost(priced: pl.LazyFrame) -> pl.LazyFrame:
    """Step 4 on `price_rows` output: `list_cost_usd`, dropping the per-token prices."""
    return priced.with_columns(list_cost_usd=cost_expr()).drop(*_PER_TOKEN, "tiers_apply")


def _parts() -> list[tuple[pl.Expr, pl.Expr]]:
    """(token count, per-token price) for each kind of token, with genai-prices' fallbacks."""
    p = {c: pl.col(f"_p_{c}") for c in PRICE_COLUMNS if c != "requests_kusd"}
    return [
        (pl.col("input_tokens") - pl.col("cached_input_tokens") - pl.col("cache_write_tokens"), p["input_mtok"]),
        (pl.col("cached_input_tokens"), pl.coalesce(p["cached_input_mtok"], p["input_mtok"])),
        (
            pl.col("cache_write_tokens") - pl.col("cache_write_1h_tokens"),
            pl.coalesce(p["cache_write_mtok"], p["input_mtok"]),
        ),
        (
            pl.col("cache_write_1h_tokens"),
            pl.coalesce(p["cache_write_1h_mtok"], p["cache_write_mtok"], p["input_mtok"]),
        ),
        (pl.col("output_tokens") - pl.col("reasoning_tokens"), p["output_mtok"]),
        (pl.col("reasoning_tokens"), pl.coalesce(p["reasoning_mtok"], p["output_mtok"])),
        (pl.col("requests"), pl.col("_p_request")),
    ]


def cost_expr() -> pl.Expr:
    """Step 4 as one expression over the record's tokens and its per-token prices (Decimal arithmetic)."""
    total = None
    for tokens, price in _parts():
        term = (tokens.cast(pl.Decimal(38, 0)) * price).fill_null(pl.lit(Decimal(0), PER_TOKEN))
        total = term if total is None else total + term
    assert total is not None
    return pl.when(pl.col("price_source").is_not_null()).then(total.cast(COST))


# ----------------------------------------------------------------------- the same cost, in integers
#
# Decimal arithmetic costs about 6x integer arithmetic in polars, and the cost is the one computation
# done per record. A per-token price at scale 24 is an Int128 count of 1e-24 dollars; when every price
# of a batch is a whole number of 1e-12 dollars (true of the whole catalog but a few OpenRouter and
# Together entries) and the batch's token counts cannot overflow, the cost is an exact Int64 count of
# 1e-12 dollars; otherwise it is summed in Int128 at scale 24 and rounded half-even to scale 12, as the
# Decimal cast does. Both give the identical Decimal(38,12) (tested against `cost_expr`).

UNIT_PRICES = tuple(f"_e{i}" for i in range(7))
_E12 = 10**12
_INT64_MAX = 2**63 - 1


def unit_prices(priced: pl.LazyFrame) -> pl.LazyFrame:
    """`priced` (from `price_rows`) with `_e0` ... `_e6`: each kind's per-token price (after fallbacks) as
    an Int128 count of 1e-24 dollars, 0 where there is none."""
    return priced.with_columns(
        price.cast(PER_TOKEN).to_physical().fill_null(0).alias(name)
        for name, (_, price) in zip(UNIT_PRICES, _parts(), strict=True)
    )


def token_counts() -> list[pl.Expr]:
    """The seven token counts `unit_prices` apply to, in the same order."""
    return [tokens for tokens, _ in _parts()]


def integer_mode(units: pl.DataFrame, max_tokens: int) -> str:
    """'int64' when every price is a whole number of 1e-12 dollars and `max_tokens` (the largest sum of a
    record's absolute token counts) times the largest such price fits an Int64; else 'int128'."""
    prices = pl.concat([units[c] for c in UNIT_PRICES]).alias("e") if units.height else pl.Series("e", [0], pl.Int128)
    checked = prices.to_frame().select(
        whole=(pl.col("e") % pl.lit(_E12, pl.Int128) == 0).all(), largest=pl.col("e").max() // pl.lit(_E12, pl.Int128)
    )
    whole, largest = bool(checked["whole"][0]), int(checked["largest"][0] or 0)
    return "int64" if whole and largest * max_tokens < _INT64_MAX else "int128"


def in_mode(units: pl.DataFrame, mode: str) -> pl.DataFrame:
    """`units` with `_e0` ... `_e6` as `integer_cost(mode)` reads them: Int64 counts of 1e-12 dollars in
    'int64' mode (convert the small per-combination table, not every record), else unchanged."""
    if mode != "int64":
        return units
    return units.with_columns((pl.col(e) // pl.lit(_E12, pl.Int128)).cast(pl.Int64) for e in UNIT_PRICES)


def integer_cost(mode: str) -> pl.Expr:
    """`list_cost_usd` (Decimal(38,12)) from the token counts and `_e0` ... `_e6` (`in_mode`), exactly."""
    if mode == "int64":
        units12 = pl.sum_horizontal(
            t.cast(pl.Int64) * pl.col(e) for t, e in zip(token_counts(), UNIT_PRICES, strict=True)
        )
    else:
        total = pl.sum_horizontal(
            t.cast(pl.Int128) * pl.col(e) for t, e in zip(token_counts(), UNIT_PRICES, strict=True)
        )
        quotient, rest = total // pl.lit(_E12, pl.Int128), total % pl.lit(_E12, pl.Int128)
        half = pl.lit(_E12 // 2, pl.Int128)
        up = (rest > half) | ((rest == half) & (quotient % 2 == 1))
        units12 = quotient + up.cast(pl.Int128)
    money = units12.cast(pl.Decimal(38, 0)) * pl.lit(Decimal(1).scaleb(-12), COST)
    return pl.when(pl.col("price_source").is_not_null()).then(money.cast(COST))
