"""How an alert's payload looks on each channel: the signed JSON webhook body, a Slack incoming-webhook message
(`text` + `blocks`), and an e-mail."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from finops import __version__
from finops.alert.payload import money

__all__ = ["detail_lines", "email_message", "slack_body", "webhook_body"]

_SLACK_HEADER_MAX = 150  # Slack's limit for a header block's text
_SLACK_TEXT_MAX = 3000  # and for a section's text


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The Standard Webhooks envelope: `type`, `timestamp` (when the alert fired), `data` (the payload)."""
    envelope = {"type": f"budget.alert.{payload['kind']}", "timestamp": payload["fired_at"], "data": payload}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def _usd(value: str | None) -> str:
    return money(Decimal(value)) if value is not None else "n/a"


def detail_lines(payload: dict[str, Any]) -> list[str]:
    """Budget, spend, forecast, breach date and drivers, one fact a line (for e-mail and Slack)."""
    budget = payload["budget"]
    lines = [
        f"Budget {budget['budget_id']} ({budget['scope']}): {_usd(budget['amount_usd'])} per "
        f"{budget['period_kind']}, period {payload['period']['label']}",
        f"Spent to date: {_usd(payload['actual_usd'])} ({payload['actual_pct']}% of the budget)",
    ]
    forecast = payload.get("forecast")
    if forecast:
        interval = ""
        if forecast.get("lo80_usd") and forecast.get("hi80_usd"):
            interval = f", 80% {_usd(forecast['lo80_usd'])}-{_usd(forecast['hi80_usd'])}"
        if forecast.get("lo95_usd") and forecast.get("hi95_usd"):
            interval += f", 95% {_usd(forecast['lo95_usd'])}-{_usd(forecast['hi95_usd'])}"
        method = f" [{forecast['method']}]" if forecast.get("method") else ""
        lines.append(f"Forecast for the period: {_usd(forecast.get('forecast_usd'))}{interval}{method}")
    lines += _breach_lines(payload)
    drivers = payload.get("drivers") or {}
    for name, label in (("features", "Top features"), ("models", "Top models")):
        if drivers.get(name):
            lines.append(f"{label}: " + ", ".join(f"{d['name']} {_usd(d['cost_usd'])}" for d in drivers[name]))
    if drivers.get("findings"):
        lines.append(
            "Findings: "
            + ", ".join(
                f"{f['kind']}{' on ' + f['feature'] if f.get('feature') else ''} ({f['severity']}, "
                f"{_usd(f['excess_cost_usd'])} excess)"
                for f in drivers["findings"]
            )
        )
    lines.append(f"Alert {payload['alert_id']} ({payload['dedup_key']}), as of {payload['as_of']}")
    return lines


def _breach_lines(payload: dict[str, Any]) -> list[str]:
    """The projected breach date and the amount it is for (a forecast alert's is its threshold's amount); a
    forecast alert whose path never reaches that amount says so."""
    date, amount = payload.get("projected_breach_date"), payload.get("projected_breach_usd")
    reaching = f" (spend reaching {_usd(amount)})" if amount is not None else ""
    if date:
        return [f"Projected breach date: {date}{reaching}"]
    if payload.get("kind") == "forecast" and amount is not None:
        return [f"Projected breach date: none in the period (the forecast's daily path stays under {_usd(amount)})"]
    return []


def slack_body(payload: dict[str, Any]) -> bytes:
    """A Slack-compatible incoming-webhook message: `text` (the notification fallback) and `blocks`."""
    lines = detail_lines(payload)
    facts, footer = lines[:-1], lines[-1]
    # names come from usage data: escaped, `<!channel>` or `<url|text>` in a team name stays text in Slack
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(_title(payload), _SLACK_HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_slack(payload["message"]), _SLACK_TEXT_MAX)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(_slack("\n".join(f"• {f}" for f in facts)), _SLACK_TEXT_MAX)},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_slack(footer), _SLACK_TEXT_MAX)}]},
    ]
    return json.dumps({"text": _slack(payload["message"]), "blocks": blocks}, ensure_ascii=False).encode()


def _slack(text: str) -> str:
    """Text for Slack's mrkdwn: its three control characters escaped (Slack's message formatting rules)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(payload: dict[str, Any]) -> str:
    """One line (an e-mail subject, a Slack header): line breaks and other control characters in names from
    usage data become spaces."""
    kind = payload["kind"]
    scope = " ".join("".join(c if c.isprintable() else " " for c in payload["budget"]["scope"]).split())
    if kind == "actual":
        return f"Budget {payload['threshold_pct']}% reached: {scope}"
    if kind == "forecast":
        return f"Budget forecast to reach {payload['threshold_pct']}%: {scope}"
    if kind == "recovery":
        return f"Back under {payload['threshold_pct']}%: {scope}"
    return f"Cost finding: {scope}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def email_message(payload: dict[str, Any], *, sender: str, recipient: str) -> EmailMessage:
    """A plain-text e-mail; its Message-ID is derived from the alert id, so a resent copy is recognisable."""
    message = EmailMessage()
    message["Subject"] = _cut(f"[finops] {_title(payload)}", 200)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{payload['alert_id']}@finops>"
    message["X-Finops-Alert-Id"] = payload["alert_id"]
    message["User-Agent"] = f"finops/{__version__}"
    message.set_content(payload["message"] + "\n\n" + "\n".join(detail_lines(payload)) + "\n")
    return message
