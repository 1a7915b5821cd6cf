"""The `gpu` source: GPU jobs and cluster capacity, from JSONL, JSON arrays, CSV and Parquet, gzip or not."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.ingest import IngestOptions, IngestReport, ingest_paths
from finops.ingest.auto import detect_source
from finops.ingest.files import Format, sniff
from finops.ingest.sources.gpu import GPU
from finops.ingest.targets import GPU_CAPACITY, GPU_JOBS
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "raw" / "gpu"
SMALLEST_GPU_COUNT = "0.000000001 (9 decimal places) and at most 1e13"
JOB_COLUMNS = (
    "CAST(start_ts AS VARCHAR) AS start_ts, CAST(end_ts AS VARCHAR) AS end_ts, "
    "CAST(charge_day AS VARCHAR) AS charge_day, gpu_count, gpu_seconds"
)


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def job(**fields: Any) -> dict[str, Any]:
    """A valid job record: one H100 from 10:00 to 11:00 UTC, overridden by `fields` (None removes a key)."""
    record: dict[str, Any] = {
        "job_id": "j-1",
        "start": "2025-03-03T10:00:00Z",
        "end": "2025-03-03T11:00:00Z",
        "gpu_type": "H100",
        "gpu_count": 1,
        "team": "search",
        "cluster": "gpu-east",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def capacity(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "cluster": "gpu-east",
        "gpu_type": "H100",
        "gpu_count": 16,
        "start": "2025-03-03T00:00:00Z",
        "end": "2025-03-04T00:00:00Z",
        "hourly_rate": "3.90",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def balanced(db: Database, report: IngestReport) -> IngestReport:
    """The report and its `ingest_batches` row both say lines = accepted + duplicates + rejected."""
    assert report.balanced, report.as_dict()
    [batch] = rows(
        db,
        "SELECT lines, accepted, duplicates, rejected FROM ingest_batches WHERE batch_id = $b",
        {"b": report.batch_id},
    )
    assert batch == {
        "lines": report.lines,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
    }
    assert batch["lines"] == batch["accepted"] + batch["duplicates"] + batch["rejected"]
    return report


def ingest_jobs(db: Database, tmp_path: Path, records: list[dict[str, Any]], **options: Any) -> IngestReport:
    return balanced(db, ingest_one(db, write_file(tmp_path, "jobs.jsonl", jsonl(records)), "gpu", **options))


def one_job(db: Database) -> dict[str, Any]:
    [row] = rows(db, f"SELECT {JOB_COLUMNS} FROM gpu_jobs")
    return row


def rejects(db: Database) -> list[tuple[int, str, str]]:
    return [
        (r["line_number"], r["reason"], r["message"])
        for r in rows(db, "SELECT line_number, reason, message FROM rejected_usage ORDER BY line_number")
    ]


# ------------------------------------------------------------------------------------ GPU time and ends


def test_gpu_seconds_derived_when_only_end_given(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(db, tmp_path, [job(end="2025-03-03T12:45:30.5Z", gpu_count=4)])

    assert (report.target_table, report.accepted) == ("gpu_jobs", 1)
    assert one_job(db) == {
        "start_ts": "2025-03-03 10:00:00+00",
        "end_ts": "2025-03-03 12:45:30.5+00",
        "charge_day": "2025-03-03",
        "gpu_count": Decimal("4.000000000"),
        "gpu_seconds": Decimal("39722.000000000"),  # 9,930.5 wall seconds x 4
    }


@pytest.mark.parametrize(
    ("gpu_seconds", "gpu_count", "end_ts"),
    [
        (9000, 2, "2025-03-03 11:15:00+00"),
        ("100", "3", "2025-03-03 10:00:33.333333+00"),  # 33.3333333 s, to the microsecond
        ("0.0000015", 1, "2025-03-03 10:00:00.000002+00"),  # 1.5 us rounds half up
        (0, 1, "2025-03-03 10:00:00+00"),  # a job that never ran
    ],
)
def test_end_derived_when_only_gpu_seconds_given(
    db: Database, tmp_path: Path, gpu_seconds: Any, gpu_count: Any, end_ts: str
) -> None:
    ingest_jobs(db, tmp_path, [job(end=None, gpu_seconds=gpu_seconds, gpu_count=gpu_count)])

    row = one_job(db)
    assert row["end_ts"] == end_ts
    assert row["gpu_seconds"] == Decimal(str(gpu_seconds))  # kept exactly as given


def test_end_and_gpu_seconds_kept_as_given_when_within_one_wall_second(db: Database, tmp_path: Path) -> None:
    # an hour on 8 GPUs is 28,800 GPU-s; 28,807.5 is within one wall second (8 GPU-s) of it
    ingest_jobs(db, tmp_path, [job(gpu_count=8, gpu_seconds="28807.5")])

    row = one_job(db)
    assert (row["end_ts"], row["gpu_seconds"]) == ("2025-03-03 11:00:00+00", Decimal("28807.500000000"))


def test_inconsistent_end_and_gpu_seconds_rejected_when_beyond_one_wall_second(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(db, tmp_path, [job(gpu_count=8, gpu_seconds=28809), job(job_id="j-2", gpu_seconds=100)])

    assert (report.accepted, report.rejected_by_reason) == (0, {"inconsistent_gpu_time": 2})
    assert rejects(db) == [
        (
            1,
            "inconsistent_gpu_time",
            "gpu_seconds (28809) does not match (end - start) x gpu_count = 28800 (3600 s x 8); expected "
            "gpu_seconds = wall seconds x gpu_count, within one wall second (and at least one GPU-second). "
            "Give one of end and gpu_seconds, or make them agree",
        ),
        (
            2,
            "inconsistent_gpu_time",
            "gpu_seconds (100) does not match (end - start) x gpu_count = 3600 (3600 s x 1); expected "
            "gpu_seconds = wall seconds x gpu_count, within one wall second (and at least one GPU-second). "
            "Give one of end and gpu_seconds, or make them agree",
        ),
    ]


@pytest.mark.parametrize(
    ("gpu_count", "gpu_seconds"),
    [(0.5, "1800.000000000"), ("0.125", "450.000000000"), ("0.142857143", "514.285714800")],
)
def test_fractional_gpu_count_kept_exactly_for_mig_and_time_slicing(
    db: Database, tmp_path: Path, gpu_count: Any, gpu_seconds: str
) -> None:
    ingest_jobs(db, tmp_path, [job(gpu_count=gpu_count)])

    row = one_job(db)
    assert (row["gpu_count"], row["gpu_seconds"]) == (Decimal(str(gpu_count)), Decimal(gpu_seconds))


def test_job_spanning_midnight_stored_whole_on_its_start_day(db: Database, tmp_path: Path) -> None:
    ingest_jobs(db, tmp_path, [job(start="2025-03-03T20:00:00-05:00", end="2025-03-04T02:30:00Z", gpu_count=2)])

    assert one_job(db) == {
        "start_ts": "2025-03-04 01:00:00+00",  # 20:00 in New York is already the next UTC day
        "end_ts": "2025-03-04 02:30:00+00",
        "charge_day": "2025-03-04",
        "gpu_count": Decimal("2.000000000"),
        "gpu_seconds": Decimal("10800.000000000"),
    }
    ingest_jobs(db, tmp_path, [job(job_id="j-2", start="2025-03-03T20:00:00Z", end="2025-03-04T02:30:00Z")])
    [row] = rows(db, f"SELECT {JOB_COLUMNS} FROM gpu_jobs WHERE job_id = 'j-2'")
    assert (row["charge_day"], row["end_ts"], row["gpu_seconds"]) == (
        "2025-03-03",
        "2025-03-04 02:30:00+00",
        Decimal("23400.000000000"),
    )


# ------------------------------------------------------------------------------------------ rejects


def test_end_before_start_rejected_naming_end_and_start(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(db, tmp_path, [job(end="2025-03-03T09:59:59Z")])

    assert (report.accepted, report.rejected) == (0, 1)
    assert rejects(db) == [
        (
            1,
            "invalid_value",
            "end (2025-03-03 09:59:59+00) is before start (2025-03-03 10:00:00+00); expected the end after the start",
        )
    ]


@pytest.mark.parametrize("gpu_count", [-1, 0, "0.0", "-0.5"])
def test_nonpositive_gpu_count_rejected_naming_gpu_count(db: Database, tmp_path: Path, gpu_count: Any) -> None:
    report = ingest_jobs(db, tmp_path, [job(gpu_count=gpu_count), job(job_id="ok")])

    assert (report.accepted, report.rejected) == (1, 1)
    shown = json.dumps(gpu_count)  # as the input wrote it: a JSON string keeps its quotes
    assert rejects(db) == [
        (1, "invalid_value", f"gpu_count is {shown}; expected a number of at least {SMALLEST_GPU_COUNT}")
    ]


def test_negative_gpu_seconds_rejected_naming_gpu_seconds(db: Database, tmp_path: Path) -> None:
    ingest_jobs(db, tmp_path, [job(end=None, gpu_seconds=-60)])

    assert rejects(db) == [(1, "negative_value", "gpu_seconds is -60; expected a non-negative number of at most 1e13")]


def test_job_without_end_or_gpu_seconds_rejected(db: Database, tmp_path: Path) -> None:
    ingest_jobs(db, tmp_path, [job(end=None)])

    assert rejects(db) == [(1, "missing_field", "end and gpu_seconds are both missing; expected one of them")]


def test_gpu_seconds_implying_a_future_end_rejected_as_milliseconds(db: Database, tmp_path: Path) -> None:
    now = datetime(2025, 3, 5, tzinfo=UTC)
    # one hour in milliseconds, read as seconds: the job would end 41 days and 16 hours later
    ingest_jobs(db, tmp_path, [job(end=None, gpu_seconds=3_600_000)], now=now)

    [(line, reason, message)] = rejects(db)
    assert (line, reason) == (1, "future_timestamp")
    assert message.startswith("gpu_seconds (3600000) at gpu_count 1 puts the end at 2025-04-14 02:00:00+00;")


def test_naive_start_rejected_unless_the_zone_is_declared(db: Database, tmp_path: Path) -> None:
    record = job(start="2025-03-03 10:00:00", end=None, gpu_seconds=60)
    ingest_jobs(db, tmp_path, [record])
    assert [r[1] for r in rejects(db)] == ["naive_timestamp"]

    ingest_jobs(db, tmp_path, [record], zone="Asia/Shanghai")
    assert one_job(db)["start_ts"] == "2025-03-03 02:00:00+00"


# ------------------------------------------------------------------------------------ one kind per file


def test_capacity_record_in_a_jobs_file_rejected_as_wrong_kind(db: Database, tmp_path: Path) -> None:
    report = ingest_jobs(db, tmp_path, [job(), capacity(), job(job_id="j-2"), job(job_id=None, team="x")])

    assert (report.target_table, report.accepted) == ("gpu_jobs", 2)
    assert rejects(db) == [
        (
            2,
            "wrong_record_kind",
            "the record has no job_id and no job fields, so it looks like a capacity record, but this file holds "
            "GPU jobs (its first records carry job_id); expected one kind per file: put capacity records in a "
            "file of their own",
        ),
        (
            4,
            "missing_field",
            "job_id is missing; expected a string (every record of a GPU jobs file needs one: it is the dedup key)",
        ),
    ]
    assert rows(db, "SELECT count(*) AS n FROM gpu_capacity") == [{"n": 0}]


def test_job_record_in_a_capacity_file_rejected_as_wrong_kind(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "capacity.jsonl", jsonl([capacity(), capacity(capacity_id="pool-b"), job()]))
    report = balanced(db, ingest_one(db, path, "gpu"))

    assert (report.target_table, report.accepted) == ("gpu_capacity", 2)
    assert rejects(db) == [
        (
            3,
            "wrong_record_kind",
            "the record has job_id 'j-1', so it is a GPU job, but this file holds capacity records (its first "
            "records have no job_id); expected one kind per file: put jobs in a file of their own",
        )
    ]
    assert rows(db, "SELECT count(*) AS n FROM gpu_jobs") == [{"n": 0}]


@pytest.mark.parametrize(
    ("name", "content", "table"),
    [
        ("a.jsonl", jsonl([job(), capacity()]), "gpu_jobs"),  # a tie goes to jobs
        ("b.jsonl", jsonl([job(), capacity(), capacity(), capacity()]), "gpu_capacity"),
        ("c.json", json.dumps([capacity(), job(), job()]), "gpu_jobs"),
        ("d.csv", "job_id,start,gpu_seconds,gpu_type\n", "gpu_jobs"),
        ("e.csv", "cluster,gpu_type,gpu_count,start,end\n", "gpu_capacity"),
        # JSON arrays larger than the head sniffed (256 KiB): the keys in the head's text decide
        ("big_jobs.json", json.dumps([job(job_id=f"j-{i}") for i in range(3000)], indent=2), "gpu_jobs"),
        (
            "big_capacity.json",
            json.dumps([capacity(capacity_id=f"c-{i}") for i in range(3000)], indent=2),
            "gpu_capacity",
        ),
        ("g.jsonl", "", "gpu_jobs"),
    ],
)
def test_target_chosen_from_the_records_at_the_head(tmp_path: Path, name: str, content: str, table: str) -> None:
    file = sniff(write_file(tmp_path, name, content))

    assert GPU.target_for(file).table == table


# ------------------------------------------------------------------------------------------ capacity


def test_capacity_key_is_the_records_id_else_cluster_type_and_utc_start(db: Database, tmp_path: Path) -> None:
    records = [
        capacity(start="2025-03-03T01:00:00+01:00"),
        capacity(capacity_id="east-h100-pool-b", gpu_count="8", hourly_rate=None),
        capacity(cluster="inference-west", gpu_type="L4", gpu_count=8, hourly_rate="0.70", currency="EUR"),
    ]
    path = write_file(tmp_path, "capacity.jsonl", jsonl(records))
    report = balanced(db, ingest_one(db, path, "gpu", fx_rates={"EUR": Decimal("1.08")}))

    assert (report.target_table, report.accepted) == ("gpu_capacity", 3)
    assert rows(
        db,
        "SELECT capacity_id, gpu_count, CAST(start_ts AS VARCHAR) AS start_ts, hourly_rate FROM gpu_capacity "
        "ORDER BY capacity_id",
    ) == [
        {
            "capacity_id": "east-h100-pool-b",
            "gpu_count": Decimal("8.000000000"),
            "start_ts": "2025-03-03 00:00:00+00",
            "hourly_rate": None,
        },
        {
            "capacity_id": "gpu-east/H100/2025-03-03T00:00:00Z",
            "gpu_count": Decimal("16.000000000"),
            "start_ts": "2025-03-03 00:00:00+00",
            "hourly_rate": Decimal("3.900000000000"),
        },
        {
            "capacity_id": "inference-west/L4/2025-03-03T00:00:00Z",
            "gpu_count": Decimal("8.000000000"),
            "start_ts": "2025-03-03 00:00:00+00",
            "hourly_rate": Decimal("0.756000000000"),
        },
    ]


def test_capacity_restated_when_the_same_pool_and_start_comes_again(db: Database, tmp_path: Path) -> None:
    balanced(db, ingest_one(db, write_file(tmp_path, "a.jsonl", jsonl([capacity()])), "gpu"))
    report = balanced(db, ingest_one(db, write_file(tmp_path, "b.jsonl", jsonl([capacity(gpu_count=12)])), "gpu"))

    assert (report.accepted, report.restated, report.duplicates) == (1, 1, 0)
    assert rows(db, "SELECT gpu_count FROM gpu_capacity") == [{"gpu_count": Decimal("12.000000000")}]


@pytest.mark.parametrize(
    ("fields", "reason", "message"),
    [
        ({"end": "2025-03-03T00:00:00Z"}, "invalid_value", "end (2025-03-03 00:00:00+00) is not after start; "),
        ({"gpu_count": 0}, "invalid_value", f"gpu_count is 0; expected a number of at least {SMALLEST_GPU_COUNT}"),
        ({"cluster": None}, "missing_field", "cluster is missing; "),
        ({"hourly_rate": "$3.90"}, "invalid_number", 'hourly_rate is "$3.90"; '),
    ],
)
def test_bad_capacity_record_rejected_naming_its_field(
    db: Database, tmp_path: Path, fields: dict[str, Any], reason: str, message: str
) -> None:
    records = [capacity(start="2025-03-02T00:00:00Z", end="2025-03-03T00:00:00Z"), capacity(**fields)]
    path = write_file(tmp_path, "capacity.jsonl", jsonl(records))
    report = balanced(db, ingest_one(db, path, "gpu"))

    assert (report.accepted, report.rejected_by_reason) == (1, {reason: 1})
    [(line, _, got)] = rejects(db)
    assert line == 2 and got.startswith(message), got


# ------------------------------------------------------------------------------------------- formats

FORMAT_JOBS = [
    job(job_id="f-1", end="2025-03-03T12:30:00Z", gpu_count=8, cost_usd="12.50", tags={"queue": "train"}),
    job(job_id="f-2", end=None, gpu_seconds=9000, gpu_type="L4", gpu_count=2, status="failed"),
    job(job_id="f-3", start="2025-03-03T23:00:00Z", end="2025-03-04T01:00:00Z", gpu_type="A100-80GB", gpu_count=0.5),
]
FORMAT_EXPECTED = [
    {
        "job_id": "f-1",
        "start_ts": "2025-03-03 10:00:00+00",
        "end_ts": "2025-03-03 12:30:00+00",
        "charge_day": "2025-03-03",
        "gpu_type": "H100",
        "gpu_count": Decimal("8.000000000"),
        "gpu_seconds": Decimal("72000.000000000"),
        "status": None,
        "reported_cost_usd": Decimal("12.500000000000"),
        "tags": {"queue": "train"},
    },
    {
        "job_id": "f-2",
        "start_ts": "2025-03-03 10:00:00+00",
        "end_ts": "2025-03-03 11:15:00+00",
        "charge_day": "2025-03-03",
        "gpu_type": "L4",
        "gpu_count": Decimal("2.000000000"),
        "gpu_seconds": Decimal("9000.000000000"),
        "status": "failed",
        "reported_cost_usd": None,
        "tags": None,
    },
    {
        "job_id": "f-3",
        "start_ts": "2025-03-03 23:00:00+00",
        "end_ts": "2025-03-04 01:00:00+00",
        "charge_day": "2025-03-03",
        "gpu_type": "A100-80GB",
        "gpu_count": Decimal("0.500000000"),
        "gpu_seconds": Decimal("3600.000000000"),
        "status": None,
        "reported_cost_usd": None,
        "tags": None,
    },
]


def loaded_jobs(db: Database) -> list[dict[str, Any]]:
    got = rows(
        db,
        f"SELECT job_id, {JOB_COLUMNS}, gpu_type, status, reported_cost_usd, tags FROM gpu_jobs ORDER BY job_id",
    )
    for r in got:
        r["tags"] = json.loads(r["tags"]) if r["tags"] else None
    return [{k: r[k] for k in FORMAT_EXPECTED[0]} for r in got]


def write_format(tmp_path: Path, fmt: str) -> Path:
    gz = fmt.endswith(".gz")
    if fmt.startswith("jsonl"):
        return write_file(tmp_path, f"jobs.{fmt}", jsonl(FORMAT_JOBS), gzipped=gz)
    if fmt == "json":
        return write_file(tmp_path, "jobs.json", json.dumps(FORMAT_JOBS, indent=2))
    columns = sorted({k for r in FORMAT_JOBS for k in r})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for r in FORMAT_JOBS:
        writer.writerow([json.dumps(r[c]) if isinstance(r.get(c), dict) else r.get(c, "") for c in columns])
    source = write_file(tmp_path, f"jobs.{'csv.gz' if fmt == 'csv.gz' else 'csv'}", buf.getvalue(), gzipped=gz)
    if fmt != "parquet":
        return source
    target = tmp_path / "jobs.parquet"
    duckdb.execute(
        "COPY (SELECT * FROM read_csv($src, all_varchar = true)) TO $dst (FORMAT parquet)",
        {"src": str(source), "dst": str(target)},
    )
    return target


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "json", "csv", "csv.gz", "parquet"])
def test_jobs_load_the_same_from_every_format(db: Database, tmp_path: Path, fmt: str) -> None:
    report = balanced(db, ingest_one(db, write_format(tmp_path, fmt), "gpu"))

    assert (report.target_table, report.lines, report.accepted, report.rejected) == ("gpu_jobs", 3, 3, 0)
    assert loaded_jobs(db) == FORMAT_EXPECTED


def test_parquet_native_types_read_exactly(db: Database, tmp_path: Path) -> None:
    target = tmp_path / "native.parquet"
    duckdb.execute(
        """COPY (SELECT 'n-1' AS job_id, TIMESTAMPTZ '2025-03-03 10:00:00+00' AS "start",
                        TIMESTAMPTZ '2025-03-03 10:30:00+00' AS "end", 'H100' AS gpu_type,
                        CAST(0.5 AS DOUBLE) AS gpu_count, CAST(900 AS DECIMAL(12,3)) AS gpu_seconds,
                        MAP {'queue': 'serve'} AS tags, CAST(1.25 AS DECIMAL(10,4)) AS cost_usd)
           TO $dst (FORMAT parquet)""",
        {"dst": str(target)},
    )
    balanced(db, ingest_one(db, target, "gpu"))

    [row] = rows(db, f"SELECT {JOB_COLUMNS}, tags, reported_cost_usd FROM gpu_jobs")
    assert row == {
        "start_ts": "2025-03-03 10:00:00+00",
        "end_ts": "2025-03-03 10:30:00+00",
        "charge_day": "2025-03-03",
        "gpu_count": Decimal("0.500000000"),
        "gpu_seconds": Decimal("900.000000000"),
        "tags": '{"queue":"serve"}',
        "reported_cost_usd": Decimal("1.250000000000"),
    }


def test_capacity_loads_from_csv_and_parquet(db: Database, tmp_path: Path) -> None:
    source = FIXTURES / "capacity-2025-03-03.csv"
    target = tmp_path / "capacity.parquet"
    duckdb.execute(
        "COPY (SELECT * FROM read_csv($src, all_varchar = true)) TO $dst (FORMAT parquet)",
        {"src": str(source), "dst": str(target)},
    )
    first = balanced(db, ingest_one(db, source, "gpu"))
    again = balanced(db, ingest_one(db, target, "gpu"))

    assert (first.target_table, first.accepted) == ("gpu_capacity", 8)
    assert (again.target_table, again.accepted, again.duplicates) == ("gpu_capacity", 0, 8)


def test_unknown_fields_kept_in_extra(db: Database, tmp_path: Path) -> None:
    ingest_jobs(db, tmp_path, [job(queue="train", node_list=["n1", "n2"])])

    assert json.loads(rows(db, "SELECT extra FROM gpu_jobs")[0]["extra"]) == {
        "queue": "train",
        "node_list": ["n1", "n2"],
    }


def test_reingest_adds_nothing_and_counts_duplicates(db: Database, tmp_path: Path) -> None:
    path = write_format(tmp_path, "jsonl.gz")
    first = balanced(db, ingest_one(db, path, "gpu"))
    second = balanced(db, ingest_one(db, path, "gpu"))

    assert (first.accepted, first.duplicates) == (3, 0)
    assert (second.lines, second.accepted, second.duplicates, second.restated) == (3, 0, 3, 0)
    assert loaded_jobs(db) == FORMAT_EXPECTED


# ---------------------------------------------------------------------------------------- --source auto


def test_auto_recognises_gpu_jobs_and_capacity_files(db: Database, tmp_path: Path) -> None:
    write_format(tmp_path / "in", "csv.gz")
    write_file(tmp_path / "in", "capacity.json", json.dumps([capacity()]))

    outcomes = list(ingest_paths(db, [tmp_path / "in"], "auto", IngestOptions()))

    got = sorted(
        (Path(o.report.source_file).name, o.report.source, o.report.target_table) for o in outcomes if o.report
    )
    assert got == [("capacity.json", "gpu", "gpu_capacity"), ("jobs.csv.gz", "gpu", "gpu_jobs")]
    assert all(o.report and o.report.detected and o.report.balanced for o in outcomes)


GATEWAY_RECORD = {
    "request_id": "r-1",
    "ts": "2025-03-03T10:00:00Z",
    "model": "gpt-4o",
    "input_tokens": 10,
    "output_tokens": 5,
    "team": "search",
}
LITELLM_PAYLOAD = {
    "id": "chatcmpl-1",
    "call_type": "acompletion",
    "model": "gpt-4o",
    "startTime": 1741000000.0,
    "endTime": 1741000001.5,
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "response_cost": 0.0001,
    "metadata": {"user_api_key_team_alias": "search"},
}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("gateway.jsonl", jsonl([GATEWAY_RECORD])),
        ("gateway.csv", "request_id,ts,model,input_tokens,output_tokens\nr-1,2025-03-03T10:00:00Z,gpt-4o,10,5\n"),
        ("litellm.json", json.dumps([LITELLM_PAYLOAD])),
        ("spendlogs.csv", "request_id,call_type,api_key,spend,startTime,endTime,model,user,team_id\n"),
        # a gateway record that happens to carry GPU-ish keys is still a gateway record
        ("gateway_gpu_tags.jsonl", jsonl([{**GATEWAY_RECORD, "gpu_type": "H100", "job_id": "x", "start": "x"}])),
    ],
)
def test_auto_leaves_gateway_and_litellm_files_alone(tmp_path: Path, name: str, content: str) -> None:
    file = sniff(write_file(tmp_path, name, content))

    assert not GPU.recognise(file)
    if name.startswith("gateway"):
        assert detect_source(file).name == "gateway"


def test_mapping_names_only_fields_of_the_gpu_targets() -> None:
    # the engine keeps the chosen target's fields of this mapping, so a misspelt field would vanish silently
    mapping = GPU.mapping(Format.JSONL, frozenset(GPU.input_fields))
    assert set(mapping) <= set(GPU_JOBS.field_names) | set(GPU_CAPACITY.field_names)
    assert set(GPU_JOBS.field_names) <= set(mapping)
    assert set(GPU_CAPACITY.field_names) <= set(mapping)


# ------------------------------------------------------------------------------------------ fixtures


def test_fixture_jobs_load_with_exact_gpu_time(db: Database) -> None:
    report = balanced(db, ingest_one(db, FIXTURES / "jobs-2025-03-03.jsonl", "gpu"))

    assert (report.lines, report.accepted, report.rejected_by_reason) == (9, 8, {"invalid_value": 1})
    assert [(line, reason) for line, reason, _ in rejects(db)] == [(9, "invalid_value")]
    got = {r.pop("job_id"): r for r in rows(db, f"SELECT job_id, {JOB_COLUMNS}, team, status FROM gpu_jobs")}
    assert {k: (v["end_ts"], v["charge_day"], v["gpu_count"], v["gpu_seconds"]) for k, v in got.items()} == {
        "slurm-48213": ("2025-03-03 07:30:00+00", "2025-03-03", Decimal("8"), Decimal("187200")),
        "slurm-48227": ("2025-03-03 12:45:30+00", "2025-03-03", Decimal("4"), Decimal("50520")),
        "slurm-48240": ("2025-03-04 02:30:00+00", "2025-03-03", Decimal("2"), Decimal("46800")),
        "k8s-rag-serve-7f9c": ("2025-03-03 12:00:00+00", "2025-03-03", Decimal("0.5"), Decimal("21600")),
        "k8s-query-embed-2b1d": ("2025-03-03 15:15:00+00", "2025-03-03", Decimal("2"), Decimal("9000")),
        "slurm-48302": ("2025-03-04 03:42:17+00", "2025-03-04", Decimal("4"), Decimal("10148")),
        "k8s-moderation-91aa": ("2025-03-04 20:00:00+00", "2025-03-04", Decimal("0.25"), Decimal("10800")),
        "slurm-48311": ("2025-03-04 15:00:00+00", "2025-03-04", Decimal("8"), Decimal("172800")),
    }
    assert got["slurm-48302"]["status"] == "failed"
    assert rows(db, "SELECT sum(gpu_seconds) AS s, count(DISTINCT team) AS teams FROM gpu_jobs") == [
        {"s": Decimal("508868.000000000"), "teams": 4}
    ]


def test_fixture_capacity_covers_every_job_pool_with_idle_left(db: Database) -> None:
    balanced(db, ingest_one(db, FIXTURES / "jobs-2025-03-03.jsonl", "gpu"))
    report = balanced(db, ingest_one(db, FIXTURES / "capacity-2025-03-03.csv", "gpu"))

    assert (report.target_table, report.lines, report.accepted) == ("gpu_capacity", 8, 8)
    # every job runs on a pool that has capacity on its day, and no pool is used beyond its GPU-seconds
    pools = rows(
        db,
        """SELECT c.cluster, c.gpu_type, CAST(c.start_ts AS DATE) AS day,
                  c.gpu_count * 86400 AS capacity_s, COALESCE(sum(j.gpu_seconds), 0) AS used_s
           FROM gpu_capacity c LEFT JOIN gpu_jobs j
             ON j.cluster = c.cluster AND j.gpu_type = c.gpu_type AND j.charge_day = CAST(c.start_ts AS DATE)
           GROUP BY ALL ORDER BY ALL""",
    )
    assert len(pools) == 8 and all(p["used_s"] < p["capacity_s"] for p in pools)
    orphans = rows(
        db,
        """SELECT job_id FROM gpu_jobs j WHERE NOT EXISTS (SELECT 1 FROM gpu_capacity c WHERE c.cluster = j.cluster
           AND c.gpu_type = j.gpu_type AND j.start_ts >= c.start_ts AND j.start_ts < c.end_ts)""",
    )
    assert orphans == []
    assert rows(db, "SELECT sum(gpu_count * datediff('second', start_ts, end_ts)) AS s FROM gpu_capacity") == [
        {"s": Decimal("6220800")}
    ]


# --------------------------------------------------------------------------------------- real traces


def test_real_lora_trace_ingests_every_request_with_its_exec_time(
    db: Database, tmp_path: Path, shared_data: Path
) -> None:
    """Alibaba GenAI 2026 LoRA serving trace: one request = one GPU job of exec_time_seconds on one GPU."""
    trace = shared_data / "gpu_jobs" / "alibaba_genai2026_lora_request_trace.csv.gz"
    canonical = tmp_path / "lora_jobs.csv.gz"
    # the trace names no GPU model; its timestamps are naive (and shifted), declared below as Asia/Shanghai
    duckdb.execute(
        """COPY (
               SELECT 'lora-' || row_number() OVER () AS job_id,
                      strftime(gmt_create, '%Y-%m-%d %H:%M:%S') AS "start",
                      exec_time_seconds AS gpu_seconds, 1 AS gpu_count, 'unspecified' AS gpu_type,
                      groupId AS team, predict_type AS feature, checkpoint_model_version_id AS project,
                      'genai-lora' AS cluster, lower(predict_status) AS status,
                      num_inference_steps, num_lora
               FROM read_csv($src))
           TO $dst (FORMAT csv, COMPRESSION gzip)""",
        {"src": str(trace), "dst": str(canonical)},
    )
    [truth] = duckdb.execute(
        "SELECT count(*), sum(CAST(exec_time_seconds AS DECIMAL(38,9))) FROM read_csv($src)", {"src": str(trace)}
    ).fetchall()

    report = balanced(db, ingest_one(db, canonical, "gpu", zone="Asia/Shanghai"))

    assert (report.target_table, report.lines) == ("gpu_jobs", truth[0]) == ("gpu_jobs", 26_823)
    assert (report.accepted, report.duplicates, report.rejected) == (26_823, 0, 0)
    [got] = rows(
        db,
        """SELECT sum(gpu_seconds) AS gpu_s, count(*) FILTER (end_ts <> start_ts + to_seconds(gpu_seconds)) AS bad_end,
                  count(DISTINCT team) AS teams,
                  sum(gpu_seconds) FILTER (team = 'G0529') AS top_team_s,
                  count(*) FILTER (status = 'failed') AS failed, min(start_ts) AS first
           FROM gpu_jobs""",
    )
    assert got["gpu_s"] == truth[1] == Decimal("768899")
    assert round(got["gpu_s"] / 3600, 1) == Decimal("213.6")  # SOURCES.md: 213.6 h
    assert round(got["top_team_s"] / 3600, 2) == Decimal("9.76")  # SOURCES.md: G0529 used 9.76 h
    assert (got["bad_end"], got["teams"], got["failed"]) == (0, 4_247, 398)
    assert got["first"] == datetime(2024, 11, 15, 8, 57, 50, tzinfo=UTC)  # 16:57:50 in Shanghai


def test_real_openb_node_list_ingests_as_capacity_per_node(db: Database, tmp_path: Path, shared_data: Path) -> None:
    """Alibaba GPU 2023 (openb) node inventory as capacity: one record per node, keyed by its serial number.

    The node list has no times or prices: the window is the pod trace's span (12,902,960 s) from an
    assumed anchor, so this checks the shape (real GPU models, 1-8 GPUs per node), not idle cost.
    """
    nodes = shared_data / "gpu_jobs" / "alibaba_gpu2023_openb_node_list_gpu_node.csv"
    canonical = tmp_path / "openb_capacity.parquet"
    duckdb.execute(
        """COPY (
               SELECT sn AS capacity_id, 'openb' AS cluster, model AS gpu_type, gpu AS gpu_count,
                      TIMESTAMPTZ '2023-01-01 00:00:00+00' AS "start",
                      TIMESTAMPTZ '2023-01-01 00:00:00+00' + to_seconds(12902960) AS "end",
                      cpu_milli, memory_mib
               FROM read_csv($src))
           TO $dst (FORMAT parquet)""",
        {"src": str(nodes), "dst": str(canonical)},
    )
    truth = dict(
        duckdb.execute("SELECT model, sum(gpu) FROM read_csv($src) GROUP BY model", {"src": str(nodes)}).fetchall()
    )

    report = balanced(db, ingest_one(db, canonical, "gpu"))

    assert (report.target_table, report.lines, report.accepted, report.rejected) == ("gpu_capacity", 1213, 1213, 0)
    got = {
        r["gpu_type"]: r["gpus"]
        for r in rows(db, "SELECT gpu_type, sum(gpu_count) AS gpus FROM gpu_capacity GROUP BY 1")
    }
    assert got == {k: Decimal(v) for k, v in truth.items()}
    assert sum(got.values()) == Decimal("6212")
    assert rows(db, "SELECT json_keys(extra) AS k FROM gpu_capacity LIMIT 1") == [{"k": ["cpu_milli", "memory_mib"]}]


def test_capacity_pools_without_ids_sharing_cluster_type_and_start_are_one_record(db: Database, tmp_path: Path) -> None:
    # why the per-node inventory above needs capacity_id: without it, nodes of one model collapse
    path = write_file(tmp_path, "nodes.jsonl", jsonl([capacity(gpu_count=8), capacity(gpu_count=8)]))
    report = balanced(db, ingest_one(db, path, "gpu"))

    assert (report.accepted, report.duplicates) == (1, 1)


def test_a_capacity_rate_above_the_price_bound_rejects_its_record(db: Database, tmp_path: Path) -> None:
    # a rate the GPU pricing cannot sum safely (the overrides file refuses it too) is one rejected record
    content = (
        "cluster,gpu_type,gpu_count,start,end,hourly_rate\n"
        "east,H100,16,2025-03-03T00:00:00Z,2025-03-04T00:00:00Z,3.90\n"
        "east,H100,16,2025-03-04T00:00:00Z,2025-03-05T00:00:00Z,1e14\n"
    )

    report = ingest_one(db, write_file(tmp_path, "capacity.csv", content), "gpu")

    assert (report.accepted, report.rejected) == (1, 1)
    reject = rows(db, "SELECT reason, message FROM rejected_usage")[0]
    assert reject["reason"] == "invalid_number"
    assert "is not below 1,000,000 USD per GPU-hour" in reject["message"]
