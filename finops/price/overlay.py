"""The user's `model` prices over the catalog: which rows are in force, and which override prices a record.

The `prices` table holds the catalog's rows and the overrides file's `model` rows side by side. A catalog
entry is many rows (a service tier, a long-context level and a time-of-day window each, every one with
its own start date); an override is one flat price per service tier. Looked up side by side, the most
specific or most recently started row would win, so a catalog batch row starting after the override, or
its long-context row, would take a request the user priced. Hence two rules, applied before the lookup:

- `overlay_overrides`: on every day an override of a (provider, model) is in force, that override is the
  whole price of the (provider, model): the catalog's rows of the same key are cut out of its validity
  period, and the override's rows stand at every long-context level and time-of-day window the catalog
  has for the key, so each request of the model finds the override whatever its tier, size or hour.
- `own_prices`: a record whose model name equals an override's model is priced by it on the days it is in
  force: the override of the record's own provider, else the one for any provider (a row without
  provider); a record without provider, by the one provider whose override of the name is in force that
  day (none when two are: which one is meant is unknown).

Every price row whose `source` is not the catalog's (`CATALOG_SOURCE`) is an override row.
"""

from __future__ import annotations

import polars as pl

from finops.price.catalog import CATALOG_SOURCE

__all__ = ["ANY_PROVIDER", "is_override", "overlay_overrides", "own_prices"]

ANY_PROVIDER = "override"  # the provider of a `model` row that names none: it prices that name for any provider
_KEY = ["price_provider", "price_model"]
_LEVELS = ("context_above", "tod_start_min", "tod_end_min")


def is_override() -> pl.Expr:
    """True on a price row of the user's overrides file, False on a catalog row."""
    return pl.col("source") != pl.lit(CATALOG_SOURCE)


def overlay_overrides(prices: pl.LazyFrame) -> pl.LazyFrame:
    """`prices` with each override replacing the catalog rows of its (provider, model) over its validity
    period, at every long-context level and time-of-day window of those rows (see the module docstring).
    Rows of keys no override names pass unchanged."""
    columns = prices.collect_schema().names()
    own = prices.filter(is_override())
    keys = own.select(_KEY).unique()
    catalog = prices.filter(~is_override())
    shadowed = catalog.join(keys, on=_KEY, how="semi")
    return pl.concat(
        [
            catalog.join(keys, on=_KEY, how="anti"),
            _outside(shadowed, own.select(*_KEY, "valid_from", "valid_to").unique()).select(columns),
            _at_every_level(own, shadowed).select(columns),
        ]
    )


def _outside(catalog: pl.LazyFrame, periods: pl.LazyFrame) -> pl.LazyFrame:
    """The parts of each catalog row's [valid_from, valid_to) outside every override period of its key.

    The row's period is cut at each override boundary inside it; a piece between two cuts lies wholly in
    or wholly out of the overrides, so a piece is kept when no override period holds its first day."""
    rows = catalog.with_row_index("_row")
    bounds = pl.concat(
        [periods.select(*_KEY, _at="valid_from"), periods.select(*_KEY, _at="valid_to").drop_nulls()]
    ).unique()
    inner = (
        rows.select("_row", *_KEY, "valid_from", "valid_to")
        .join(bounds, on=_KEY)
        .filter(
            (pl.col("_at") > pl.col("valid_from"))
            & (pl.col("valid_to").is_null() | (pl.col("_at") < pl.col("valid_to")))
        )
        .select("_row", "_at")
    )
    pieces = (
        pl.concat([rows.select("_row", _at="valid_from"), inner])
        .sort("_row", "_at")
        .with_columns(_end=pl.col("_at").shift(-1).over("_row"))
        .join(rows.select("_row", *_KEY, "valid_to"), on="_row")
        .with_columns(_end=pl.coalesce("_end", "valid_to"))
        .drop("valid_to")
    )
    covered = (
        pieces.join(periods, on=_KEY)
        .filter(
            (pl.col("valid_from") <= pl.col("_at"))
            & (pl.col("valid_to").is_null() | (pl.col("_at") < pl.col("valid_to")))
        )
        .select("_row", "_at")
    )
    kept = pieces.join(covered, on=["_row", "_at"], how="anti").select("_row", valid_from="_at", valid_to="_end")
    return rows.drop("valid_from", "valid_to").join(kept, on="_row").drop("_row")


def _at_every_level(own: pl.LazyFrame, catalog: pl.LazyFrame) -> pl.LazyFrame:
    """The override rows repeated at each long-context level and time-of-day window the catalog rows of
    their key have (the base level and all-day window included), so the lookup of any request finds them."""
    levels = catalog.select(*_KEY, "context_above").unique()
    windows = catalog.select(*_KEY, "tod_start_min", "tod_end_min").unique()
    return own.drop(*_LEVELS).join(levels, on=_KEY, how="left").join(windows, on=_KEY, how="left")


def own_prices(records: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """For each distinct (provider, model, charge_day) of `records` that an override prices (see the module
    docstring): those columns and `own_provider`, the `price_provider` of that override (its `price_model`
    is the model name itself)."""
    combo = ["provider", "model", "charge_day"]
    periods = prices.filter(is_override()).select(*_KEY, "valid_from", "valid_to").unique()
    day = pl.col("charge_day").cast(pl.Datetime("us", "UTC"))
    exact = pl.col("price_provider") == pl.col("provider")
    candidates = (
        records.select(combo)
        .unique()
        .join(periods, left_on="model", right_on="price_model")
        .filter((pl.col("valid_from") <= day) & (pl.col("valid_to").is_null() | (day < pl.col("valid_to"))))
        .filter(pl.col("provider").is_null() | exact | (pl.col("price_provider") == ANY_PROVIDER))
        # the record's own provider before any provider; a record without provider: every provider alike
        .with_columns(_rank=pl.when(pl.col("provider").is_null() | exact).then(0).otherwise(1))
    )
    return (
        candidates.filter(pl.col("_rank") == pl.col("_rank").min().over(combo))
        .group_by(combo)
        .agg(own_provider=pl.col("price_provider").unique())
        .filter(pl.col("own_provider").list.len() == 1)
        .with_columns(pl.col("own_provider").list.first())
    )
