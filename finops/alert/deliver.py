"""Drain the alert outbox: send each due (alert, channel) row, retry what failed, disable what is gone.

Order of operations for one drain (`deliver_due`, what the scheduler and `finops alerts deliver` run):
  1. claim up to `batch_size` due rows (a short transaction; the database is never held while sending);
  2. send each one with a timeout: a signed JSON webhook, a Slack-compatible message, or an e-mail;
     once an endpoint fails in this drain, its remaining rows wait for its retry instead of piling on;
  3. record every outcome (another short transaction):
       2xx / SMTP accepted         -> delivered
       410 Gone                    -> the endpoint is disabled (visible in `finops alerts endpoints`),
                                      its pending rows become `disabled`
       SMTP 5xx for the recipient  -> failed (retrying cannot help)
       anything else (other HTTP statuses, timeouts, refused connections, SMTP 4xx)
                                   -> retried after `Retry-After` when the receiver sent one (up to
                                      `retry_after_max_s`), else after retry_base_s * 2^(attempt-1),
                                      capped at retry_max_s, times a random factor in [0.5, 1] (jitter);
                                      failed after `max_attempts`;
  4. repeat until nothing is due.
A row is marked delivered only on success, so a receiver that was down gets every alert once it is back;
the `webhook-id` (the alert id) lets it drop a copy it got twice (a reply lost to a timeout).
"""

from __future__ import annotations

import json
import logging
import random
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from finops import __version__
from finops.alert import outbox
from finops.alert.budgets import Channel, parse_channel
from finops.alert.locks import LEDGER_LOCK
from finops.alert.outbox import Claimed, Result
from finops.alert.render import email_message, slack_body, webhook_body
from finops.alert.settings import AlertSettings, load_alert_settings, webhook_keys
from finops.alert.signing import signature_headers
from finops.store.db import Database

log = logging.getLogger(__name__)

__all__ = ["DeliveryReport", "Outcome", "deliver_due"]

_MAX_DRAIN_ROUNDS = 1000


@dataclass(frozen=True)
class Outcome:
    """One attempt's result."""

    delivered: bool
    status: str | None = None  # HTTP status or SMTP reply code
    error: str | None = None
    retry_after_s: float | None = None
    gone: bool = False  # 410: disable the endpoint
    permanent: bool = False  # no point retrying


@dataclass
class DeliveryReport:
    """What one drain did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def deliver_due(
    db: Database,
    settings: AlertSettings | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
    ignore_schedule: bool = False,
) -> DeliveryReport:
    """Send every due outbox row (every pending one with `ignore_schedule`); see the module docstring."""
    settings = settings or load_alert_settings()
    clock = now or (lambda: datetime.now(UTC))
    owns_client = client is None
    http = client or httpx.Client(
        timeout=settings.timeout_s, follow_redirects=False, headers={"user-agent": f"finops/{__version__}"}
    )
    sender = _Sender(settings, http)
    report = DeliveryReport()
    seen: list[int] = []
    failing: dict[str, datetime] = {}  # endpoint -> its retry time, once it failed in this drain
    random_source = rng or random.Random()
    lease = timedelta(seconds=settings.timeout_s * settings.batch_size + 60)
    try:
        for _ in range(_MAX_DRAIN_ROUNDS):
            moment = clock()
            with LEDGER_LOCK:
                claimed = outbox.claim_due(
                    db,
                    now=moment,
                    lease_until=moment + lease,
                    limit=settings.batch_size,
                    skip=seen,
                    ignore_schedule=ignore_schedule,
                )
            if not claimed:
                break
            seen.extend(c.delivery_id for c in claimed)
            results, gone = _send_batch(claimed, sender, settings, clock, random_source, report, failing)
            with LEDGER_LOCK:
                outbox.record_results(db, results, clock())
                for channel, reason in gone.items():
                    outbox.disable_endpoint(db, channel, reason, clock())
    finally:
        if owns_client:
            http.close()
    return report


def _send_batch(
    claimed: list[Claimed],
    sender: _Sender,
    settings: AlertSettings,
    clock: Callable[[], datetime],
    rng: random.Random,
    report: DeliveryReport,
    failing: dict[str, datetime],
) -> tuple[list[Result], dict[str, str]]:
    """Send the claimed rows; an endpoint that failed (in this drain) or is gone is not tried again: its rows wait
    for its retry time, or are disabled with it."""
    results: list[Result] = []
    gone: dict[str, str] = {}
    for item in claimed:
        if item.channel in gone or item.channel in failing:
            retry_at = failing.get(item.channel)
            results.append(Result(item.delivery_id, item.alert_id, "pending", retry_at, None, None, counted=False))
            report.deferred += 1
            continue
        outcome = sender.send(item)
        moment = clock()
        attempts = item.attempts + 1
        if outcome.delivered:
            results.append(Result(item.delivery_id, item.alert_id, "delivered", None, outcome.status, None))
            report.delivered += 1
        elif outcome.gone:
            reason = f"{outcome.status} Gone from the endpoint; no more deliveries until re-enabled"
            gone[item.channel] = reason
            results.append(Result(item.delivery_id, item.alert_id, "disabled", None, outcome.status, reason))
            report.disabled += 1
        elif outcome.permanent or attempts >= settings.max_attempts:
            results.append(Result(item.delivery_id, item.alert_id, "failed", None, outcome.status, outcome.error))
            report.failed += 1
            report.errors.append(f"{_redacted(item.channel)}: {outcome.error}")
        else:
            retry_at = moment + timedelta(seconds=retry_delay_s(attempts, outcome.retry_after_s, settings, rng))
            failing[item.channel] = retry_at
            results.append(Result(item.delivery_id, item.alert_id, "pending", retry_at, outcome.status, outcome.error))
            report.retrying += 1
            report.errors.append(f"{_redacted(item.channel)}: {outcome.error}")
    return results, gone


def retry_delay_s(attempts: int, retry_after_s: float | None, settings: AlertSettings, rng: random.Random) -> float:
    """The receiver's `Retry-After` when given (capped), else exponential backoff with jitter."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), settings.retry_after_max_s)
    backoff = min(settings.retry_max_s, settings.retry_base_s * 2.0 ** (attempts - 1))
    return float(backoff * rng.uniform(0.5, 1.0))


def _redacted(channel: str) -> str:
    try:
        return parse_channel(channel).redacted()
    except Exception:  # a stored channel always parses; never let a log line fail a drain
        return "<channel>"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds, from a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


class _Sender:
    """Sends one claimed row on its channel; never raises for a receiver's failure."""

    def __init__(self, settings: AlertSettings, client: httpx.Client) -> None:
        self.settings = settings
        self.client = client
        self.keys = webhook_keys(settings.webhook_secret)

    def send(self, item: Claimed) -> Outcome:
        try:
            channel = parse_channel(item.channel)
            payload: dict[str, Any] = json.loads(item.payload)
            if channel.kind == "email":
                message = email_message(payload, sender=self.settings.smtp_from, recipient=channel.target)
                return self._email(message)
            if channel.kind == "slack":
                body = slack_body(payload)
                headers = {"content-type": "application/json"}
            else:
                body = webhook_body(payload)
                headers = {"content-type": "application/json", **signature_headers(self.keys, item.alert_id, body)}
        except Exception as exc:  # a message that cannot be built fails its own row, never the drain
            log.exception("alert %s on %s: the message could not be built", item.alert_id, _redacted(item.channel))
            return Outcome(False, None, f"the message could not be built: {type(exc).__name__}", permanent=True)
        return self._post(channel, body, headers)

    def _post(self, channel: Channel, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            response = self.client.post(channel.target, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, None, f"no answer within {self.settings.timeout_s:g} s (FINOPS_ALERT_TIMEOUT_S)")
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"could not connect: {type(exc).__name__}: {str(exc)[:200]}")
        status = str(response.status_code)
        if response.is_success:
            return Outcome(True, status)
        if response.status_code == 410:
            return Outcome(False, status, "410 Gone", gone=True)
        return Outcome(
            False,
            status,
            f"HTTP {status}: {response.text[:200]}",
            retry_after_s=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        )

    def _email(self, message: EmailMessage) -> Outcome:
        s = self.settings
        if not s.smtp_host:
            return Outcome(False, None, "FINOPS_ALERT_SMTP_HOST is not set; e-mail cannot be sent")
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password.get_secret_value() if s.smtp_password else "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return Outcome(False, str(codes[0]), f"recipient refused: {exc.recipients}", permanent=min(codes) >= 500)
        except smtplib.SMTPResponseException as exc:
            permanent = exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
            return Outcome(False, str(exc.smtp_code), f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent)
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(False, None, f"SMTP {type(exc).__name__}: {str(exc)[:200]}")
        if refused:
            return Outcome(False, None, f"recipient refused: {refused}")
        return Outcome(True, "250")
