"""The effective-dated price catalog, built from the `genai-prices` package (never a hand-written table).

genai-prices describes each model's prices as a selection rule: dated prices (the last one whose start
date has passed wins), time-of-day prices (DeepSeek's peak hours), request-context variants (batch,
flex, priority) and input-size tiers (long context). This module evaluates that rule once per price
period and turns it into flat rows that a column-wise join can use:

    (price_provider, price_model, service_tier, context_above, tod window, valid_from, valid_to)
        -> input / cached input / cache write / 1-hour cache write / output / reasoning prices per Mtok,
           the same per token (exact decimals), and the per-1000-requests fee

Rules, as genai-prices applies them (and so as we do):
- a price period starts at 00:00 UTC of a start date; `valid_to` is exclusive;
- `context_above`: the row applies when the request's input tokens (cached and cache writes included)
  are strictly more than this; NULL is the base tier. The whole request is priced at the tier's rates;
- a kind with no price of its own falls back: cached input and cache writes to input, 1-hour cache
  writes to cache writes, reasoning to output (genai-prices' leaf decomposition).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import polars as pl
from genai_prices import data_snapshot
from genai_prices import types as gp

__all__ = [
    "CATALOG_SOURCE",
    "PRICE_COLUMNS",
    "PRICE_SCHEMA",
    "TIER_CONTEXT",
    "catalog_rows",
    "per_token",
]

CATALOG_SOURCE = f"genai-prices {version('genai-prices')}"
EPOCH = date(1970, 1, 1)

# our service tier -> the request context genai-prices selects price variants with
TIER_CONTEXT: dict[str, dict[str, str] | None] = {
    "default": None,
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}

# our price column (per million tokens, or per 1000 requests) -> genai-prices price key
PRICE_COLUMNS: dict[str, str] = {
    "input_mtok": "input_mtok",
    "cached_input_mtok": "cache_read_mtok",
    "cache_write_mtok": "cache_write_mtok",
    "cache_write_1h_mtok": "cache_write_1h_mtok",
    "output_mtok": "output_mtok",
    "reasoning_mtok": "output_reasoning_mtok",
    "requests_kusd": "requests_kcount",
}

PRICE = pl.Decimal(38, 18)
PRICE_SCHEMA: dict[str, pl.DataType] = {
    "price_provider": pl.String(),
    "price_model": pl.String(),
    "model_name": pl.String(),
    "service_tier": pl.String(),
    "context_above": pl.Int64(),
    "tod_start_min": pl.Int32(),  # minutes after 00:00 UTC; NULL: all day
    "tod_end_min": pl.Int32(),
    "valid_from": pl.Datetime("us", "UTC"),
    "valid_to": pl.Datetime("us", "UTC"),
    **{col: PRICE for col in PRICE_COLUMNS},
    "other_prices": pl.String(),  # JSON of priced kinds usage logs do not carry (web searches, audio...)
    "source": pl.String(),
    "source_url": pl.String(),
}


def per_token(price_mtok: Decimal | None) -> Decimal | None:
    """A price per million tokens as a price per token (exact: only the exponent moves)."""
    return None if price_mtok is None else price_mtok.scaleb(-6)


def catalog_rows(snapshot: data_snapshot.DataSnapshot | None = None) -> pl.DataFrame:
    """Every price row of the genai-prices catalog."""
    snap = snapshot or data_snapshot.get_snapshot()
    rows = [row for provider in snap.providers for model in provider.models for row in _model_rows(provider, model)]
    return pl.DataFrame(_merge_unchanged(rows), schema=PRICE_SCHEMA, orient="row")


def _merge_unchanged(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Join consecutive periods whose prices are the same, so `valid_from` marks a real price change."""
    names = list(PRICE_SCHEMA)
    key_at = [
        names.index(c)
        for c in ("price_provider", "price_model", "service_tier", "context_above", "tod_start_min", "tod_end_min")
    ]
    prices_at = [names.index(c) for c in (*PRICE_COLUMNS, "other_prices")]
    start_at, end_at = names.index("valid_from"), names.index("valid_to")
    merged: list[list[Any]] = []
    last: dict[tuple[Any, ...], list[Any]] = {}
    for row in sorted(rows, key=lambda r: (tuple(str(r[i]) for i in key_at), r[start_at])):
        key = tuple(row[i] for i in key_at)
        previous = last.get(key)
        if previous is not None and previous[end_at] == row[start_at] and all(previous[i] == row[i] for i in prices_at):
            previous[end_at] = row[end_at]
            continue
        current = list(row)
        merged.append(current)
        last[key] = current
    return [tuple(r) for r in merged]


def _model_rows(provider: gp.Provider, model: gp.ModelInfo) -> Iterator[tuple[Any, ...]]:
    starts = _period_starts(model)
    windows = _tod_windows(model)
    outside = _time_outside(windows)
    url = (provider.pricing_urls or [None])[0]
    evaluated = []
    for i, start in enumerate(starts):
        valid_from = datetime.combine(start, time(0), UTC)
        valid_to = datetime.combine(starts[i + 1], time(0), UTC) if i + 1 < len(starts) else None
        for window in [None, *windows]:
            at = datetime.combine(start, window[0] if window else outside, UTC)
            tod = (_minutes(window[0]), _minutes(window[1])) if window else (None, None)
            for tier, context in TIER_CONTEXT.items():
                evaluated.append((valid_from, valid_to, tod, tier, model.get_prices(at, context)))
    # every period gets a row for every long-context level any period has, so a lookup never misses
    levels = sorted({level for *_, prices in evaluated for level in _thresholds(prices)})
    for valid_from, valid_to, tod, tier, prices in evaluated:
        for level, values in _levels(prices, levels):
            yield (
                provider.id,
                model.id,
                model.name or model.id,
                tier,
                level,
                *tod,
                valid_from,
                valid_to,
                *(values[c] for c in PRICE_COLUMNS),
                _other_prices(prices),
                CATALOG_SOURCE,
                url,
            )


def _period_starts(model: gp.ModelInfo) -> list[date]:
    dates = {EPOCH}
    for conditional in model.prices if isinstance(model.prices, list) else []:
        if isinstance(conditional.constraint, gp.StartDateConstraint):
            dates.add(conditional.constraint.start_date)
    for variant in model.price_variants or []:
        if isinstance(variant.constraint, gp.StartDateConstraint):
            dates.add(variant.constraint.start_date)
    return sorted(dates)


def _tod_windows(model: gp.ModelInfo) -> list[tuple[time, time]]:
    constraints = [c.constraint for c in (model.prices if isinstance(model.prices, list) else [])]
    constraints += [v.constraint for v in model.price_variants or []]
    windows = {(_utc(c.start_time), _utc(c.end_time)) for c in constraints if isinstance(c, gp.TimeOfDateConstraint)}
    return sorted(windows)


def _utc(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(EPOCH, value).astimezone(UTC).time()


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _time_outside(windows: list[tuple[time, time]]) -> time:
    """A time of day inside none of the windows (where the all-day prices apply)."""
    for minute in range(24 * 60):
        candidate = (datetime.combine(EPOCH, time(0)) + timedelta(minutes=minute)).time()
        if not any(_inside(candidate, w) for w in windows):
            return candidate
    raise ValueError("time-of-day windows cover the whole day")


def _inside(t: time, window: tuple[time, time]) -> bool:
    start, end = window
    return start <= t < end if start <= end else (t >= start or t < end)


def _thresholds(prices: gp.ModelPrice) -> set[int]:
    values = [getattr(prices, key, None) for key in PRICE_COLUMNS.values()]
    return {t.start for v in values if isinstance(v, gp.TieredPrices) for t in v.tiers}


def _levels(prices: gp.ModelPrice, thresholds: list[int]) -> Iterator[tuple[int | None, dict[str, Decimal | None]]]:
    """The base tier and each long-context tier: (context_above, price per Mtok by column)."""
    raw = {col: getattr(prices, key, None) for col, key in PRICE_COLUMNS.items()}
    for level in [None, *thresholds]:
        yield level, {col: _at_level(value, level) for col, value in raw.items()}


def _at_level(value: Decimal | gp.TieredPrices | None, level: int | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if level is None:
        return value.base
    # genai-prices applies a tier when input tokens > tier.start: the highest such tier wins
    applicable = [t for t in value.tiers if t.start <= level]
    return max(applicable, key=lambda t: t.start).price if applicable else value.base


def _other_prices(prices: gp.ModelPrice) -> str | None:
    ours = set(PRICE_COLUMNS.values())
    other = {
        k: str(v.base if isinstance(v, gp.TieredPrices) else v)
        for k, v in prices.__dict__.items()
        if v is not None and not k.startswith("_") and k not in ours
    }
    return json.dumps(other, sort_keys=True) if other else None
