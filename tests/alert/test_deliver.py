"""Delivery against real receivers on loopback: Standard Webhooks signatures checked by an independent HMAC, the
Slack payload, SMTP through aiosmtpd, retries with backoff and Retry-After, 410, and a receiver outage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any

import pytest

from finops.alert.deliver import deliver_due, parse_retry_after, retry_delay_s
from finops.alert.outbox import enable_endpoint
from finops.alert.settings import AlertSettings
from finops.alert.signing import verify
from finops.errors import ConfigError
from finops.store.db import Database
from tests.alert.conftest import (
    NOV,
    Clock,
    Receiver,
    SmtpServer,
    alert_settings,
    at,
    budget,
    evaluate,
    put_spend,
)
from tests.helpers import rows

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
T0 = datetime(2026, 11, 2, 12, tzinfo=UTC)


def fire(db: Database, *channels: str, spend: str = "100", team: str = "support") -> list[str]:
    """Three alerts (50, 80, 100 %) of a $100 budget, queued for `channels`; their ids in threshold order."""
    budget(db, team=team, amount="100", channels=list(channels))
    put_spend(db, NOV, team, spend)
    evaluate(db, at(NOV, 12))
    return [r["alert_id"] for r in rows(db, "SELECT alert_id FROM alerts ORDER BY threshold_pct")]


def start_clock() -> Clock:
    """The outbox schedules on the wall clock: start the test's clock at now, after the alerts were queued."""
    return Clock(datetime.now(UTC))


def deliveries(db: Database) -> list[dict[str, Any]]:
    return rows(
        db,
        "SELECT alert_id, channel, status, attempts, next_attempt_at, last_status FROM alert_deliveries "
        "ORDER BY delivery_id",
    )


def settings(**overrides: Any) -> AlertSettings:
    return alert_settings(**{"webhook_secret": SECRET, "timeout_s": 2, **overrides})


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks, written out again here from the spec: base64(HMAC-SHA256(key, id.timestamp.body))."""
    key = base64.b64decode(secret.split("_", 1)[1])
    digest = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_webhooks_are_signed_the_standard_webhooks_way(db: Database, receiver: Receiver) -> None:
    ids = fire(db, f"webhook:{receiver.url}")

    report = deliver_due(db, settings(), now=start_clock())

    assert report.delivered == 3
    assert [r.headers["webhook-id"] for r in receiver.received] == ids
    for request in receiver.received:
        h = request.headers
        assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
        assert h["webhook-signature"] == independent_signature(
            SECRET, h["webhook-id"], h["webhook-timestamp"], request.body
        )
        verify(SECRET, h, request.body)  # the reference verifier agrees
        envelope = json.loads(request.body)
        assert envelope["type"] == "budget.alert.actual"
        assert envelope["data"]["alert_id"] == h["webhook-id"]
        assert envelope["data"]["budget"]["scope"] == "team=support"
    with pytest.raises(ValueError, match="no matching signature"):
        verify(SECRET, receiver.received[0].headers, receiver.received[0].body + b" ")
    assert [d["status"] for d in deliveries(db)] == ["delivered"] * 3
    assert {r["delivery"] for r in rows(db, "SELECT delivery FROM alerts")} == {"delivered"}


def test_rotation_sends_one_signature_per_secret(db: Database, receiver: Receiver) -> None:
    old = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    fire(db, f"webhook:{receiver.url}")

    deliver_due(db, alert_settings(webhook_secret=f"{SECRET} {old}"), now=start_clock())

    h, body = receiver.received[0].headers, receiver.received[0].body
    assert h["webhook-signature"].split() == [
        independent_signature(SECRET, h["webhook-id"], h["webhook-timestamp"], body),
        independent_signature(old, h["webhook-id"], h["webhook-timestamp"], body),
    ]


def test_a_malformed_secret_is_one_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"^FINOPS_ALERT_WEBHOOK_SECRET has value <secret>\. Value error, expected whsec_"
    ):
        alert_settings(webhook_secret="whsec_not base64!")


def test_slack_gets_text_and_blocks(db: Database, receiver: Receiver) -> None:
    fire(db, f"slack:{receiver.url}", spend="60")

    deliver_due(db, settings(), now=start_clock())

    [request] = receiver.received
    body = json.loads(request.body)
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "team=support: 50% of the monthly budget reached in 2026-11: $60.00 of $100.00 spent"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "Budget 50% reached: team=support"}
    assert body["blocks"][2]["text"]["type"] == "mrkdwn"
    assert "• Spent to date: $60.00 (60.0% of the budget)" in body["blocks"][2]["text"]["text"]
    assert "• Top features: chat $60.00" in body["blocks"][2]["text"]["text"]
    assert "webhook-signature" not in request.headers


def test_names_from_usage_data_are_text_in_slack_and_one_line_in_a_subject(
    db: Database, receiver: Receiver, smtp_server: SmtpServer
) -> None:
    # hunt F 2 and 3: a team named with '<!channel>' pinged the channel; a line break in it crashed the drain
    team = "ops <!channel> &\nco"
    fire(db, f"slack:{receiver.url}", "email:lead@example.com", spend="60", team=team)

    report = deliver_due(db, settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port), now=start_clock())

    assert (report.delivered, report.failed) == (2, 0)
    body = json.loads(receiver.received[0].body)
    assert body["text"].startswith("team=ops &lt;!channel&gt; &amp;\nco: 50% of the monthly budget")
    assert "<!channel>" not in json.dumps(body["blocks"][1:])
    assert body["blocks"][0]["text"]["text"] == "Budget 50% reached: team=ops <!channel> & co"  # plain text
    [envelope] = smtp_server.mailbox.messages
    assert message_from_bytes(envelope.content)["Subject"] == "[finops] Budget 50% reached: team=ops <!channel> & co"


def test_a_message_that_cannot_be_built_fails_its_row_and_the_drain_goes_on(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fire(db, f"webhook:{receiver.url}", "email:lead@example.com", spend="60")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("Header values may not contain linefeed or carriage return characters")

    monkeypatch.setattr("finops.alert.deliver.email_message", broken)
    report = deliver_due(db, settings(smtp_host="127.0.0.1", smtp_port=1), now=start_clock())

    assert (report.delivered, report.failed) == (1, 1)
    assert [(d["channel"].split(":")[0], d["status"]) for d in deliveries(db)] == [
        ("webhook", "delivered"),
        ("email", "failed"),
    ]


def test_email_reaches_a_real_smtp_server(db: Database, smtp_server: SmtpServer) -> None:
    [alert_id] = fire(db, "email:lead@example.com", spend="55")

    report = deliver_due(db, settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port), now=start_clock())

    assert report.delivered == 1
    [envelope] = smtp_server.mailbox.messages
    assert envelope.rcpt_tos == ["lead@example.com"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "[finops] Budget 50% reached: team=support"
    assert message["Message-ID"] == f"<{alert_id}@finops>"
    text = bytes(message.get_payload(decode=True)).decode()
    assert text.startswith("team=support: 50% of the monthly budget reached in 2026-11: $55.00 of $100.00 spent")
    assert "Budget 1 (team=support): $100.00 per month, period 2026-11" in text


def test_a_refused_recipient_fails_without_retrying(db: Database, smtp_server: SmtpServer) -> None:
    smtp_server.mailbox.refuse.add("gone@example.com")
    fire(db, "email:gone@example.com", spend="55")

    report = deliver_due(db, settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port), now=start_clock())

    assert (report.failed, report.retrying) == (1, 0)
    assert [(d["status"], d["attempts"], d["last_status"]) for d in deliveries(db)] == [("failed", 1, "550")]


def test_retry_after_is_honoured_then_backoff_then_delivered_once(db: Database, receiver: Receiver) -> None:
    receiver.script = [(503, {"Retry-After": "120"}, 0.0), (500, {}, 0.0)]
    fire(db, f"webhook:{receiver.url}", spend="60")
    clock = start_clock()
    rng = random.Random(7)

    deliver_due(db, settings(), now=clock, rng=rng)
    [row] = deliveries(db)
    assert (row["status"], row["attempts"], row["last_status"]) == ("pending", 1, "503")
    assert row["next_attempt_at"] == clock.now + timedelta(seconds=120)  # exactly what the receiver asked

    clock.advance(seconds=119)
    assert deliver_due(db, settings(), now=clock, rng=rng).delivered == 0
    assert len(receiver.received) == 1  # not due yet: nothing sent

    clock.advance(seconds=1)
    deliver_due(db, settings(), now=clock, rng=rng)
    [row] = deliveries(db)
    delay = (row["next_attempt_at"] - clock.now).total_seconds()
    assert (row["attempts"], row["last_status"]) == (2, "500")
    assert 30 <= delay <= 60  # second attempt: 30 s * 2, jittered into [0.5, 1]

    clock.advance(seconds=60)
    assert deliver_due(db, settings(), now=clock, rng=rng).delivered == 1
    assert [(d["status"], d["attempts"]) for d in deliveries(db)] == [("delivered", 3)]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # the same id on every attempt


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    s = alert_settings(retry_base_s=30, retry_max_s=600)

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [retry_delay_s(n, None, s, Top()) for n in range(1, 7)] == [30, 60, 120, 240, 480, 600]
    jittered = [retry_delay_s(3, None, s, random.Random(seed)) for seed in range(50)]
    assert min(jittered) >= 60 and max(jittered) <= 120 and len(set(jittered)) > 40
    assert retry_delay_s(3, 10_000_000, s, random.Random()) == s.retry_after_max_s


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert parse_retry_after("90", now) == 90
    assert parse_retry_after("Mon, 02 Nov 2026 12:05:00 GMT", now) == 300
    assert parse_retry_after("soon", now) is None


def test_gave_up_after_max_attempts(db: Database, receiver: Receiver) -> None:
    receiver.script = [(500, {}, 0.0)] * 3
    fire(db, f"webhook:{receiver.url}", spend="60")
    clock = start_clock()

    for _ in range(3):
        deliver_due(db, settings(max_attempts=3), now=clock)
        clock.advance(hours=2)

    assert [(d["status"], d["attempts"]) for d in deliveries(db)] == [("failed", 3)]
    assert db.scalar("SELECT delivery FROM alerts") == "failed"


def test_410_disables_the_endpoint_visibly(db: Database, receiver: Receiver) -> None:
    receiver.script = [(410, {}, 0.0)]
    fire(db, f"webhook:{receiver.url}")

    report = deliver_due(db, settings(), now=start_clock())

    assert (report.disabled, len(receiver.received)) == (1, 1)  # the other two were never sent
    assert [d["status"] for d in deliveries(db)] == ["disabled"] * 3
    [endpoint] = rows(db, "SELECT channel, disabled_at IS NOT NULL AS disabled, disabled_reason FROM alert_endpoints")
    assert endpoint["disabled"] and endpoint["disabled_reason"].startswith("410 Gone from the endpoint")

    fire(db, f"webhook:{receiver.url}", team="platform")  # a new alert for the disabled endpoint
    deliver_due(db, settings(), now=start_clock())
    assert len(receiver.received) == 1
    assert [d["status"] for d in deliveries(db)][-3:] == ["disabled"] * 3

    assert enable_endpoint(db, f"webhook:{receiver.url}", T0)  # enabled again: new alerts go out
    budget(db, team="research", amount="10", channels=[f"webhook:{receiver.url}"])
    put_spend(db, NOV, "research", "6")
    evaluate(db, at(NOV, 13))
    assert deliver_due(db, settings(), now=start_clock()).delivered == 1


def test_a_receiver_that_was_down_gets_each_alert_exactly_once(db: Database) -> None:
    receiver = Receiver()  # not started: down
    ids = fire(db, f"webhook:{receiver.url}")
    clock = start_clock()

    for _ in range(4):  # an hour of outage, drained as the scheduler would
        report = deliver_due(db, settings(), now=clock)
        assert report.delivered == 0
        clock.advance(minutes=15)
    attempts = {d["alert_id"]: d["attempts"] for d in deliveries(db)}
    assert max(attempts.values()) >= 2  # retried with backoff, one probe per drain, not one per alert
    assert sum(attempts.values()) < 4 * 3

    budget(db, team="platform", amount="100", channels=[f"webhook:{receiver.url}"])  # more alerts while down
    put_spend(db, NOV, "platform", "100")
    evaluate(db, at(NOV, 13))
    ids += [r["alert_id"] for r in rows(db, "SELECT alert_id FROM alerts WHERE budget_id = 2 ORDER BY threshold_pct")]

    receiver.start()  # back, on the same port
    try:
        clock.advance(hours=2)
        deliver_due(db, settings(), now=clock)
        clock.advance(hours=2)
        deliver_due(db, settings(), now=clock)  # nothing left to send
    finally:
        receiver.stop()

    assert sorted(receiver.processed.elements()) == sorted(ids)  # each alert exactly once
    assert len(receiver.received) == len(ids) == 6
    assert {d["status"] for d in deliveries(db)} == {"delivered"}


def test_an_answer_lost_to_a_timeout_is_resent_with_the_same_id(db: Database, receiver: Receiver) -> None:
    receiver.script = [(200, {}, 3.0)]  # processes, then answers after the sender gave up
    [alert_id] = fire(db, f"webhook:{receiver.url}", spend="60")
    clock = start_clock()

    deliver_due(db, settings(timeout_s=1), now=clock)
    clock.advance(hours=1)
    deliver_due(db, settings(timeout_s=1), now=clock)

    assert [r.headers["webhook-id"] for r in receiver.received] == [alert_id, alert_id]
    assert receiver.processed[alert_id] == 2  # at-least-once on the wire ...
    assert set(receiver.processed) == {alert_id}  # ... one alert for a receiver that deduplicates on webhook-id
    assert [d["status"] for d in deliveries(db)] == ["delivered"]


def test_evaluation_never_sends(db: Database, receiver: Receiver) -> None:
    fire(db, f"webhook:{receiver.url}")

    assert receiver.received == []
    assert [d["status"] for d in deliveries(db)] == ["pending"] * 3


def test_cli_deliver_and_endpoints(
    db: Database, receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from finops.cli import main

    fire(db, f"webhook:{receiver.url}")
    db.close()  # the CLI opens the database itself
    monkeypatch.setenv("FINOPS_ALERT_WEBHOOK_SECRET", SECRET)

    main(["--db", str(db.path), "alerts", "deliver"])
    main(["--db", str(db.path), "alerts", "endpoints"])
    main(["--db", str(db.path), "alerts", "list", "--delivery", "delivered", "--format", "json"])

    out = capsys.readouterr().out
    assert out.startswith("3 delivered, 0 to retry, 0 failed, 0 disabled (410), 0 deferred\n")
    assert f"webhook:{receiver.url}" in out
    listed = json.loads(out[out.index("[") :])
    assert [a["delivery"] for a in listed] == ["delivered"] * 3
    assert all("webhook-signature" in r.headers for r in receiver.received)


def test_cli_enable_of_a_channel_that_is_not_disabled_is_a_mistake_7(
    db: Database, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from finops.cli import main

    receiver.script = [(410, {}, 0.0)]
    fire(db, f"webhook:{receiver.url}")
    deliver_due(db, settings(), now=start_clock())
    db.close()  # the CLI opens the database itself
    listing = "`finops alerts endpoints` lists the channels alerts were sent to and which are disabled"

    def enable(channel: str) -> tuple[int, str, str]:
        try:
            main(["--db", str(db.path), "alerts", "enable", channel])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    assert enable("garbage") == (
        1,
        "",
        f"error: 'garbage' is not a channel (webhook:URL, slack:URL or email:ADDRESS); {listing}.",
    )
    assert enable(f"webhook:{receiver.url}/") == (
        1,
        "",
        f"error: No alert was ever sent to webhook:{receiver.url}/, so it is not disabled; {listing}; did you mean "
        f"webhook:{receiver.url}?",
    )
    assert enable(f"webhook:{receiver.url}") == (0, f"enabled webhook:{receiver.url}\n", "")
    assert enable(f"webhook:{receiver.url}") == (1, "", f"error: webhook:{receiver.url} is not disabled; {listing}.")
