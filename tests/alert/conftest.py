"""Fixtures of the alert tests: spend and forecasts written straight into their tables, budgets, alert settings,
and real receivers on loopback (an HTTP server that can be stopped and restarted, an aiosmtpd SMTP server)."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from finops.alert import alert_step
from finops.alert.budgets import Budget, BudgetSpec, create_budget
from finops.alert.settings import AlertSettings, load_alert_settings
from finops.store.db import Database
from tests.helpers import rows

NOV = date(2026, 11, 1)


def at(day: date, hour: int = 0) -> datetime:
    """Midnight (or `hour`) UTC of `day`."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def put_spend(
    db: Database, day: date, team: str, cost: Decimal | str | int, *, feature: str = "chat", model: str = "gpt-4o"
) -> None:
    """One `spend_daily` row, as the attribution stage writes them."""
    db.execute(
        """INSERT INTO spend_daily (charge_day, team, feature, provider, model, kind, line_type, cost_usd,
                                   list_cost_usd, requests, input_tokens, cached_input_tokens, cache_write_tokens,
                                   output_tokens, reasoning_tokens, unpriced_requests)
           VALUES ($d, $t, $f, 'openai', $m, 'tokens', 'usage', $c, $c, 1, 0, 0, 0, 0, 0, 0)""",
        {"d": day, "t": team, "f": feature, "m": model, "c": Decimal(str(cost))},
    )


def restate_spend(db: Database, day: date, team: str, cost: Decimal | str | int) -> None:
    """Replace a team's spend of one day (late or revised usage, as a rebuilt day looks)."""
    db.execute("DELETE FROM spend_daily WHERE charge_day = $d AND team = $t", {"d": day, "t": team})
    put_spend(db, day, team, cost)


# The columns DESIGN.md promises for `forecasts`; the forecast stage's migration may add more.
_FORECASTS_DDL = """CREATE TABLE IF NOT EXISTS forecasts (
    team VARCHAR, feature VARCHAR, period VARCHAR NOT NULL, as_of TIMESTAMPTZ NOT NULL,
    forecast_usd DECIMAL(38,12) NOT NULL, lo80_usd DECIMAL(38,12), hi80_usd DECIMAL(38,12),
    lo95_usd DECIMAL(38,12), hi95_usd DECIMAL(38,12), method VARCHAR, breach_date DATE)"""

_FILL = {"VARCHAR": "", "DATE": NOV, "BOOLEAN": False, "JSON": "{}"}


def put_forecast(
    db: Database,
    team: str,
    period: str,
    as_of: datetime,
    forecast: Decimal | str | int,
    *,
    feature: str | None = None,
    method: str = "test",
) -> None:
    """A forecast row written directly (80 % interval +-10 %, 95 % +-20 %). Works whether or not the forecast
    stage's migration is there: any extra NOT NULL column it has gets a neutral value."""
    db.execute(_FORECASTS_DDL)
    value = Decimal(str(forecast))
    row: dict[str, Any] = {
        "team": team,
        "feature": feature,
        "period": period,
        "as_of": as_of,
        "forecast_usd": value,
        "lo80_usd": value * Decimal("0.9"),
        "hi80_usd": value * Decimal("1.1"),
        "lo95_usd": value * Decimal("0.8"),
        "hi95_usd": value * Decimal("1.2"),
        "method": method,
    }
    columns = db.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_name = 'forecasts' AND table_schema = 'main'"
    )
    present = {c[0] for c in columns}
    row = {k: v for k, v in row.items() if k in present}
    for name, data_type, nullable, default in columns:
        if name not in row and nullable == "NO" and default is None:
            kind = str(data_type)
            row[name] = [] if kind.endswith("[]") else _FILL.get(kind, as_of if "TIMESTAMP" in kind else 0)
    names = list(row)
    db.execute(
        f"INSERT INTO forecasts ({', '.join(names)}) VALUES ({', '.join('$' + n for n in names)})",  # test-owned names
        row,
    )


def budget(
    db: Database, team: str = "support", amount: str = "100", *, now: datetime | None = None, **fields: Any
) -> Budget:
    """A budget on `team` (declared new, so no spend is needed first), set at `now` (default: the clock)."""
    return create_budget(db, BudgetSpec(amount_usd=amount, team=team, new_team=True, **fields), now=now)


def alerts(db: Database, where: str = "true") -> list[dict[str, Any]]:
    return rows(
        db,
        "SELECT alert_id, dedup_key, budget_id, kind, condition_kind, threshold_pct, period, episode, state, "
        f"fired_at, delivery, recovers, finding_id, message FROM alerts WHERE {where} ORDER BY fired_at, dedup_key",
    )


def evaluate(db: Database, as_of: datetime, settings: AlertSettings | None = None) -> int:
    return alert_step(db, as_of, 0, settings=settings or alert_settings())


def alert_settings(**overrides: Any) -> AlertSettings:
    defaults: dict[str, Any] = {"forecast_min_history_days": 7, "retry_base_s": 30, "smtp_starttls": False}
    return load_alert_settings(**{**defaults, **overrides})


@pytest.fixture(autouse=True)
def _no_alert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the machine's FINOPS_ALERT_* / FINOPS_SCHEDULER_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("FINOPS_ALERT_", "FINOPS_SCHEDULER_")):
            monkeypatch.delenv(name)


# ------------------------------------------------------------------------------------------ receivers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1. It answers from `script` (status, headers, delay_s) then 200, records every
    request, and deduplicates on `webhook-id` the way a Standard Webhooks receiver does (`processed`)."""

    port: int = field(default_factory=free_port)
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    processed: Counter[str] = field(default_factory=Counter)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status, headers, delay = receiver.script.pop(0) if receiver.script else (200, {}, 0.0)
                    msg_id = self.headers.get("webhook-id")
                    if 200 <= status < 300 and msg_id and delay == 0:
                        receiver.processed[msg_id] += 1
                if delay:  # processed, but the answer comes too late for the sender
                    if msg_id:
                        with receiver._lock:
                            receiver.processed[msg_id] += 1
                    threading.Event().wait(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


class Mailbox:
    """An aiosmtpd handler that keeps every message, and refuses recipients listed in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, mailbox)
    controller.stop()


class Clock:
    """A settable clock for the outbox schedule."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
