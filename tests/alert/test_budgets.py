"""Budgets: validation in one sentence, set = create or update, the functions the API calls, and the CLI."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from finops.alert.budgets import (
    BudgetSpec,
    Channel,
    create_budget,
    delete_budget,
    get_budget,
    list_budgets,
    parse_amount,
    parse_channel,
    parse_tag,
    parse_thresholds,
    set_budget,
    update_budget,
)
from finops.errors import InputError, NotFound
from finops.store.db import Database
from tests.alert.conftest import NOV, put_spend
from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("webhook:https://hooks.example/finops", Channel("webhook", "https://hooks.example/finops")),
        (
            "slack:https://hooks.slack.com/services/T0/B0/X",
            Channel("slack", "https://hooks.slack.com/services/T0/B0/X"),
        ),
        ("email:lead@example.com", Channel("email", "lead@example.com")),
        ("webhook:http://127.0.0.1:8080/h", Channel("webhook", "http://127.0.0.1:8080/h")),
    ],
)
def test_channels_parse(text: str, expected: Channel) -> None:
    assert parse_channel(text) == expected
    assert str(parse_channel(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sms:+15550100", r"Channel 'sms:\+15550100' is not one of webhook:..., slack:..., email:...;"),
        ("https://hooks.example", r"is not one of webhook:..., slack:..., email:..."),
        ("webhook:ftp://x.example/h", r"Channel 'webhook:ftp://x.example/h' has no http\(s\) URL; expected e.g."),
        ("slack:not a url", r"has no http\(s\) URL"),
        ("email:lead.example.com", r"Channel 'email:lead.example.com' is not an e-mail address; expected e.g."),
    ],
)
def test_bad_channels_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_channel(text)


def test_slack_urls_are_redacted_for_listing() -> None:
    assert (
        parse_channel("slack:https://hooks.slack.com/services/T0/B0/X").redacted()
        == "slack:https://hooks.slack.com/..."
    )
    assert parse_channel("email:a@example.com").redacted() == "email:a@example.com"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/?token=s3cret",
        "https://hooks.example.com/#s3cret",
        "https://me:s3cret@hooks.example.com",
    ],
)
def test_secrets_in_a_webhook_query_fragment_or_user_info_are_redacted_too(url: str) -> None:
    shown = parse_channel(f"webhook:{url}").redacted()

    assert "s3cret" not in shown and shown.startswith("webhook:https://hooks.example.com/")


def test_thresholds_parse_sort_and_deduplicate() -> None:
    assert parse_thresholds("100, 50,80,50") == (50, 80, 100)
    assert parse_thresholds([120, "75%"]) == (75, 120)


@pytest.mark.parametrize("text", ["0", "1001", "abc", "50,-1", "12.5"])
def test_thresholds_outside_1_to_1000_are_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"is not a whole percent from 1 to 1000; expected e.g. 50,80,100\."):
        parse_thresholds(text)


def test_amounts_must_be_positive_dollars() -> None:
    assert parse_amount("12,000") == Decimal(12000)
    assert parse_amount("$799.50") == Decimal("799.50")
    for bad in ("0", "-5", "abc", "NaN", "Infinity"):
        with pytest.raises(InputError, match=f"Amount '{bad}' is not a positive number of dollars"):
            parse_amount(bad)
    with pytest.raises(InputError, match="has more than 6 decimals"):
        parse_amount("1.0000001")


def test_a_comma_is_a_thousands_separator_in_its_places_or_refused() -> None:
    # hunt F 4: '1,5' became $15 and '1.000,50' $1.0005
    assert parse_amount("1,234,567.50") == Decimal("1234567.50")
    for bad in ("1,5", "1.000,50", "12,00,0", ",500", "1,0000"):
        with pytest.raises(InputError, match=f"Amount '{bad}' has a comma that is not a thousands separator"):
            parse_amount(bad)


def test_tags_are_key_value() -> None:
    assert parse_tag(" project = apollo ") == "project=apollo"
    with pytest.raises(InputError, match=r"Tag 'apollo' is not key=value; expected e.g. project=apollo\."):
        parse_tag("apollo")


def test_an_unknown_team_needs_new_team(db: Database) -> None:
    put_spend(db, NOV, "support", "1")
    put_spend(db, NOV, "platform", "1")

    with pytest.raises(InputError, match=r"^Team 'suport' has no spend yet \(known teams: platform, support\);"):
        create_budget(db, BudgetSpec(amount_usd="100", team="suport"))
    made = create_budget(db, BudgetSpec(amount_usd="100", team="research", new_team=True))

    assert made.team == "research"
    assert create_budget(db, BudgetSpec(amount_usd="5", team="research", feature="x")).team == "research"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"feature": "chat", "tag": "project=apollo"}, "A budget is per feature or per tag, not both"),
        ({"team": None}, "A budget needs a team"),
        ({"period_kind": "week"}, "Period 'week' is not one of: month, quarter, custom."),
        ({"period_kind": "custom"}, "A custom period needs a start and an end"),
        (
            {"period_kind": "custom", "period_start": date(2026, 11, 1), "period_end": date(9999, 12, 31)},
            "Custom period 2026-11-01 to 9999-12-31 is outside the days budgets cover: from 2000-01-01 to 2200-01-01",
        ),
        (
            {"period_kind": "custom", "period_start": date(1, 1, 1), "period_end": date(2026, 12, 1)},
            "Custom period 0001-01-01 to 2026-12-01 is outside",
        ),
        (
            {"period_kind": "custom", "period_start": date(2026, 11, 5), "period_end": date(2026, 11, 5)},
            "Custom period end 2026-11-05 is not after its start 2026-11-05",
        ),
        ({"period_start": date(2026, 11, 5)}, "A start and an end apply to custom periods only, not to a month budget"),
    ],
)
def test_inconsistent_specs_are_refused(db: Database, fields: dict[str, object], message: str) -> None:
    spec = BudgetSpec(**{"amount_usd": "100", "team": "support", "new_team": True, **fields})  # type: ignore[arg-type]
    with pytest.raises(InputError, match=message):
        create_budget(db, spec)


def test_set_creates_then_updates_the_budget_of_the_same_scope(db: Database) -> None:
    spec = BudgetSpec(amount_usd="100", team="support", new_team=True, channels=["email:a@example.com"])
    first, created = set_budget(db, spec)
    second, created_again = set_budget(db, BudgetSpec(amount_usd="250", team="support", thresholds=(90,)))

    assert (created, created_again, first.budget_id) == (True, False, second.budget_id)
    assert (second.amount_usd, second.thresholds) == (Decimal(250), (90,))
    with pytest.raises(InputError, match=f"Budget {first.budget_id} already covers this scope and period"):
        create_budget(db, spec)


def test_an_update_keeps_the_thresholds_and_channels_it_leaves_unset(db: Database) -> None:
    spec = BudgetSpec(amount_usd="100", team="support", new_team=True, thresholds=(70, 95), channels=["email:a@b.co"])
    made, _ = set_budget(db, spec)

    raised, _ = set_budget(db, BudgetSpec(amount_usd="350", team="support"))
    replaced = update_budget(db, made.budget_id, BudgetSpec(amount_usd="400", team="support", channels=[]))

    assert (raised.amount_usd, raised.thresholds, [str(c) for c in raised.channels]) == (
        Decimal(350),
        (70, 95),
        ["email:a@b.co"],
    )
    assert (replaced.thresholds, replaced.channels) == ((70, 95), ())  # an empty list is given: no channels
    new = create_budget(db, BudgetSpec(amount_usd="1", team="support", feature="chat"))
    assert (new.thresholds, new.channels) == ((50, 80, 100), ())


def test_get_update_delete_and_list(db: Database) -> None:
    made = create_budget(db, BudgetSpec(amount_usd="100", team="support", tag="project=apollo", new_team=True))
    updated = update_budget(db, made.budget_id, BudgetSpec(amount_usd="120", team="support", tag="project=apollo"))
    delete_budget(db, made.budget_id)

    assert (updated.scope, updated.amount_usd, updated.tag_pair) == (
        "team=support/tag=project=apollo",
        Decimal(120),
        ("project", "apollo"),
    )
    assert list_budgets(db) == []
    assert [b.active for b in list_budgets(db, include_inactive=True)] == [False]
    with pytest.raises(NotFound, match="No budget 99; `finops budgets list` shows the budgets."):
        get_budget(db, 99)
    with pytest.raises(NotFound, match=f"Budget {made.budget_id} was deleted"):
        update_budget(db, made.budget_id, BudgetSpec(amount_usd="1", team="support"))


# ---------------------------------------------------------------------------------------------- CLI


run = run_cli


def test_cli_set_list_show_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = str(tmp_path / "f.duckdb")
    code, out, err = run(
        capsys,
        *("--db", db, "budgets", "set", "--team", "support", "--period", "month", "--amount", "12000"),
        *("--thresholds", "50,80,100", "--notify", "webhook:https://hooks.example/finops", "--new-team"),
        *("--notify", "email:lead@example.com"),
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "created budget 1: team=support",
        "  $12,000.00 per month; thresholds 50%, 80%, 100%",
        "  notify webhook:https://hooks.example/finops",
        "  notify email:lead@example.com",
    ]

    code, out, _ = run(capsys, "--db", db, "budgets", "list", "--format", "json")
    [listed] = json.loads(out)
    assert (listed["budget_id"], listed["amount_usd"], listed["thresholds"]) == (1, "12000.000000", [50, 80, 100])

    code, out, _ = run(capsys, "--db", db, "budgets", "show", "1")
    assert out.startswith("budget 1: team=support")

    code, out, _ = run(capsys, "--db", db, "budgets", "delete", "1")
    assert (code, out.strip()) == (0, "deleted budget 1 (team=support)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "ghost", "--amount", "10"], "error: Team 'ghost' has no spend yet (known teams: none yet);"),
        (
            ["--team", "t", "--amount", "-1", "--new-team"],
            "error: Amount '-1' is not a positive number of dollars below",
        ),
        (["--team", "t", "--amount", "1", "--thresholds", "0", "--new-team"], "error: Threshold '0' is not a whole"),
        (["--team", "t", "--amount", "1", "--notify", "pager:x", "--new-team"], "error: Channel 'pager:x' is not one"),
        (
            ["--team", "t", "--amount", "1", "--period", "custom", "--start", "2026-13-01", "--end", "2027-01-01"],
            "error: --start '2026-13-01' is not a date; expected a UTC day such as 2026-11-01.",
        ),
    ],
)
def test_cli_mistakes_are_one_sentence_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "budgets", "set", *argv)

    assert code == 1
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_show_of_an_unknown_budget(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "budgets", "show", "7")
    assert (code, err.strip()) == (1, "error: No budget 7; `finops budgets list` shows the budgets.")
