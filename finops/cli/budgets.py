"""`finops budgets set|list|show|delete`: budgets per team, team + feature, or tag, and their channels."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import click
from rich.console import Console
from rich.table import Table

from finops.alert.budgets import (
    Budget,
    BudgetSpec,
    Channel,
    delete_budget,
    find_budget,
    get_budget,
    list_budgets,
    parse_thresholds,
    set_budget,
)
from finops.alert.payload import money
from finops.errors import InputError
from finops.store.db import connect

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} '{value}' is not a date; expected a UTC day such as 2026-11-01.") from None


def _describe(budget: Budget, *, redact: bool) -> list[str]:
    period: str = budget.period_kind
    if budget.period_kind == "custom":
        period = f"custom {budget.period_start} to {budget.period_end} (end exclusive)"
    channels = [c.redacted() if redact else str(c) for c in budget.channels] or ["(none: alerts are recorded only)"]
    return [
        f"budget {budget.budget_id}{'' if budget.active else ' (deleted)'}: {budget.scope}",
        f"  {money(budget.amount_usd)} per {period}; thresholds {_percents(budget.thresholds)}",
        *(f"  notify {c}" for c in channels),
    ]


def _channels(before: Budget | None, added: tuple[str, ...], *, clear: bool) -> list[str | Channel] | None:
    """The channels to store: None (keep the stored ones, or none for a new budget) when neither `added` nor
    `clear` is given; else the stored ones (none with `clear`) followed by `added`."""
    if not added and not clear:
        return None
    kept: list[str | Channel] = [] if clear or before is None else list(before.channels)
    return kept + list(added)


def _changes(before: Budget, after: Budget) -> list[str]:
    """What an update changed, one phrase per field (channels as added / removed), in the order of `_describe`."""
    found = []
    if before.amount_usd != after.amount_usd:
        found.append(f"amount {money(before.amount_usd)} to {money(after.amount_usd)}")
    if before.thresholds != after.thresholds:
        found.append(f"thresholds {_percents(before.thresholds)} to {_percents(after.thresholds)}")
    found += [f"added {c}" for c in after.channels if c not in before.channels]
    found += [f"removed {c}" for c in before.channels if c not in after.channels]
    return found


def _percents(thresholds: tuple[int, ...]) -> str:
    return ", ".join(f"{t}%" for t in thresholds)


def register(cli: click.Group) -> None:
    @cli.group("budgets")
    def budgets() -> None:
        """Set, list, show and delete budgets."""

    @budgets.command("set")
    @click.option("--team", metavar="TEAM", help="The team (required unless --tag alone covers every team).")
    @click.option("--feature", metavar="FEATURE", help="One feature of the team.")
    @click.option("--tag", metavar="KEY=VALUE", help="Spend of usage carrying this tag (within --team when given).")
    @click.option(
        "--period", "period_kind", type=click.Choice(["month", "quarter", "custom"]), default="month", show_default=True
    )
    @click.option("--start", metavar="DAY", help="Custom period: first UTC day (e.g. 2026-11-01).")
    @click.option("--end", metavar="DAY", help="Custom period: UTC day after the last (exclusive).")
    @click.option("--amount", required=True, metavar="USD", help="Budget for the period, in USD.")
    @click.option(
        "--thresholds",
        metavar="PCT,...",
        help="Percents to alert at [default for a new budget: 50,80,100; an update keeps the budget's].",
    )
    @click.option(
        "--notify",
        "channels",
        multiple=True,
        metavar="CHANNEL",
        help="webhook:URL, slack:URL or email:ADDRESS (repeatable); an update adds it to the budget's channels.",
    )
    @click.option(
        "--clear-notify",
        is_flag=True,
        help="Remove the budget's channels first (keep some by giving them again with --notify).",
    )
    @click.option("--new-team", is_flag=True, help="Allow a team that has no spend yet.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def set_command(
        state: object,
        team: str | None,
        feature: str | None,
        tag: str | None,
        period_kind: str,
        start: str | None,
        end: str | None,
        amount: str,
        thresholds: str | None,
        channels: tuple[str, ...],
        clear_notify: bool,
        new_team: bool,
        fmt: str,
    ) -> int:
        """Create a budget, or update the one with the same scope and period.

        An update keeps what is not given: the thresholds without --thresholds, the channels without
        --clear-notify (--notify adds to them)."""
        spec = BudgetSpec(
            amount_usd=amount,
            team=team,
            feature=feature,
            tag=tag,
            period_kind=period_kind,
            period_start=_day(start, "--start"),
            period_end=_day(end, "--end"),
            thresholds=parse_thresholds(thresholds) if thresholds is not None else None,
            new_team=new_team,
        )
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            before = find_budget(db, spec)
            wanted = _channels(before, channels, clear=clear_notify)
            budget, created = set_budget(db, replace(spec, channels=wanted))
        changes = [] if before is None else _changes(before, budget)
        if fmt == "json":
            click.echo(json.dumps({**budget.as_dict(), "created": created, "changes": changes}, indent=2))
            return 0
        out.print(("created " if created else "updated ") + "\n".join(_describe(budget, redact=False)))
        if before is not None:
            out.print("  changed: " + "; ".join(changes) if changes else "  nothing changed")
        return 0

    @budgets.command("list")
    @click.option("--team", metavar="TEAM", help="Only this team's budgets.")
    @click.option("--all", "include_inactive", is_flag=True, help="Include deleted budgets.")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @click.pass_obj
    def list_command(state: object, team: str | None, include_inactive: bool, fmt: str) -> int:
        """List budgets (webhook URLs shortened; `show` prints them whole)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            found = list_budgets(db, team=team, include_inactive=include_inactive)
        if fmt == "json":
            click.echo(json.dumps([b.as_dict() for b in found], indent=2))
            return 0
        if not found:
            out.print("no budgets yet: finops budgets set --team TEAM --amount USD --notify CHANNEL")
            return 0
        table = Table("id", "scope", "period", "amount", "thresholds", "channels", "active", header_style="bold")
        for b in found:
            period = b.period_kind if b.period_kind != "custom" else f"{b.period_start}/{b.period_end}"
            table.add_row(
                str(b.budget_id),
                b.scope,
                period,
                money(b.amount_usd),
                ",".join(map(str, b.thresholds)),
                " ".join(c.redacted() for c in b.channels),
                "yes" if b.active else "no",
            )
        out.print(table)
        return 0

    @budgets.command("show")
    @click.argument("budget_id", type=int)
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def show_command(state: object, budget_id: int, fmt: str) -> int:
        """Show one budget."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            budget = get_budget(db, budget_id)
        if fmt == "json":
            click.echo(json.dumps(budget.as_dict(), indent=2))
        else:
            out.print("\n".join(_describe(budget, redact=False)))
        return 0

    @budgets.command("delete")
    @click.argument("budget_id", type=int)
    @click.pass_obj
    def delete_command(state: object, budget_id: int) -> int:
        """Delete a budget (its alerts stay in the ledger)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            budget = delete_budget(db, budget_id)
        out.print(f"deleted budget {budget.budget_id} ({budget.scope})")
        return 0
