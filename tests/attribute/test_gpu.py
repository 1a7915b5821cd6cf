"""GPU spend: day splitting, fractional GPUs, rate precedence, idle policies, conservation, the pipeline."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from finops.attribute.gpu import GPU_LINE_SCHEMA, gpu_pools, gpu_spend
from finops.errors import InputError
from finops.pipeline import run_once
from finops.price.overrides import GPU_RATE_SCHEMA
from finops.schema import IDLE, SHARED, UNATTRIBUTED
from finops.settings import Settings
from finops.store.db import Database, connect
from finops.store.gpu_spend import read_default_rates, sync_default_rates
from tests.helpers import ingest_one, rows, write_file

JOB_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "job_id": pl.String(),
    "start_ts": pl.Datetime("us", "UTC"),
    "end_ts": pl.Datetime("us", "UTC"),
    "gpu_type": pl.String(),
    "gpu_count": pl.Decimal(38, 9),
    "team": pl.String(),
    "feature": pl.String(),
    "project": pl.String(),
    "user": pl.String(),
    "cluster": pl.String(),
    "status": pl.String(),
    "tags": pl.String(),
}
CAPACITY_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "capacity_id": pl.String(),
    "cluster": pl.String(),
    "gpu_type": pl.String(),
    "gpu_count": pl.Decimal(38, 9),
    "start_ts": pl.Datetime("us", "UTC"),
    "end_ts": pl.Datetime("us", "UTC"),
    "hourly_rate": pl.Decimal(38, 12),
}
LINE = ["line_type", "charge_day", "team", "feature", "gpu_seconds", "cost_usd"]
DAY1, DAY2 = date(2025, 3, 3), date(2025, 3, 4)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def jobs(*records: dict[str, Any]) -> pl.LazyFrame:
    return pl.DataFrame(list(records), schema=JOB_SCHEMA).lazy()


def job(**fields: Any) -> dict[str, Any]:
    """One H100 on cluster east, 10:00-11:00 UTC on 3 March 2025, for team search; `fields` override."""
    record: dict[str, Any] = {
        "source": "gpu",
        "job_id": "j-1",
        "start_ts": at("2025-03-03T10:00"),
        "end_ts": at("2025-03-03T11:00"),
        "gpu_type": "H100",
        "gpu_count": Decimal(1),
        "team": "search",
        "feature": "rerank",
        "project": None,
        "user": None,
        "cluster": "east",
        "status": "completed",
        "tags": None,
    }
    for key, value in fields.items():
        record[key] = at(value) if key in ("start_ts", "end_ts") else Decimal(value) if key == "gpu_count" else value
    return record


def capacity(*windows: dict[str, Any]) -> pl.LazyFrame:
    return pl.DataFrame(list(windows), schema=CAPACITY_SCHEMA).lazy()


def window(**fields: Any) -> dict[str, Any]:
    """16 H100 on east for 3 March 2025 at $3.90 per GPU-hour; `fields` override."""
    record: dict[str, Any] = {
        "source": "gpu",
        "capacity_id": None,
        "cluster": "east",
        "gpu_type": "H100",
        "gpu_count": Decimal(16),
        "start_ts": at("2025-03-03T00:00"),
        "end_ts": at("2025-03-04T00:00"),
        "hourly_rate": Decimal("3.90"),
    }
    for key, value in fields.items():
        record[key] = at(value) if key in ("start_ts", "end_ts") else Decimal(value) if key == "gpu_count" else value
    record["capacity_id"] = record["capacity_id"] or f"{record['cluster']}/{record['gpu_type']}/{record['start_ts']:%d}"
    if isinstance(record["hourly_rate"], str):
        record["hourly_rate"] = Decimal(record["hourly_rate"])
    return record


def rates(*rows_: tuple[str, str | None, str, str, str | None, str]) -> pl.LazyFrame:
    """(gpu_type, cluster, hourly_usd, valid_from, valid_to, source) rows of `gpu_rates`."""
    return pl.DataFrame(
        [
            (g, c, Decimal(h), date.fromisoformat(f), date.fromisoformat(t) if t else None, s)
            for g, c, h, f, t, s in rows_
        ],
        schema=GPU_RATE_SCHEMA,
        orient="row",
    ).lazy()


NO_CAPACITY = capacity()
H100_AT_390 = rates(("H100", None, "3.90", "1970-01-01", None, "overrides.csv line 2"))


def spend(
    job_frame: pl.LazyFrame,
    capacity_frame: pl.LazyFrame = NO_CAPACITY,
    rate_frame: pl.LazyFrame = H100_AT_390,
    policy: str = "idle",
    **options: Any,
) -> pl.DataFrame:
    return gpu_spend(job_frame, capacity_frame, rate_frame, policy, **options).collect()


def expected(records: list[tuple[Any, ...]], columns: list[str] = LINE) -> pl.DataFrame:
    schema = {c: GPU_LINE_SCHEMA[c] for c in columns}
    return pl.DataFrame(
        [
            tuple(
                Decimal(v) if isinstance(v, str) and schema[c] != pl.String() else v
                for c, v in zip(columns, r, strict=True)
            )
            for r in records
        ],
        schema=schema,
        orient="row",
    )


# ------------------------------------------------------------------------------------- day splitting


def test_job_across_midnight_split_into_one_line_per_utc_day() -> None:
    result = spend(jobs(job(start_ts="2025-03-03T20:00", end_ts="2025-03-04T02:30", gpu_count="2")))

    columns = ["line_type", "ts", "charge_day", "request_id", "requests", "gpu_seconds", "cost_usd"]
    assert_frame_equal(
        result.select(columns),
        expected(
            [
                ("gpu", at("2025-03-03T20:00"), DAY1, "j-1", 1, "28800", "31.20"),  # 4 h x 2 GPUs x $3.90
                ("gpu", at("2025-03-04T00:00"), DAY2, "j-1", 0, "18000", "19.50"),  # 2.5 h x 2 GPUs: counted once
            ],
            columns,
        ),
    )


def test_job_over_three_days_and_job_ending_at_midnight() -> None:
    result = spend(
        jobs(
            job(job_id="long", start_ts="2025-03-03T23:00", end_ts="2025-03-05T01:00"),
            job(job_id="to-midnight", start_ts="2025-03-03T22:00", end_ts="2025-03-04T00:00"),
        )
    )

    columns = ["charge_day", "request_id", "gpu_seconds", "cost_usd"]
    assert_frame_equal(
        result.select(columns),
        expected(
            [
                (DAY1, "long", "3600", "3.90"),
                (DAY1, "to-midnight", "7200", "7.80"),  # nothing on 4 March: the end is exclusive
                (DAY2, "long", "86400", "93.60"),
                (date(2025, 3, 5), "long", "3600", "3.90"),
            ],
            columns,
        ),
    )


@pytest.mark.parametrize(
    ("gpu_count", "gpu_seconds", "cost_usd"),
    [
        ("0.5", "1800", "1.95"),  # a MIG slice: half an H100 for an hour
        ("0.25", "900", "0.975"),  # time-sliced by four
        ("0.142857143", "514.285714800", "0.557142857700"),  # a seventh, to 9 places: exact, not floated
        ("0.000000001", "0.000003600", "0.000000003900"),  # one nano-GPU for an hour still costs something
    ],
)
def test_fractional_gpu_count_priced_by_fraction(gpu_count: str, gpu_seconds: str, cost_usd: str) -> None:
    result = spend(jobs(job(gpu_count=gpu_count)))

    assert_frame_equal(
        result.select("gpu_seconds", "cost_usd"),
        expected([(gpu_seconds, cost_usd)], ["gpu_seconds", "cost_usd"]),
    )


def test_cost_rounded_half_even_once_at_twelve_places() -> None:
    # 10,148 GPU-seconds at $3.90: 10.99366666666666...; 1 GPU-second at $0.000000000018: 5e-15 -> 0
    result = spend(
        jobs(
            job(job_id="a", end_ts="2025-03-03T12:49:08", gpu_count="1"),
            job(job_id="b", gpu_type="TINY", end_ts="2025-03-03T10:00:01"),
        ),
        rate_frame=rates(
            ("H100", None, "3.90", "1970-01-01", None, "x"),
            ("TINY", None, "0.000000000018", "1970-01-01", None, "x"),
        ),
    )

    assert result["cost_usd"].to_list() == [Decimal("10.993666666667"), Decimal("0.000000000000")]


def test_failed_jobs_are_spend_and_a_job_without_team_is_unattributed() -> None:
    result = spend(jobs(job(job_id="f", status="failed", team=None, feature=None)))

    assert_frame_equal(
        result.select("team", "feature", "attribution", "status", "cost_usd"),
        expected(
            [(UNATTRIBUTED, UNATTRIBUTED, "team=none; feature=none", "failed", "3.90")],
            ["team", "feature", "attribution", "status", "cost_usd"],
        ),
    )


def test_ownership_rules_apply_to_gpu_jobs_after_the_jobs_own_team() -> None:
    rules = pl.LazyFrame(
        [("project", "llm-evals", "ml-platform", "evals", None, None, "owners.csv line 2")],
        schema={
            "rule_kind": pl.String(),
            "match_value": pl.String(),
            "team": pl.String(),
            "feature": pl.String(),
            "valid_from": pl.Date(),
            "valid_to": pl.Date(),
            "source": pl.String(),
        },
        orient="row",
    )
    result = spend(
        jobs(job(job_id="a", team=None, feature=None, project="llm-evals"), job(job_id="b", project="llm-evals")),
        rules=rules,
    )

    assert result.select("request_id", "team", "feature", "attribution").rows() == [
        ("a", "ml-platform", "evals", "team=project:llm-evals; feature=project:llm-evals"),
        ("b", "search", "rerank", "team=record; feature=record"),
    ]


def test_as_of_cuts_jobs_and_capacity_at_that_moment() -> None:
    result = spend(
        jobs(job(job_id="running", end_ts="2025-03-03T14:00"), job(job_id="future", start_ts="2025-03-03T13:00")),
        capacity(window(gpu_count="1")),
        as_of=at("2025-03-03T12:00"),
    )

    assert_frame_equal(
        result.select(LINE),
        expected(
            [
                ("gpu", DAY1, "search", "rerank", "7200", "7.80"),  # 10:00-12:00 of a job still running
                ("idle", DAY1, IDLE, IDLE, "36000", "39.00"),  # capacity 00:00-12:00 minus the job
            ]
        ),
    )


# ------------------------------------------------------------------------------------------- rates


def test_rate_precedence_capacity_then_cluster_override_then_any_cluster_then_default() -> None:
    one_hour = {"start_ts": "2025-03-03T10:00", "end_ts": "2025-03-03T11:00"}
    result = spend(
        jobs(
            job(job_id="1", cluster="east", gpu_type="H100", **one_hour),
            job(job_id="2", cluster="east", gpu_type="A100-80GB", **one_hour),
            job(job_id="3", cluster="west", gpu_type="A100-80GB", **one_hour),
            job(job_id="4", cluster="west", gpu_type="L4", **one_hour),
            job(job_id="5", cluster=None, gpu_type="H100", **one_hour),
        ),
        capacity(
            window(cluster="east", gpu_type="H100", capacity_id="east-h100"),
            window(cluster="east", gpu_type="A100-80GB", hourly_rate=None),
        ),
        rates(
            ("H100", "east", "2.95", "1970-01-01", None, "overrides.csv line 2"),
            ("H100", None, "2.50", "1970-01-01", None, "overrides.csv line 3"),
            ("A100-80GB", "east", "1.50", "1970-01-01", None, "overrides.csv line 4"),
            ("A100-80GB", None, "1.70", "1970-01-01", None, "overrides.csv line 5"),
            ("A100-80GB", None, "9.99", "1970-01-01", None, "default"),
            ("L4", None, "0.8048", "1970-01-01", None, "default"),
        ),
    ).filter(pl.col("line_type") == "gpu")

    columns = ["request_id", "provider", "gpu_type", "cost_usd", "price_source"]
    assert_frame_equal(
        result.select(columns).sort("request_id"),
        expected(
            [
                ("1", "east", "H100", "3.90", "capacity east-h100"),  # the capacity record's own rate
                ("2", "east", "A100-80GB", "1.50", "overrides.csv line 4"),  # capacity without a rate: override
                ("3", "west", "A100-80GB", "1.70", "overrides.csv line 5"),  # any-cluster override before default
                ("4", "west", "L4", "0.8048", "default list price (gpu_rates_default.csv)"),
                ("5", None, "H100", "2.50", "overrides.csv line 3"),  # no cluster: only any-cluster rates apply
            ],
            columns,
        ),
    )


def test_rates_effective_dated_by_utc_day_and_the_latest_started_wins() -> None:
    result = spend(
        jobs(job(start_ts="2025-03-03T22:00", end_ts="2025-03-05T02:00")),
        rate_frame=rates(
            ("H100", None, "2.00", "1970-01-01", None, "base"),
            ("H100", None, "3.00", "2025-03-04", "2025-03-05", "march promo"),  # started later: wins on the 4th
            ("H100", None, "9.00", "2025-01-01", "2025-03-03", "expired"),
        ),
    )

    assert result.select("charge_day", "cost_usd", "price_source").rows() == [
        (DAY1, Decimal("4.000000000000"), "base"),  # 2 h x $2.00
        (DAY2, Decimal("72.000000000000"), "march promo"),  # 24 h x $3.00
        (date(2025, 3, 5), Decimal("4.000000000000"), "base"),  # the promo ended (valid_to is exclusive)
    ]


def test_capacity_rate_applies_per_day_of_its_record() -> None:
    result = spend(
        jobs(job(start_ts="2025-03-03T23:00", end_ts="2025-03-04T01:00")),
        capacity(
            window(gpu_count="1"),
            window(gpu_count="1", start_ts="2025-03-04T00:00", end_ts="2025-03-05T00:00", hourly_rate="4.10"),
        ),
    ).filter(pl.col("line_type") == "gpu")

    assert result["cost_usd"].to_list() == [Decimal("3.90"), Decimal("4.10")]


def test_gpu_type_without_any_rate_keeps_cost_null_and_its_lines_visible() -> None:
    result = spend(
        jobs(job(gpu_type="MI300X", cluster="amd")),
        capacity(window(gpu_type="MI300X", cluster="amd", gpu_count="1", hourly_rate=None)),
    )

    assert_frame_equal(
        result.select([*LINE, "price_source"]),
        expected(
            [
                ("gpu", DAY1, "search", "rerank", "3600", None, None),  # NULL, never 0
                ("idle", DAY1, IDLE, IDLE, "82800", None, None),
            ],
            [*LINE, "price_source"],
        ),
    )


# ------------------------------------------------------------------------------------- idle policies

# 16 H100 for a day at $3.90 = $1,497.60; search 8 GPUs x 6.5 h, ml 2 GPUs x 4 h
BUSY_DAY = jobs(
    job(job_id="s", gpu_count="8", start_ts="2025-03-03T01:00", end_ts="2025-03-03T07:30"),
    job(job_id="m", gpu_count="2", team="ml", feature="evals", start_ts="2025-03-03T20:00", end_ts="2025-03-04T00:00"),
)
JOB_LINES = [
    ("gpu", DAY1, "ml", "evals", "28800", "31.20"),
    ("gpu", DAY1, "search", "rerank", "187200", "202.80"),
]


def test_idle_policy_idle_keeps_one_idle_line_per_pool() -> None:
    result = spend(BUSY_DAY, capacity(window()), policy="idle")

    assert_frame_equal(result.select(LINE), expected([*JOB_LINES, ("idle", DAY1, IDLE, IDLE, "1166400", "1263.60")]))
    assert result.filter(pl.col("line_type") == "idle")["attribution"].to_list() == ["idle: east/H100"]


def test_idle_policy_proportional_shares_by_gpu_seconds() -> None:
    result = spend(BUSY_DAY, capacity(window()), policy="proportional")

    assert_frame_equal(
        result.select(LINE),
        expected(
            [
                *JOB_LINES,
                ("idle", DAY1, "ml", SHARED, "155520", "168.48"),  # 28,800 / 216,000 of the idle
                ("idle", DAY1, "search", SHARED, "1010880", "1095.12"),
            ]
        ),
    )
    assert set(result.filter(pl.col("line_type") == "idle")["attribution"]) == {"idle shared: proportional (east/H100)"}


def test_idle_policy_proportional_allocates_the_last_units_by_largest_remainder() -> None:
    # one GPU at $1/h; a, b, c ran 1, 2 and 4 hours: 17 idle hours = $17 shared 1:2:4 (sevenths)
    result = spend(
        jobs(
            job(job_id="a", team="a", end_ts="2025-03-03T11:00"),
            job(job_id="b", team="b", end_ts="2025-03-03T12:00"),
            job(job_id="c", team="c", end_ts="2025-03-03T14:00"),
        ),
        capacity(window(gpu_count="1", hourly_rate="1")),
        policy="proportional",
    ).filter(pl.col("line_type") == "idle")

    assert_frame_equal(
        result.select(LINE),
        expected(
            [
                ("idle", DAY1, "a", SHARED, "8742.857142857", "2.428571428571"),
                ("idle", DAY1, "b", SHARED, "17485.714285714", "4.857142857143"),  # remainder .857: one unit up
                ("idle", DAY1, "c", SHARED, "34971.428571429", "9.714285714286"),  # .714 (and .571 for seconds)
            ]
        ),
    )
    assert result["cost_usd"].sum() == Decimal(17)
    assert result["gpu_seconds"].sum() == Decimal(17 * 3600)


def test_idle_policy_even_shares_equally_with_exact_remainders() -> None:
    # one GPU at $1/h; a ran 2 hours, b and c 1 hour each: 20 idle hours = $20 in three equal shares
    result = spend(
        jobs(
            job(job_id="a", team="a", end_ts="2025-03-03T12:00"),
            job(job_id="b", team="b"),
            job(job_id="c", team="c"),
        ),
        capacity(window(gpu_count="1", hourly_rate="1")),
        policy="even",
    ).filter(pl.col("line_type") == "idle")

    assert_frame_equal(
        result.select(LINE),
        expected(
            [
                ("idle", DAY1, "a", SHARED, "24000", "6.666666666667"),  # equal remainders: by team name
                ("idle", DAY1, "b", SHARED, "24000", "6.666666666667"),
                ("idle", DAY1, "c", SHARED, "24000", "6.666666666666"),
            ]
        ),
    )
    assert result["cost_usd"].sum() == Decimal(20)


@pytest.mark.parametrize("policy", ["proportional", "even"])
def test_idle_of_a_pool_nobody_used_stays_in_idle_bucket(policy: str) -> None:
    result = spend(
        jobs(job()),
        capacity(window(gpu_count="1"), window(gpu_type="L4", gpu_count="2", hourly_rate="0.50")),
        policy=policy,
    ).filter(pl.col("line_type") == "idle")

    assert result.select("gpu_type", "team", "feature", "cost_usd", "attribution").rows() == [
        ("H100", "search", SHARED, Decimal("89.700000000000"), f"idle shared: {policy} (east/H100)"),
        ("L4", IDLE, IDLE, Decimal("24.000000000000"), f"idle: east/L4 (nobody ran on it; policy {policy})"),
    ]


def test_overallocation_reported_never_negative_idle() -> None:
    busy = jobs(job(gpu_count="2", start_ts="2025-03-03T00:00", end_ts="2025-03-04T00:00"))
    declared = capacity(window(gpu_count="1"))

    result = spend(busy, declared, policy="proportional")
    pools = gpu_pools(busy, declared, H100_AT_390).collect()

    assert_frame_equal(result.select(LINE), expected([("gpu", DAY1, "search", "rerank", "172800", "187.20")]))
    assert pools.select(
        "capacity_gpu_seconds", "allocated_gpu_seconds", "idle_gpu_seconds", "overallocated_gpu_seconds"
    ).rows() == [(Decimal(86400), Decimal(172800), Decimal(0), Decimal(86400))]


def test_unknown_idle_policy_rejected_with_the_valid_values() -> None:
    with pytest.raises(
        InputError, match="Idle policy 'shared' is not known. Valid values are: idle, proportional, even"
    ):
        spend(jobs(job()), policy="shared")


# ------------------------------------------------------------------------- conservation (properties)

DAY_US = 86_400_000_000
START = at("2025-03-03T00:00")
POOLS = [("east", "H100"), ("east", "L4"), ("west", "H100"), ("west", "MI300X")]
RATES = rates(
    ("H100", "west", "2.95", "1970-01-01", None, "o1"),
    ("L4", None, "0.8048", "1970-01-01", None, "default"),
)


@st.composite
def gpu_inputs(draw: st.DrawFn) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Jobs and capacity windows over three UTC days in four pools; some windows carry a rate."""

    def count(high: int) -> Decimal:
        places = draw(st.integers(0, 9))
        return draw(st.decimals(min_value=0, max_value=high, places=places, allow_nan=False, allow_infinity=False))

    def interval() -> tuple[datetime, datetime]:
        start = START + timedelta(microseconds=draw(st.integers(0, 3 * DAY_US)))
        return start, start + timedelta(microseconds=draw(st.integers(0, 2 * DAY_US)))

    job_rows = []
    for i in range(draw(st.integers(0, 8))):
        cluster, gpu_type = draw(st.sampled_from(POOLS))
        start, end = interval()
        team = draw(st.sampled_from(["a", "b", "c", None]))
        job_rows.append(
            job(job_id=f"j{i}", cluster=cluster, gpu_type=gpu_type, team=team, gpu_count=str(count(8)))
            | {"start_ts": start, "end_ts": end}
        )
    windows = []
    for i in range(draw(st.integers(0, 4))):
        cluster, gpu_type = draw(st.sampled_from(POOLS))
        start, end = interval()
        rate = draw(st.none() | st.decimals(min_value=0, max_value=20, places=draw(st.integers(0, 12))))
        windows.append(
            window(capacity_id=f"c{i}", cluster=cluster, gpu_type=gpu_type, gpu_count=str(count(16)), hourly_rate=rate)
            | {"start_ts": start, "end_ts": end}
        )
    return jobs(*job_rows), capacity(*windows)


def exact_cost(gpu_seconds: Decimal, rate: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (gpu_seconds * rate / 3600).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


def by_pool(lines: pl.DataFrame) -> pl.DataFrame:
    return lines.group_by("provider", "gpu_type", "charge_day").agg(
        cost=pl.col("cost_usd").sum(), seconds=pl.col("gpu_seconds").sum(), unpriced=pl.col("cost_usd").is_null().any()
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpu_inputs(), st.sampled_from(["idle", "proportional", "even"]))
def test_every_pool_costs_exactly_its_gpu_hours_times_its_rate(
    inputs: tuple[pl.LazyFrame, pl.LazyFrame], policy: str
) -> None:
    job_frame, capacity_frame = inputs
    lines = spend(job_frame, capacity_frame, RATES, policy)
    pools = gpu_pools(job_frame, capacity_frame, RATES).collect()

    # conservation: per pool, the lines carry (allocated + idle) GPU-seconds and cost them x rate, rounded once
    got = pools.join(
        by_pool(lines),
        left_on=["cluster", "gpu_type", "charge_day"],
        right_on=["provider", "gpu_type", "charge_day"],
        how="left",
        nulls_equal=True,
    )
    for pool in got.iter_rows(named=True):
        billed = pool["allocated_gpu_seconds"] + pool["idle_gpu_seconds"]
        if pool["capacity_gpu_seconds"] is not None:
            assert billed == max(pool["capacity_gpu_seconds"], pool["allocated_gpu_seconds"]), pool
        if pool["seconds"] is None:  # no lines: nothing to bill (a zero-GPU window, an empty job)
            assert billed == 0, pool
        elif pool["hourly_usd"] is None:
            assert pool["seconds"] == billed and pool["unpriced"], pool  # NULL costs, never 0
        else:
            assert pool["seconds"] == billed and not pool["unpriced"], pool
            assert pool["cost"] == exact_cost(billed, pool["hourly_usd"]), pool
    # nothing negative; every job line within one unit (1e-12) of its exact cost
    assert lines.filter((pl.col("cost_usd") < 0) | (pl.col("gpu_seconds") < 0)).height == 0
    rate_of = {(p["cluster"], p["gpu_type"], p["charge_day"]): p["hourly_usd"] for p in pools.iter_rows(named=True)}
    for line in lines.filter(pl.col("line_type") == "gpu", pl.col("cost_usd").is_not_null()).iter_rows(named=True):
        rate = rate_of[(line["provider"], line["gpu_type"], line["charge_day"])]
        with localcontext() as ctx:
            ctx.prec = 80
            assert abs(line["cost_usd"] - line["gpu_seconds"] * rate / 3600) < Decimal("1e-12"), line
    # idle goes to __idle__ or to teams that ran on the pool that day
    users = (
        lines.filter(pl.col("line_type") == "gpu", pl.col("gpu_seconds") > 0)
        .select("provider", "gpu_type", "charge_day", "team")
        .unique()
    )
    idle_owners = lines.filter(pl.col("line_type") == "idle", pl.col("team") != IDLE).select(
        "provider", "gpu_type", "charge_day", "team"
    )
    assert (
        idle_owners.join(users, on=["provider", "gpu_type", "charge_day", "team"], how="anti", nulls_equal=True).height
        == 0
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpu_inputs(), st.sampled_from(["idle", "proportional", "even"]), st.randoms(use_true_random=False))
def test_rerun_and_input_order_give_the_same_frame(
    inputs: tuple[pl.LazyFrame, pl.LazyFrame], policy: str, rng: random.Random
) -> None:
    job_frame, capacity_frame = inputs
    first = spend(job_frame, capacity_frame, RATES, policy)
    shuffled_jobs = job_frame.collect().sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32)).lazy()
    shuffled_capacity = capacity_frame.collect().sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32)).lazy()

    assert_frame_equal(spend(job_frame, capacity_frame, RATES, policy), first)
    assert_frame_equal(spend(shuffled_jobs, shuffled_capacity, RATES, policy), first)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpu_inputs())
def test_idle_policies_move_idle_cost_between_owners_never_change_a_pools_total(
    inputs: tuple[pl.LazyFrame, pl.LazyFrame],
) -> None:
    totals = [
        by_pool(spend(*inputs, RATES, policy)).sort("provider", "gpu_type", "charge_day", nulls_last=True)
        for policy in ("idle", "proportional", "even")
    ]

    assert_frame_equal(totals[0], totals[1])
    assert_frame_equal(totals[0], totals[2])


def test_process_time_zone_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    args = (BUSY_DAY, capacity(window()), H100_AT_390, "proportional")
    in_utc = spend(*args)
    monkeypatch.setenv("TZ", "Pacific/Chatham")  # UTC+12:45 / +13:45: no day boundary in common with UTC
    time.tzset()
    try:
        assert_frame_equal(spend(*args), in_utc)
    finally:
        monkeypatch.undo()
        time.tzset()


# ------------------------------------------------------------------------------ through the pipeline

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
AFTER = at("2025-03-06T00:00")


@pytest.fixture
def gpu_db(db: Database) -> Database:
    for path in sorted((FIXTURES / "raw" / "gpu").iterdir()):
        ingest_one(db, path, "gpu")
    return db


def spend_lines(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT * EXCLUDE (run_id) FROM spend_lines WHERE kind = 'gpu' ORDER BY ALL")


def test_pipeline_writes_gpu_and_idle_lines_and_a_second_run_changes_nothing(gpu_db: Database) -> None:
    run_once(gpu_db, as_of=AFTER)
    lines = rows(gpu_db, "SELECT * FROM spend_lines ORDER BY ALL")
    daily = rows(gpu_db, "SELECT * FROM spend_daily ORDER BY ALL")

    by_type = rows(
        gpu_db,
        "SELECT line_type, count(*) AS n, sum(cost_usd) AS cost FROM spend WHERE kind = 'gpu' GROUP BY 1 ORDER BY 1",
    )
    # every pool has capacity and none is over-allocated, so the total is the capacity's cost, to the digit:
    # H100 16 x 24 h x 3.90, A100 8 x 24 x 1.80 and 4 x 24 x 2.05, L4 8 x 24 x 0.8048 (default), two days each
    assert sum(r["cost"] for r in by_type) == 2 * (
        Decimal("1497.60") + Decimal("345.60") + Decimal("196.80") + Decimal("154.5216")
    )
    assert [(r["line_type"], r["n"]) for r in by_type] == [("gpu", 9), ("idle", 8)]
    assert rows(
        gpu_db,
        "SELECT s.request_id, s.charge_day, s.cost_usd, j.reported_cost_usd FROM spend s JOIN gpu_jobs j "
        "ON j.job_id = s.request_id WHERE s.request_id IN ('slurm-48227', 'slurm-48240') ORDER BY 1, 2",
    ) == [
        {
            "request_id": "slurm-48227",
            "charge_day": DAY1,
            "cost_usd": Decimal("25.26"),
            "reported_cost_usd": Decimal("25.26"),
        },
        {"request_id": "slurm-48240", "charge_day": DAY1, "cost_usd": Decimal("31.20"), "reported_cost_usd": None},
        {"request_id": "slurm-48240", "charge_day": DAY2, "cost_usd": Decimal("19.50"), "reported_cost_usd": None},
    ]

    second = run_once(gpu_db, as_of=AFTER)
    assert second.days_rebuilt == []
    assert rows(gpu_db, "SELECT * FROM spend_lines ORDER BY ALL") == lines
    assert rows(gpu_db, "SELECT * FROM spend_daily ORDER BY ALL") == daily


def test_pipeline_uses_the_overrides_file_and_the_idle_policy(gpu_db: Database) -> None:
    run_once(gpu_db, as_of=AFTER, price_overrides=FIXTURES / "prices.csv", idle_policy="even")

    l4 = rows(
        gpu_db,
        "SELECT line_type, team, feature, cost_usd, price_source FROM spend "
        "WHERE gpu_type = 'L4' AND charge_day = DATE '2025-03-04' ORDER BY line_type",
    )
    assert l4 == [  # the reserved L4 rate of fixtures/prices.csv (0.71), not the list price
        {
            "line_type": "gpu",
            "team": "support-bot",
            "feature": "moderation",
            "cost_usd": Decimal("2.13"),
            "price_source": "prices.csv line 4",
        },
        {
            "line_type": "idle",
            "team": "support-bot",
            "feature": SHARED,
            "cost_usd": Decimal("134.19"),
            "price_source": "prices.csv line 4",
        },
    ]


def test_as_of_moving_forward_ends_where_one_run_ends(gpu_db: Database, settings: Settings, tmp_path: Path) -> None:
    run_once(gpu_db, as_of=at("2025-03-03T12:00"))
    partial = rows(gpu_db, "SELECT sum(gpu_seconds) AS s FROM spend_lines WHERE kind = 'gpu'")[0]["s"]
    run_once(gpu_db, as_of=AFTER)

    with connect(settings, path=tmp_path / "once.duckdb") as once:
        for path in sorted((FIXTURES / "raw" / "gpu").iterdir()):
            ingest_one(once, path, "gpu")
        run_once(once, as_of=AFTER)
        assert spend_lines(gpu_db) == spend_lines(once)
    assert partial == (16 + 8 + 4 + 8) * Decimal(12 * 3600)  # every pool's capacity up to noon, none over-allocated


def test_restated_job_moved_to_another_day_leaves_nothing_on_the_old_day(db: Database, tmp_path: Path) -> None:
    record = '{"job_id":"j","start":"%s","end":"%s","gpu_type":"H100","gpu_count":1,"team":"t","cluster":"c"}\n'
    ingest_one(db, write_file(tmp_path, "a.jsonl", record % ("2025-03-03T10:00:00Z", "2025-03-03T11:00:00Z")), "gpu")
    run_once(db, as_of=AFTER)
    ingest_one(db, write_file(tmp_path, "b.jsonl", record % ("2025-03-04T10:00:00Z", "2025-03-04T12:00:00Z")), "gpu")
    run_once(db, as_of=AFTER)

    assert rows(db, "SELECT charge_day, cost_usd FROM spend WHERE kind = 'gpu'") == [
        {"charge_day": DAY2, "cost_usd": Decimal("7.98")}  # 2 h at the H100 default, 3.99
    ]


def test_gpu_utilisation_view_balances_capacity_allocation_and_idle(gpu_db: Database) -> None:
    run_once(gpu_db, as_of=AFTER)

    pools = rows(gpu_db, "SELECT * FROM gpu_utilisation ORDER BY cluster, gpu_type, charge_day")
    assert len(pools) == 8
    for pool in pools:
        assert (
            pool["capacity_gpu_seconds"]
            == pool["allocated_gpu_seconds"] + pool["idle_gpu_seconds"] - pool["overallocated_gpu_seconds"]
        )
        assert pool["overallocated_gpu_hours"] == round(pool["overallocated_gpu_seconds"] / 3600, 6)
    assert {
        k: pools[2][k]
        for k in (
            "cluster",
            "gpu_type",
            "charge_day",
            "capacity_gpu_hours",
            "allocated_gpu_hours",
            "idle_gpu_hours",
            "utilisation",
            "idle_cost_usd",
        )
    } == {
        "cluster": "gpu-east",
        "gpu_type": "H100",
        "charge_day": DAY1,
        "capacity_gpu_hours": Decimal("384.000000"),
        "allocated_gpu_hours": Decimal("60.000000"),  # 8 x 6.5 h + 2 x 4 h
        "idle_gpu_hours": Decimal("324.000000"),
        "utilisation": 0.15625,
        "idle_cost_usd": Decimal("1263.600000000000"),
    }


def test_default_rates_loaded_idempotently_and_each_documented(db: Database) -> None:
    assert sync_default_rates(db) is True
    assert sync_default_rates(db) is False
    loaded = rows(db, "SELECT gpu_type, hourly_usd FROM gpu_rates WHERE source = 'default' ORDER BY 1")
    defaults = read_default_rates()

    assert len(loaded) == defaults.height == defaults["gpu_type"].n_unique()
    assert {"H100", "H200", "A100-80GB", "A100-40GB", "L40S", "L4", "A10G", "T4", "V100"} <= {
        r["gpu_type"] for r in loaded
    }
    text = (Path(__file__).resolve().parents[2] / "finops" / "data" / "gpu_rates_default.csv").read_text()
    records = [line for line in text.splitlines() if line and not line.startswith("#")][1:]
    assert all("https://" in line for line in records)  # every number names the page it came from
    assert "meant to be overridden" in text
