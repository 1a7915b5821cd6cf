"""`finops alerts list|show|deliver|endpoints|enable`: the alert ledger and its delivery."""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from finops.alert.budgets import parse_channel
from finops.alert.deliver import deliver_due
from finops.alert.ledger import ALERT_DELIVERIES, ALERT_KINDS, ALERT_STATES, get_alert, list_alerts
from finops.alert.outbox import enable_endpoint, endpoints
from finops.alert.settings import load_alert_settings
from finops.errors import InputError
from finops.store.db import connect

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value) if value is not None else None


def register(cli: click.Group) -> None:
    @cli.group("alerts")
    def alerts() -> None:
        """List alerts, deliver the outbox now, and manage disabled endpoints."""

    @alerts.command("list")
    @click.option(
        "--status", "status", multiple=True, type=click.Choice(ALERT_STATES), help="Alert state (repeatable)."
    )
    @click.option("--kind", "kind", multiple=True, type=click.Choice(ALERT_KINDS), help="Alert kind (repeatable).")
    @click.option("--delivery", multiple=True, type=click.Choice(ALERT_DELIVERIES), help="Delivery state (repeatable).")
    @click.option("--budget", "budget_id", type=int, help="Only this budget's alerts.")
    @click.option("--limit", type=int, default=50, show_default=True)
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @click.pass_obj
    def list_command(
        state: object,
        status: tuple[str, ...],
        kind: tuple[str, ...],
        delivery: tuple[str, ...],
        budget_id: int | None,
        limit: int,
        fmt: str,
    ) -> int:
        """Alerts, newest first."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            found = list_alerts(db, status=status, kind=kind, delivery=delivery, budget_id=budget_id, limit=limit)
        if fmt == "json":
            click.echo(json.dumps(found, indent=2, default=_plain))
            return 0
        if not found:
            out.print("no alerts")
            return 0
        for a in found:
            kind = a["kind"] + (f" {a['threshold_pct']}%" if a["threshold_pct"] is not None else "")
            out.print(
                f"{a['fired_at']:%Y-%m-%d %H:%M}  {a['alert_id']}  budget {a['budget_id']}  {kind}  {a['period']}  "
                f"{a['state']}  delivery {a['delivery']}"
            )
            out.print(f"    {a['message']}")
        return 0

    @alerts.command("show")
    @click.argument("alert_id")
    @click.pass_obj
    def show_command(state: object, alert_id: str) -> int:
        """One alert: its payload and its delivery on each channel (JSON)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            alert = get_alert(db, alert_id)
        click.echo(json.dumps(alert, indent=2, default=_plain))
        return 0

    @alerts.command("deliver")
    @click.option("--all", "ignore_schedule", is_flag=True, help="Also send rows whose retry is not due yet.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def deliver_command(state: object, ignore_schedule: bool, fmt: str) -> int:
        """Send the alert outbox now (what the scheduler's deliver job does)."""
        settings = load_alert_settings()
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            report = deliver_due(db, settings, ignore_schedule=ignore_schedule)
        if fmt == "json":
            click.echo(json.dumps(report.as_dict(), indent=2))
            return 0
        out.print(
            f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed, "
            f"{report.disabled} disabled (410), {report.deferred} deferred"
        )
        for error in report.errors[:10]:
            out.print(f"  {error}")
        return 0

    @alerts.command("endpoints")
    @click.pass_obj
    def endpoints_command(state: object) -> int:
        """Every channel alerts were sent to, its counts, and whether it is disabled (after a 410)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            rows = endpoints(db)
        if not rows:
            out.print("no deliveries yet")
        for r in rows:
            disabled = (
                f"  DISABLED since {r['disabled_at']:%Y-%m-%d %H:%M}: {r['disabled_reason']}"
                if r["disabled_at"]
                else ""
            )
            out.print(
                f"{r['channel']}  pending {r['pending']}  delivered {r['delivered']}  "
                f"undelivered {r['undelivered']}{disabled}"
            )
        return 0

    @alerts.command("enable")
    @click.argument("channel")
    @click.pass_obj
    def enable_command(state: object, channel: str) -> int:
        """Send to a disabled endpoint again (new alerts; the ones it missed stay `disabled`). A channel that is
        not disabled is a mistake (exit code 1)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            if not enable_endpoint(db, channel, datetime.now(UTC)):
                raise InputError(_not_disabled(channel, endpoints(db)))
        out.print(f"enabled {channel}")
        return 0


def _not_disabled(channel: str, known: list[dict[str, Any]]) -> str:
    """Why `channel` cannot be enabled, in one sentence: not a channel, never sent to, or not disabled; with
    the closest disabled channel when one looks like it (a trailing slash, a typo)."""
    disabled = [str(r["channel"]) for r in known if r["disabled_at"] is not None]
    close = difflib.get_close_matches(channel, disabled, n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else "."
    listing = "`finops alerts endpoints` lists the channels alerts were sent to and which are disabled"
    try:
        parse_channel(channel)
    except InputError:
        return f"'{channel}' is not a channel (webhook:URL, slack:URL or email:ADDRESS); {listing}{hint}"
    if channel not in {str(r["channel"]) for r in known}:
        return f"No alert was ever sent to {channel}, so it is not disabled; {listing}{hint}"
    return f"{channel} is not disabled; {listing}{hint}"
