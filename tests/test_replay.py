"""`finops run --as-of` in any order of moments: a run at an earlier moment shows the data as it was then,
and a record never has two cost lines, whatever order the runs came in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from finops.pipeline import run_once
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_bad_input import line

HOURS = (9, 10, 11, 13, 14, 15)  # six records of one UTC day, 1M input tokens of gpt-4o each ($2.50)


def at(hour: int) -> datetime:
    return datetime(2026, 10, 20, hour, tzinfo=UTC)


def ingest_six(db: Database, tmp_path: Path) -> None:
    records = [
        line(
            f"q{h}",
            ts=f"2026-10-20T{h:02d}:00:00Z",
            model="gpt-4o",
            provider="openai",
            input_tokens=1_000_000,
            output_tokens=0,
            team="t",
            feature="f",
        )  # fmt: skip
        for h in HOURS
    ]
    ingest_one(db, write_file(tmp_path, "q.jsonl", "\n".join(records) + "\n"), "gateway")


def lines_and_total(db: Database) -> tuple[int, int, Decimal]:
    [row] = rows(db, "SELECT count(*) AS n, count(DISTINCT request_id) AS r, sum(cost_usd) AS c FROM spend")
    return int(row["n"]), int(row["r"]), row["c"] or Decimal(0)  # type: ignore[call-overload, return-value]


def daily_total(db: Database) -> Decimal:
    return db.scalar("SELECT sum(cost_usd) FROM spend_daily") or Decimal(0)  # type: ignore[no-any-return]


def test_going_back_then_forward_prices_each_record_once(db: Database, tmp_path: Path) -> None:
    ingest_six(db, tmp_path)

    run_once(db, as_of=at(16))
    run_once(db, as_of=at(12))
    run_once(db, as_of=at(16))

    assert lines_and_total(db) == (6, 6, Decimal("15"))
    assert daily_total(db) == Decimal("15")


def test_a_run_at_an_earlier_moment_shows_only_the_usage_before_it(db: Database, tmp_path: Path) -> None:
    ingest_six(db, tmp_path)
    run_once(db, as_of=at(16))

    run_once(db, as_of=at(12))

    assert lines_and_total(db) == (3, 3, Decimal("7.5"))
    assert daily_total(db) == Decimal("7.5")


def test_any_order_of_moments_ends_where_the_last_one_says(db: Database, tmp_path: Path) -> None:
    ingest_six(db, tmp_path)

    for hour in (16, 10, 14, 12, 16, 16):
        run_once(db, as_of=at(hour))

    assert lines_and_total(db) == (6, 6, Decimal("15"))
    assert daily_total(db) == Decimal("15")


def test_a_run_back_in_time_that_dies_half_way_loses_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_six(db, tmp_path)
    run_once(db, as_of=at(16))

    def die(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as patched:
        patched.setattr("finops.pipeline.gpu_spend.rebuild_gpu_lines", die)
        with pytest.raises(RuntimeError):
            run_once(db, as_of=at(12))  # forgot the lines after 12:00, then died
    run_once(db, as_of=at(16))

    assert lines_and_total(db) == (6, 6, Decimal("15"))
    assert daily_total(db) == Decimal("15")
