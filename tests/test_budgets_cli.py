"""`finops budgets set` on an existing budget: it keeps what is not given, removes channels only when asked
(`--clear-notify`), and says what changed (hunt B bug 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


def run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, "--db", str(db), *argv)


@pytest.fixture
def db(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    """A database with budget 1 for team search: $3,151 a month, 70 % and 95 %, a webhook and an e-mail."""
    path = tmp_path / "f.duckdb"
    code, _, err = run(
        capsys,
        path,
        *("budgets", "set", "--team", "search", "--amount", "3151", "--thresholds", "70,95", "--new-team"),
        *("--notify", "webhook:https://hooks.example/finops", "--notify", "email:lead@example.com"),
    )
    assert (code, err) == (0, "")
    return path


def test_raising_the_amount_keeps_thresholds_and_channels_3(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = run(capsys, db, "budgets", "set", "--team", "search", "--amount", "3500")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "updated budget 1: team=search",
        "  $3,500.00 per month; thresholds 70%, 95%",
        "  notify webhook:https://hooks.example/finops",
        "  notify email:lead@example.com",
        "  changed: amount $3,151.00 to $3,500.00",
    ]


def test_notify_adds_a_channel_and_thresholds_replace_3(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(
        capsys,
        db,
        *("budgets", "set", "--team", "search", "--amount", "3151", "--thresholds", "50,100"),
        *("--notify", "slack:https://hooks.slack.com/services/T/B/X"),
    )

    assert code == 0
    assert out.splitlines()[1:] == [
        "  $3,151.00 per month; thresholds 50%, 100%",
        "  notify webhook:https://hooks.example/finops",
        "  notify email:lead@example.com",
        "  notify slack:https://hooks.slack.com/services/T/B/X",
        "  changed: thresholds 70%, 95% to 50%, 100%; added slack:https://hooks.slack.com/services/T/B/X",
    ]


def test_clear_notify_removes_channels_explicitly_3(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    argv = ("budgets", "set", "--team", "search", "--amount", "3151", "--clear-notify")
    code, out, _ = run(capsys, db, *argv, "--notify", "email:lead@example.com")

    assert code == 0
    assert out.splitlines()[-2:] == [
        "  notify email:lead@example.com",
        "  changed: removed webhook:https://hooks.example/finops",
    ]

    code, out, _ = run(capsys, db, *argv, "--format", "json")
    shown = json.loads(out)
    assert (shown["channels"], shown["thresholds"], shown["changes"]) == (
        [],
        [70, 95],
        ["removed email:lead@example.com"],
    )


def test_setting_the_same_values_again_says_nothing_changed_3(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, db, "budgets", "set", "--team", "search", "--amount", "3151")

    assert (code, out.splitlines()[-1]) == (0, "  nothing changed")


def test_a_new_budget_gets_the_default_thresholds_and_no_channel(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, db, "budgets", "set", "--team", "search", "--period", "quarter", "--amount", "9000")

    assert code == 0
    assert out.splitlines() == [
        "created budget 2: team=search",
        "  $9,000.00 per quarter; thresholds 50%, 80%, 100%",
        "  notify (none: alerts are recorded only)",
    ]
