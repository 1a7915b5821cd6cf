"""The `gpu` source's bounds: GPU counts and GPU-seconds at most 1e13 per record, at least one nano-GPU, and
capacity rates with no more decimals than they are stored with. A record beyond them is one rejected line,
never an internal error and never a file lost (QA hunt A, bugs 4, 5, 7 and 9)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_gpu import balanced, capacity, ingest_jobs, job, jsonl, rejects

GPU_COUNT_EXPECTED = "expected a number of at least 0.000000001 (9 decimal places) and at most 1e13"


@pytest.mark.parametrize(
    ("gpu_count", "shown"),
    [
        (1e20, "100000000000000000000.0"),  # DuckDB's JSON reader gives a float's digits
        (20000000000000000000, "20000000000000000000"),
        (12345678901234567890123, "12345678901234567890123"),
        ("1e30", '"1e30"'),  # beyond what DECIMAL(38,9) holds: still the bound's reason
        (10**13 + 1, "10000000000001"),
    ],
)
def test_gpu_count_above_1e13_rejects_its_job_and_the_rest_of_the_file_loads(
    db: Database, tmp_path: Path, gpu_count: Any, shown: str
) -> None:
    report = ingest_jobs(db, tmp_path, [job(job_id="ok-1"), job(job_id="typo", gpu_count=gpu_count)])

    assert (report.accepted, report.rejected_by_reason) == (1, {"invalid_value": 1})
    assert rejects(db) == [(2, "invalid_value", f"gpu_count is {shown}; {GPU_COUNT_EXPECTED}")]
    assert rows(db, "SELECT job_id FROM gpu_jobs") == [{"job_id": "ok-1"}]


def test_gpu_count_of_exactly_1e13_is_accepted(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(db, tmp_path, [job(gpu_count=10**13, end=None, gpu_seconds=10**13)])

    assert (report.accepted, report.rejected) == (1, 0)


def test_capacity_gpu_count_above_1e13_rejects_its_record(db: Database, tmp_path: Path) -> None:
    content = (
        "cluster,gpu_type,gpu_count,start,end,hourly_rate\n"
        "k,H100,8,2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,3.00\n"
        "k,H100,1e20,2026-03-11T00:00:00Z,2026-03-12T00:00:00Z,3.00\n"
    )
    report = balanced(db, ingest_one(db, write_file(tmp_path, "cap.csv", content), "gpu"))

    assert (report.target_table, report.accepted) == ("gpu_capacity", 1)
    assert rejects(db) == [(3, "invalid_value", f"gpu_count is 1e20; {GPU_COUNT_EXPECTED}")]


def test_parquet_gpu_count_above_1e13_rejected_like_text(db: Database, tmp_path: Path) -> None:
    target = tmp_path / "jobs.parquet"
    duckdb.execute(
        """COPY (SELECT * FROM (VALUES ('ok', CAST(1 AS DOUBLE)), ('big', CAST(1e20 AS DOUBLE)),
                                      ('nan', CAST('nan' AS DOUBLE)))
                 AS t(job_id, gpu_count),
                 (SELECT TIMESTAMPTZ '2025-03-03 10:00:00+00' AS "start", TIMESTAMPTZ '2025-03-03 11:00:00+00' AS "end",
                         'H100' AS gpu_type))
           TO $dst (FORMAT parquet)""",
        {"dst": str(target)},
    )
    report = balanced(db, ingest_one(db, target, "gpu"))

    assert (report.accepted, report.rejected_by_reason) == (1, {"invalid_value": 1, "invalid_number": 1})
    assert [(reason, message.split(";")[0]) for _, reason, message in rejects(db)] == [
        ("invalid_value", "gpu_count is 1e+20"),
        ("invalid_number", "gpu_count is nan"),
    ]


def test_gpu_seconds_above_1e13_rejected_given_or_implied_by_the_end(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(
        db,
        tmp_path,
        [
            job(job_id="given", end=None, gpu_seconds=10**14),
            # a day on a billion GPUs: 8.64e13 GPU-seconds
            job(job_id="implied", start="2025-03-03T00:00:00Z", end="2025-03-04T00:00:00Z", gpu_count=10**9),
            job(job_id="ok", end=None, gpu_seconds=10**13, gpu_count=10**9),  # 10,000 wall seconds
        ],
    )

    assert (report.accepted, report.rejected_by_reason) == (1, {"invalid_value": 2})
    assert rejects(db) == [
        (1, "invalid_value", "gpu_seconds is 100000000000000; expected a non-negative number of at most 1e13"),
        (
            2,
            "invalid_value",
            "(end - start) x gpu_count is 86400 s x 1000000000 = 86400000000000 GPU-seconds; "
            "expected at most 1e13 GPU-seconds per job",
        ),
    ]


def test_gpu_count_below_one_nano_gpu_names_the_smallest_count(db: Database, tmp_path: Path) -> None:
    ingest_jobs(db, tmp_path, [job(gpu_count=1e-10), job(job_id="ok", gpu_count="0.000000001")])

    assert rejects(db) == [(1, "invalid_value", f"gpu_count is 1e-10; {GPU_COUNT_EXPECTED}")]
    assert rows(db, "SELECT gpu_count FROM gpu_jobs") == [{"gpu_count": Decimal("0.000000001")}]


@pytest.mark.parametrize("rate", ["0.1234567890129", 0.1234567890129, "3.9e-13"])
def test_capacity_rate_with_more_than_12_decimals_rejected_not_rounded(db: Database, tmp_path: Path, rate: Any) -> None:
    path = write_file(tmp_path, "cap.jsonl", jsonl([capacity(hourly_rate=rate)]))
    report = balanced(db, ingest_one(db, path, "gpu"))

    assert (report.accepted, report.rejected_by_reason) == (0, {"invalid_number": 1})
    assert rejects(db) == [
        (
            1,
            "invalid_number",
            f"hourly_rate is '{rate}'; expected at most 12 decimal places (the precision it is stored with, "
            "as in the price overrides file)",
        )
    ]


@pytest.mark.parametrize("rate", ["3.900000000000000", "0.123456789012", "3.9e0", 2])
def test_capacity_rate_held_exactly_by_12_decimals_accepted(db: Database, tmp_path: Path, rate: Any) -> None:
    path = write_file(tmp_path, "cap.jsonl", jsonl([capacity(hourly_rate=rate)]))
    report = balanced(db, ingest_one(db, path, "gpu"))

    assert report.accepted == 1
    assert rows(db, "SELECT hourly_rate FROM gpu_capacity") == [{"hourly_rate": Decimal(str(rate))}]
