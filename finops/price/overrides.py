"""The user's price overrides file: negotiated discounts, private or self-hosted models, GPU rates.

One CSV, one row per override, each with its own validity dates (UTC days, end exclusive):

    kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,output_mtok,gpu_type,cluster,hourly_usd,note
    discount,openai,gpt-4o*,2026-01-01,,12.5,,,,,,,,enterprise agreement
    model,selfhosted,llama-3.3-70b-internal,2026-01-01,,,0.40,,,0.40,,,,internal transfer price
    gpu,,,2026-01-01,,,,,,,H100,gpu-east,2.95,reserved instances

- `discount`: percent off the catalog price of a provider's models whose resolved name matches the
  glob `model` (`*` for all of them);
- `model`: a model the catalog does not know (or that you price yourself), per million tokens; usage
  whose model name equals `model` (and whose provider equals `provider`, when given) uses it;
- `gpu`: USD per GPU-hour for a GPU type, optionally for one cluster only.

Each kind reads its own columns (`_KIND_COLUMNS`); a value in another one (a `discount_pct` on a `model`
row) is refused, never ignored. Two rows of one kind for the same thing (provider and model; provider
and glob; GPU type and cluster) whose validity periods overlap are refused too, even with equal values:
on any day one line prices a thing, and `price_source` names it.

Prices per million tokens and per GPU-hour must be below MAX_PRICE (1,000,000 USD, a dollar a token)
and have no more decimals than they are stored with (18 per million tokens, 12 per GPU-hour, 6 for a
discount): a mistake is refused, never rounded or overflowed. The bound leaves every later step room
(the dearest catalog price is below 1,000 USD): the per-token price, DECIMAL(38,24), holds below 1e14;
a record's cost, summed in 128-bit integers of 1e-24 USD, stays exact up to 1.7e14 USD (1.7e14 tokens
in one record at the bound); a GPU pool's, 128-bit products of nano-GPU-seconds and pico-USD per
GPU-hour, up to 1.7e11 GPU-seconds in one pool and day at the bound (about 2 million GPUs all day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import polars as pl

from finops.csvfile import glob_mistake, read_csv
from finops.errors import InputError
from finops.ingest.fields import PRICE_LIMIT
from finops.price.catalog import PRICE_COLUMNS, PRICE_SCHEMA, TIER_CONTEXT
from finops.price.overlay import ANY_PROVIDER

__all__ = ["DISCOUNT_SCHEMA", "GPU_RATE_SCHEMA", "MAX_PRICE", "OVERRIDE_COLUMNS", "Overrides", "read_overrides"]

KINDS = ("discount", "model", "gpu")
_EPOCH = date(1970, 1, 1)  # a model row without valid_from: in force from the catalog's first day
DISCOUNT_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "model_pattern": pl.String(),
    "discount_pct": pl.Decimal(9, 6),
    "valid_from": pl.Date(),
    "valid_to": pl.Date(),
    "source": pl.String(),
}
GPU_RATE_SCHEMA: dict[str, pl.DataType] = {
    "gpu_type": pl.String(),
    "cluster": pl.String(),
    "hourly_usd": pl.Decimal(38, 12),
    "valid_from": pl.Date(),
    "valid_to": pl.Date(),
    "source": pl.String(),
}
MAX_PRICE = Decimal(PRICE_LIMIT)  # USD per million tokens or per GPU-hour, exclusive; see the docstring
_PRICE_PLACES, _RATE_PLACES, _PCT_PLACES = 18, 12, 6  # the scales of PRICE_SCHEMA, GPU_RATE_SCHEMA, DISCOUNT_SCHEMA
_PRICE_FIELDS = ("input_mtok", "cached_input_mtok", "cache_write_mtok", "output_mtok", "reasoning_mtok")
OVERRIDE_COLUMNS = (
    "kind",
    "provider",
    "model",
    "valid_from",
    "valid_to",
    "discount_pct",
    *_PRICE_FIELDS,
    "gpu_type",
    "cluster",
    "hourly_usd",
    "note",
)
# the columns each kind of row reads; a value in any other column is a mistake, never ignored
_KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "discount": ("kind", "provider", "model", "valid_from", "valid_to", "discount_pct", "note"),
    "model": ("kind", "provider", "model", "valid_from", "valid_to", *_PRICE_FIELDS, "note"),
    "gpu": ("kind", "valid_from", "valid_to", "gpu_type", "cluster", "hourly_usd", "note"),
}


class Overrides:
    """The three kinds of override, as frames ready for the pricing jobs."""

    def __init__(self, prices: pl.DataFrame, discounts: pl.DataFrame, gpu_rates: pl.DataFrame) -> None:
        self.prices = prices
        self.discounts = discounts
        self.gpu_rates = gpu_rates

    @classmethod
    def empty(cls) -> Overrides:
        return cls(
            pl.DataFrame(schema=PRICE_SCHEMA),
            pl.DataFrame(schema=DISCOUNT_SCHEMA),
            pl.DataFrame(schema=GPU_RATE_SCHEMA),
        )


def read_overrides(path: Path) -> Overrides:
    """Parse and check the overrides CSV; a mistake names the file, line, field and what was expected."""
    header, records = read_csv(path, "the price overrides")
    if "kind" not in header:
        raise InputError(f"{path} line 1: the header has no 'kind' column; see the README's price overrides section.")
    # a misspelt column would be read as empty: `modle` makes a discount row apply to every model
    if unknown := [c for c in header if c and c not in OVERRIDE_COLUMNS]:
        raise InputError(
            f"{path} line 1: unknown column {unknown[0]!r}; expected columns among {', '.join(OVERRIDE_COLUMNS)}."
        )
    prices, discounts, rates, claims = [], [], [], []
    for line, row in records:
        field = _Fields(row, f"{path} line {line}")
        source = f"{path.name} line {line}"
        kind = field.text("kind", required=True)
        if kind not in KINDS:
            raise InputError(f"{field.where}: kind is '{kind}'; expected one of {', '.join(KINDS)}.")
        field.require_unused(kind)
        valid_from = field.day("valid_from", required=kind != "model") or _EPOCH
        valid_to = field.day("valid_to")
        if valid_to is not None and valid_to <= valid_from:
            raise InputError(f"{field.where}: valid_to {valid_to} is not after valid_from {valid_from}.")
        if kind == "discount":
            discount = _discount(field, valid_from, valid_to, source)
            discounts.append(discount)
            target = f"the discount on {discount[0]} models matching {discount[1]}"
        elif kind == "model":
            rows = _model_prices(field, valid_from, valid_to, source)
            prices.extend(rows)
            provider, model = field.text("provider"), rows[0][1]
            target = f"model {provider}/{model}" if provider else f"model {model} of any provider"
        else:
            rate = _gpu_rate(field, valid_from, valid_to, source)
            rates.append(rate)
            target = f"the {rate[0]} GPU rate " + (f"of cluster {rate[1]}" if rate[1] else "of any cluster")
        claims.append(_Claim(target, valid_from, valid_to, line))
    _refuse_overlaps(path, claims)
    return Overrides(
        pl.DataFrame(prices, schema=PRICE_SCHEMA, orient="row"),
        pl.DataFrame(discounts, schema=DISCOUNT_SCHEMA, orient="row"),
        pl.DataFrame(rates, schema=GPU_RATE_SCHEMA, orient="row"),
    )


def _discount(field: _Fields, valid_from: date, valid_to: date | None, source: str) -> tuple[object, ...]:
    """A `discount` row as a DISCOUNT_SCHEMA row."""
    pct = field.percentage("discount_pct")
    provider = field.text("provider", required=True)
    pattern = field.text("model") or "*"
    if problem := glob_mistake(pattern):
        raise InputError(f"{field.where}: model is '{pattern}'; expected a glob that can match: {problem}.")
    return (provider, pattern, pct, valid_from, valid_to, source)


def _model_prices(field: _Fields, valid_from: date, valid_to: date | None, source: str) -> list[tuple[object, ...]]:
    """A `model` row as PRICE_SCHEMA rows, one per service tier: the price applies whatever the tier."""
    values = {f: field.price(f, places=_PRICE_PLACES, unit="USD per million tokens") for f in _PRICE_FIELDS}
    if values["input_mtok"] is None and values["output_mtok"] is None:
        raise InputError(f"{field.where}: a model override needs input_mtok or output_mtok (USD per million).")
    start = datetime.combine(valid_from, time(0), UTC)
    end = datetime.combine(valid_to, time(0), UTC) if valid_to else None
    model = field.text("model", required=True)
    provider = field.text("provider") or ANY_PROVIDER
    prices = [values.get(c) for c in PRICE_COLUMNS]
    return [
        (provider, model, model, tier, None, None, None, start, end, *prices, None, source, None)
        for tier in TIER_CONTEXT
    ]


def _gpu_rate(field: _Fields, valid_from: date, valid_to: date | None, source: str) -> tuple[object, ...]:
    """A `gpu` row as a GPU_RATE_SCHEMA row."""
    hourly = field.price("hourly_usd", places=_RATE_PLACES, unit="USD per GPU-hour", required=True)
    return (field.text("gpu_type", required=True), field.text("cluster"), hourly, valid_from, valid_to, source)


@dataclass(frozen=True)
class _Claim:
    """What one row prices (`target`, in words) and over which UTC days."""

    target: str
    valid_from: date
    valid_to: date | None
    line: int

    def overlaps(self, other: _Claim) -> bool:
        return (other.valid_to is None or self.valid_from < other.valid_to) and (
            self.valid_to is None or other.valid_from < self.valid_to
        )

    def period(self) -> str:
        start = "from the start" if self.valid_from == _EPOCH else f"from {self.valid_from}"
        return f"{start} to {self.valid_to}" if self.valid_to else f"{start} on"


def _refuse_overlaps(path: Path, claims: list[_Claim]) -> None:
    """Two rows pricing the same thing on the same day are ambiguous (which one did the user mean?), even
    with equal values: each day of a target has one row, so `price_source` names one line."""
    by_start = sorted(claims, key=lambda c: (c.valid_from, c.line))
    for i, later in enumerate(by_start):
        for earlier in by_start[:i]:
            if earlier.target != later.target or not earlier.overlaps(later):
                continue
            fix = (
                f"give line {earlier.line} a valid_to of {later.valid_from}"
                if earlier.valid_from < later.valid_from
                else "remove one of them or give them dates that do not overlap"
            )
            first, second = sorted((earlier, later), key=lambda c: c.line)
            raise InputError(
                f"{path} line {second.line}: {later.target} is also set by line {first.line} on overlapping days "
                f"(line {first.line} {first.period()}, line {second.line} {second.period()}), so which one applies "
                f"is ambiguous; expected one row per day: {fix}."
            )


class _Fields:
    def __init__(self, row: dict[str, str | None], where: str) -> None:
        self.row = row
        self.where = where

    def require_unused(self, kind: str) -> None:
        """Refuse a value in a column a `kind` row does not read: ignored, it would price other than written."""
        uses = _KIND_COLUMNS[kind]
        for name in self.row:
            if name and name not in uses and self.text(name) is not None:
                raise InputError(
                    f"{self.where}: {name} is '{self.text(name)}'; expected it empty, as a {kind} row does not "
                    f"use it (a {kind} row reads {', '.join(uses[1:])})."
                )

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = (self.row.get(name) or "").strip()
        if required and not value:
            raise InputError(f"{self.where}: {name} is empty; expected a value.")
        return value or None

    def number(self, name: str, *, required: bool = False) -> Decimal | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number < 0:
            raise self._refused(name, "a non-negative decimal number")
        return number

    def price(self, name: str, *, places: int, unit: str, required: bool = False) -> Decimal | None:
        """A non-negative number below MAX_PRICE with at most `places` decimals."""
        number = self.number(name, required=required)
        if number is None:
            return None
        if number >= MAX_PRICE:
            raise self._refused(name, f"a non-negative decimal number below {MAX_PRICE:,} ({unit})")
        return self._stored(name, number, places)

    def percentage(self, name: str) -> Decimal:
        """A required percentage from 0 to 100 with at most `_PCT_PLACES` decimals."""
        number = self.number(name, required=True)
        assert number is not None
        if number > 100:
            raise self._refused(name, "a percentage from 0 to 100")
        return self._stored(name, number, _PCT_PLACES)

    def _stored(self, name: str, number: Decimal, places: int) -> Decimal:
        """`number` if `places` decimals hold it exactly: rounding it would change the price silently."""
        # below 1e6 with at most 18 decimals: 24 digits, within quantize's default precision of 28
        stored = number.quantize(Decimal(1).scaleb(-places))
        if stored != number:
            raise self._refused(name, f"at most {places} decimal places (the precision it is stored with)")
        return stored

    def _refused(self, name: str, expected: str) -> InputError:
        return InputError(f"{self.where}: {name} is '{self.text(name)}'; expected {expected}.")

    def day(self, name: str, *, required: bool = False) -> date | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InputError(f"{self.where}: {name} is '{value}'; expected a date like 2026-10-01.") from None
