"""`finops prices` (what is in force, and where each price came from) and `finops reprice`.

The listing shows what `finops run` charges: the user's model prices laid over the catalog
(`finops.price.overlay`) and, where a discount is in force, the prices after it, with the discount in its
own column and named in the source (`genai-prices 0.2.3, less prices.csv line 2`, as `spend.price_source`
says)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal, localcontext
from pathlib import Path

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from finops.attribute.tokens import discount_factors
from finops.errors import InputError
from finops.pipeline import reprice, sync_configuration
from finops.price.overlay import overlay_overrides
from finops.store.db import Database, connect
from finops.store.spend import frame, read_discounts

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)
if not out.is_terminal:
    out = Console(highlight=False, soft_wrap=True, markup=False, width=240)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} '{value}' is not a date; expected e.g. 2026-10-01.") from None


def _money(value: object) -> str:
    return "" if value is None else format(value.normalize(), "f") if hasattr(value, "normalize") else str(value)


# the listing's price columns: (heading, column of the `prices` view)
_PRICES = (
    ("input", "input_mtok"),
    ("cached", "cached_input_mtok"),
    ("cache write", "cache_write_mtok"),
    ("1h write", "cache_write_1h_mtok"),
    ("output", "output_mtok"),
    ("reasoning", "reasoning_mtok"),
)


def _in_force(db: Database, day: date, provider: str | None, model: str | None, tier: str) -> pl.DataFrame:
    """The price rows `finops run` would use on `day`: the user's model prices laid over the catalog, and the
    discount in force on each (`_factor`: 1 - pct/100, NULL without one; `price_source` names it, as in
    `spend`). The prices themselves are the catalog's or the override's; `_discounted` applies the factor."""
    rows = frame(
        db,
        """
        SELECT provider AS price_provider, model AS price_model, model_name, service_tier, context_above,
               tod_start_min, tod_end_min, valid_from, valid_to, input_mtok, cached_input_mtok, cache_write_mtok,
               cache_write_1h_mtok, output_mtok, reasoning_mtok, source
        FROM prices
        WHERE ($provider IS NULL OR provider = $provider)
          AND ($model IS NULL OR contains(model, $model))
          AND ($tier = 'all' OR service_tier = $tier)""",
        {"provider": provider, "model": model, "tier": tier},
    )
    start = datetime.combine(day, time(0), UTC)
    return (
        overlay_overrides(rows.lazy())
        .filter((pl.col("valid_from") <= start) & (pl.col("valid_to").is_null() | (pl.col("valid_to") > start)))
        .with_columns(charge_day=pl.lit(day), price_source=pl.col("source"))
        .pipe(discount_factors, read_discounts(db).lazy())
        .sort("price_provider", "price_model", "service_tier", "context_above", "tod_start_min", nulls_last=False)
        .collect()
    )


def _discounted(price: Decimal | None, factor: Decimal | None) -> Decimal | None:
    """`price` less the discount, exactly (a price has at most 18 decimals, a factor 8)."""
    if price is None or factor is None:
        return price
    with localcontext(prec=60):
        return price * factor


def _percent_off(factor: Decimal | None) -> str:
    return "" if factor is None else f"{_money((1 - factor) * 100)}%"


def register(cli: click.Group) -> None:
    @cli.command("prices")
    @click.option("--at", "at", metavar="DATE", help="Prices in force on this UTC day [default: today].")
    @click.option("--provider", help="Only this provider (catalog id, e.g. openai, anthropic, google).")
    @click.option("--model", help="Only models whose catalog id contains this text.")
    @click.option(
        "--tier",
        default="default",
        show_default=True,
        type=click.Choice(["default", "batch", "flex", "priority", "all"]),
    )
    @click.option("--resolved", is_flag=True, help="Show how each model name seen in usage resolved instead.")
    @click.option("--owners", type=click.Path(path_type=Path, dir_okay=False), help="Ownership rules CSV.")
    @click.option("--prices", "prices", type=click.Path(path_type=Path, dir_okay=False), help="Price overrides CSV.")
    @click.pass_obj
    def prices_cmd(
        state: object,
        at: str | None,
        provider: str | None,
        model: str | None,
        tier: str,
        resolved: bool,
        owners: Path | None,
        prices: Path | None,
    ) -> int:
        """List the prices in force (USD per million tokens, after your discounts) and where each came from."""
        settings = state.settings  # type: ignore[attr-defined]
        day = _day(at, "--at") if at else datetime.now(UTC).date()
        with connect(settings) as db:
            sync_configuration(db, owners or settings.owners, prices or settings.price_overrides)
            if resolved:
                rows = frame(db, "SELECT provider, model, resolution FROM model_resolutions ORDER BY ALL")
                table = Table("provider", "model as sent", "resolution", header_style="bold")
                for r in rows.iter_rows():
                    table.add_row(*(str(v) if v is not None else "" for v in r))
                out.print(table)
                return 0
            rows = _in_force(db, day, provider, model, tier)
        table = Table(
            "provider",
            "model",
            "tier",
            "context >",
            *(name for name, _ in _PRICES),
            "valid from",
            "discount",
            "source",
            header_style="bold",
        )
        for r in rows.iter_rows(named=True):
            context = "" if r["context_above"] is None else f"{r['context_above']:,}"
            if r["tod_start_min"] is not None:
                context += (
                    f" {r['tod_start_min'] // 60:02d}:{r['tod_start_min'] % 60:02d}-"
                    f"{r['tod_end_min'] // 60:02d}:{r['tod_end_min'] % 60:02d}Z"
                )
            table.add_row(
                r["price_provider"],
                r["price_model"],
                r["service_tier"],
                context.strip(),
                *(_money(_discounted(r[column], r["_factor"])) for _, column in _PRICES),
                f"{r['valid_from']:%Y-%m-%d}",
                _percent_off(r["_factor"]),
                r["price_source"],
            )
        out.print(table)
        out.print(f"{rows.height:,} price rows in force on {day} (USD per million tokens, after discounts)")
        return 0

    @cli.command("reprice")
    @click.option("--from", "start", required=True, metavar="DATE", help="First UTC day (inclusive).")
    @click.option("--to", "end", required=True, metavar="DATE", help="Last UTC day (exclusive).")
    @click.option("--owners", type=click.Path(path_type=Path, dir_okay=False), help="Ownership rules CSV.")
    @click.option("--prices", "prices", type=click.Path(path_type=Path, dir_okay=False), help="Price overrides CSV.")
    @click.pass_obj
    def reprice_cmd(state: object, start: str, end: str, owners: Path | None, prices: Path | None) -> int:
        """Recompute a period under the current catalog and rules; record and print what changed."""
        settings = state.settings  # type: ignore[attr-defined]
        first, last = _day(start, "--from"), _day(end, "--to")
        if last <= first:
            raise InputError(f"--to {last} is not after --from {first}; the period is [from, to).")
        with connect(settings) as db:
            report = reprice(
                db,
                first,
                last,
                owners=owners or settings.owners,
                price_overrides=prices or settings.price_overrides,
                idle_policy=settings.idle_policy,
                chunk_records=settings.run_chunk_records,
            )
        changed = report.diffs.filter(report.diffs["diff_usd"] != 0)
        out.print(
            f"repriced {report.records:,} records of {first}..{last} (run {report.run_id}); "
            f"{changed.height} team/feature/model groups changed, total difference {_money(report.total_diff)}"
        )
        if changed.height:
            table = Table("team", "feature", "model", "old", "new", "difference", header_style="bold")
            for r in changed.head(30).iter_rows(named=True):
                table.add_row(
                    r["team"],
                    r["feature"],
                    r["model"] or "",
                    _money(r["old_cost_usd"]),
                    _money(r["new_cost_usd"]),
                    _money(r["diff_usd"]),
                )
            out.print(table)
        out.print(f'recorded in reprices: finops sql "SELECT * FROM reprices WHERE run_id = {report.run_id}"')
        return 0
