"""GPU spend through `finops run`: what a job is charged, exact at the ingest bounds, the rate a pool keeps,
and GPU usage without a rate counted as unpriced (QA hunt A, bugs 1, 5, 6 and 8)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest

from finops.errors import InputError
from finops.pipeline import run_once
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_gpu import jsonl

AS_OF = datetime(2026, 3, 20, tzinfo=UTC)
PRICES_HEADER = (
    "kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,"
    "output_mtok,gpu_type,cluster,hourly_usd,note\n"
)


def job(**fields: Any) -> dict[str, Any]:
    """One H100 on cluster k from 01:00 to 02:00 UTC on 10 March 2026, for team a; `fields` override."""
    record: dict[str, Any] = {
        "job_id": "j-1",
        "start": "2026-03-10T01:00:00Z",
        "end": "2026-03-10T02:00:00Z",
        "gpu_type": "H100",
        "gpu_count": 1,
        "team": "a",
        "feature": "f",
        "cluster": "k",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def ingest(db: Database, tmp_path: Path, name: str, records: list[dict[str, Any]]) -> None:
    ingest_one(db, write_file(tmp_path, name, jsonl(records)), "gpu")


def exact(value: Decimal, places: int = 9, rounding: str = ROUND_HALF_UP) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return value.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def charged(db: Database) -> dict[str, Decimal]:
    """GPU-seconds charged per job, over all its days."""
    got = rows(db, "SELECT request_id, sum(gpu_seconds) AS s FROM spend WHERE line_type = 'gpu' GROUP BY 1")
    return {r["request_id"]: r["s"] for r in got}


# ---------------------------------------------------------------------------- what a job is charged (8)


def test_a_job_given_end_and_gpu_seconds_is_charged_its_stored_gpu_seconds(db: Database, tmp_path: Path) -> None:
    ingest(db, tmp_path, "jobs.jsonl", [job(job_id="both", end="2026-03-10T02:00:00.5Z", gpu_seconds=3600)])

    run_once(db, as_of=AS_OF)

    assert rows(db, "SELECT request_id, gpu_seconds, cost_usd FROM spend") == [
        {"request_id": "both", "gpu_seconds": Decimal("3600.000000000"), "cost_usd": Decimal("3.990000000000")}
    ]
    assert charged(db) == {r["request_id"]: r["gpu_seconds"] for r in rows(db, "SELECT * FROM usage")}


def test_a_job_across_midnight_splits_its_stored_gpu_seconds_by_wall_time(db: Database, tmp_path: Path) -> None:
    # 2 h 0.5 s of wall time, 7,200 GPU-seconds as the record says; 3,600 s of the wall time on the first day
    both = job(job_id="both", start="2026-03-10T23:00:00Z", end="2026-03-11T01:00:00.5Z", gpu_seconds=7200)
    # only gpu_seconds, on a seventh of a GPU: the end is derived to the microsecond, the GPU time is as given
    seventh = job(job_id="seventh", start="2026-03-10T23:59:00Z", end=None, gpu_seconds="100", gpu_count="0.142857")
    ingest(db, tmp_path, "jobs.jsonl", [both, seventh])

    run_once(db, as_of=AS_OF)

    first_day = exact(Decimal(7200) * Decimal(3600) / Decimal("7200.5"))
    assert rows(db, "SELECT charge_day, gpu_seconds FROM spend WHERE request_id = 'both' ORDER BY charge_day") == [
        {"charge_day": datetime(2026, 3, 10).date(), "gpu_seconds": first_day},
        {"charge_day": datetime(2026, 3, 11).date(), "gpu_seconds": Decimal(7200) - first_day},
    ]
    assert charged(db) == {"both": Decimal("7200.000000000"), "seventh": Decimal("100.000000000")}
    assert charged(db) == {r["request_id"]: r["gpu_seconds"] for r in rows(db, "SELECT * FROM usage")}


def test_a_days_share_of_a_job_does_not_change_when_as_of_moves_on(db: Database, tmp_path: Path) -> None:
    three_days = job(start="2026-03-10T12:00:00.000001Z", end="2026-03-13T00:00:00.3Z", gpu_count="0.333333333")
    ingest(db, tmp_path, "jobs.jsonl", [three_days])

    run_once(db, as_of=datetime(2026, 3, 11, 18, tzinfo=UTC))
    first = rows(db, "SELECT charge_day, gpu_seconds, cost_usd FROM spend WHERE charge_day = DATE '2026-03-10'")
    run_once(db, as_of=AS_OF)

    assert rows(db, "SELECT charge_day, gpu_seconds, cost_usd FROM spend WHERE charge_day = DATE '2026-03-10'") == first
    assert charged(db) == {"j-1": rows(db, "SELECT gpu_seconds FROM usage")[0]["gpu_seconds"]}


# ------------------------------------------------------------------- exact at the ingest bounds (5)


def test_a_pool_at_the_ingest_bounds_is_priced_exactly(db: Database, tmp_path: Path) -> None:
    # 1e13 GPUs of capacity for a day at the largest rate a record may carry, two jobs of 1e13 and 5e12
    # GPU-seconds, the idle shared by GPU-seconds: every product of the pricing is far beyond Int128
    rate = Decimal("999999.999999999999")
    capacity = (
        "cluster,gpu_type,gpu_count,start,end,hourly_rate\n"
        f"k,H100,10000000000000,2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,{rate}\n"
    )
    ingest_one(db, write_file(tmp_path, "cap.csv", capacity), "gpu")
    big = job(job_id="big", end=None, gpu_seconds=10**13, gpu_count=10**9, team="a")
    half = job(job_id="half", end=None, gpu_seconds=5 * 10**12, gpu_count=10**9, team="b")
    ingest(db, tmp_path, "jobs.jsonl", [big, half])

    run_once(db, as_of=AS_OF, idle_policy="proportional")

    lines = rows(db, "SELECT line_type, team, gpu_seconds, cost_usd FROM spend ORDER BY line_type, team")
    hours = Decimal(10**13 * 24)
    total = exact(hours * rate, 12, ROUND_HALF_EVEN)
    assert sum(r["cost_usd"] for r in lines) == total
    assert sum(r["gpu_seconds"] for r in lines) == Decimal(10**13 * 86400)
    costs = {(r["line_type"], r["team"]): r["cost_usd"] for r in lines}
    idle_cost = total - costs[("gpu", "a")] - costs[("gpu", "b")]
    with localcontext() as ctx:
        ctx.prec = 80
        for team, seconds in (("a", Decimal(10**13)), ("b", Decimal(5 * 10**12))):
            assert abs(costs[("gpu", team)] - seconds * rate / 3600) <= Decimal("1e-12")
            assert abs(costs[("idle", team)] - idle_cost * seconds / Decimal(15 * 10**12)) <= Decimal("1e-12")


def test_a_record_stored_beyond_the_bounds_stops_the_run_with_a_sentence(db: Database, tmp_path: Path) -> None:
    # a database written before ingest bounded gpu_count holds such a record: name it, do not overflow on it
    capacity = "cluster,gpu_type,gpu_count,start,end\nk,H100,8,2026-03-11T00:00:00Z,2026-03-12T00:00:00Z\n"
    ingest_one(db, write_file(tmp_path, "cap.csv", capacity), "gpu")
    db.execute("UPDATE gpu_capacity SET gpu_count = CAST('1e20' AS DECIMAL(38,9))")

    with pytest.raises(
        InputError,
        match=(
            r"gpu_capacity record 'k/H100/2026-03-11T00:00:00Z' \(source gpu\) has gpu_count 100000000000000000000, "
            r"beyond the 1e13 a record may carry \(ingest rejects it now\); ingest the corrected record under the same "
            r"key, which replaces it, then run again."
        ),
    ):
        run_once(db, as_of=AS_OF)


# ----------------------------------------------------------------------- the rate a pool keeps (1)

L4_DAY = "2025-03-03"
AFTER_L4_DAY = datetime(2025, 3, 10, tzinfo=UTC)


def l4(job_id: str, team: str, start: str, end: str, cluster: str = "west") -> dict[str, Any]:
    return job(
        job_id=job_id, start=f"{L4_DAY}T{start}Z", end=f"{L4_DAY}T{end}Z", gpu_type="L4", team=team, cluster=cluster
    )


def reserved_l4(tmp_path: Path, rate: str = "0.50") -> Path:
    return write_file(tmp_path, "prices.csv", PRICES_HEADER + f"gpu,,,2025-01-01,,,,,,,L4,,{rate},new reserved rate\n")


def costs(db: Database) -> dict[tuple[str, str], tuple[Decimal, str]]:
    got = rows(db, "SELECT line_type, coalesce(request_id, team) AS who, cost_usd, price_source FROM spend")
    return {(r["line_type"], r["who"]): (r["cost_usd"], r["price_source"]) for r in got}


DEFAULT_L4 = "default list price (gpu_rates_default.csv)"


def test_a_late_job_does_not_reprice_the_pool_day_it_lands_on(db: Database, tmp_path: Path) -> None:
    ingest(db, tmp_path, "jobs.jsonl", [l4("j-old", "search", "00:00:00", "10:00:00")])
    first = run_once(db, as_of=AFTER_L4_DAY)
    prices = reserved_l4(tmp_path)
    run_once(db, as_of=AFTER_L4_DAY, price_overrides=prices)
    # one late job in the priced pool, one in a pool the day did not have yet
    ingest(
        db,
        tmp_path,
        "late.jsonl",
        [l4("j-late", "late", "12:00:00", "13:00:00"), l4("j-east", "east", "12:00:00", "13:00:00", cluster="east")],
    )

    late = run_once(db, as_of=AFTER_L4_DAY, price_overrides=prices)

    assert costs(db) == {
        ("gpu", "j-old"): (Decimal("8.048000000000"), DEFAULT_L4),  # 10 h x 0.8048, as first priced
        ("gpu", "j-late"): (Decimal("0.804800000000"), DEFAULT_L4),  # the pool's rate, not the new one
        ("gpu", "j-east"): (Decimal("0.500000000000"), "prices.csv line 2"),  # a new pool: the rate in force
    }
    assert (first.priced_records, first.unpriced_records) == (1, 0)
    assert (late.priced_records, late.unpriced_records) == (2, 0)
    assert db.scalar("SELECT count(*) FROM reprices") == 0
    assert rows(db, "SELECT cluster, hourly_usd, price_source FROM gpu_pool_rates ORDER BY cluster") == [
        {"cluster": "east", "hourly_usd": Decimal("0.500000000000"), "price_source": "prices.csv line 2"},
        {"cluster": "west", "hourly_usd": Decimal("0.804800000000"), "price_source": DEFAULT_L4},
    ]


def test_a_late_job_leaves_the_idle_of_a_pool_at_its_first_rate(db: Database, tmp_path: Path) -> None:
    capacity = f"cluster,gpu_type,gpu_count,start,end\nwest,L4,8,{L4_DAY}T00:00:00Z,2025-03-04T00:00:00Z\n"
    ingest_one(db, write_file(tmp_path, "cap.csv", capacity), "gpu")
    ingest(db, tmp_path, "jobs.jsonl", [l4("j-old", "search", "00:00:00", "10:00:00")])
    run_once(db, as_of=AFTER_L4_DAY)
    ingest(db, tmp_path, "late.jsonl", [l4("j-late", "late", "12:00:00", "13:00:00")])

    run_once(db, as_of=AFTER_L4_DAY, price_overrides=reserved_l4(tmp_path))

    assert costs(db) == {
        ("gpu", "j-old"): (Decimal("8.048000000000"), DEFAULT_L4),
        ("gpu", "j-late"): (Decimal("0.804800000000"), DEFAULT_L4),
        ("idle", "__idle__"): (Decimal("145.668800000000"), DEFAULT_L4),  # (192 - 11) GPU-hours x 0.8048
    }


def test_a_capacity_records_own_rate_still_wins_over_the_recorded_one(db: Database, tmp_path: Path) -> None:
    ingest(db, tmp_path, "jobs.jsonl", [l4("j-old", "search", "00:00:00", "10:00:00")])
    run_once(db, as_of=AFTER_L4_DAY)
    capacity = (
        f"cluster,gpu_type,gpu_count,start,end,hourly_rate\nwest,L4,1,{L4_DAY}T00:00:00Z,2025-03-04T00:00:00Z,0.60\n"
    )
    ingest_one(db, write_file(tmp_path, "cap.csv", capacity), "gpu")

    run_once(db, as_of=AFTER_L4_DAY)

    assert costs(db)[("gpu", "j-old")] == (Decimal("6.000000000000"), f"capacity west/L4/{L4_DAY}T00:00:00Z")


def test_pools_priced_before_rates_were_recorded_get_the_rate_their_lines_name(db: Database, tmp_path: Path) -> None:
    ingest(
        db, tmp_path, "jobs.jsonl", [l4("j-old", "search", "00:00:00", "10:00:00"), job(job_id="mi", gpu_type="MI300X")]
    )
    run_once(db, as_of=AS_OF, price_overrides=reserved_l4(tmp_path, "0.4"))
    recorded = "SELECT * EXCLUDE (recorded_at) FROM gpu_pool_rates ORDER BY ALL"
    before = rows(db, recorded)
    db.execute("DELETE FROM gpu_pool_rates")

    migration = Path(__file__).resolve().parents[2] / "queries" / "schema" / "0011_gpu_pool_rates.sql"
    db.execute(migration.read_text())

    assert rows(db, recorded) == before
    assert [(r["gpu_type"], r["hourly_usd"]) for r in before] == [("L4", Decimal("0.4")), ("MI300X", None)]


# ---------------------------------------------------------------- GPU usage without a rate (6)


def test_a_gpu_job_without_a_rate_is_counted_as_unpriced_everywhere(db: Database, tmp_path: Path) -> None:
    # 8 MI300X (no default list price) from 23:00 to 01:00: one job, two UTC days
    ingest(
        db,
        tmp_path,
        "jobs.jsonl",
        [
            job(
                start="2026-03-10T23:00:00Z",
                end="2026-03-11T01:00:00Z",
                gpu_type="MI300X",
                gpu_count=8,
                feature="train",
            )
        ],
    )

    summary = run_once(db, as_of=AS_OF)

    assert (summary.priced_records, summary.unpriced_records) == (0, 1)
    assert rows(db, "SELECT charge_day, model, cost_usd, unpriced_requests FROM spend_daily ORDER BY 1") == [
        {"charge_day": datetime(2026, 3, 10).date(), "model": "MI300X", "cost_usd": None, "unpriced_requests": 1},
        {"charge_day": datetime(2026, 3, 11).date(), "model": "MI300X", "cost_usd": None, "unpriced_requests": 1},
    ]
    [unpriced] = rows(db, "SELECT * EXCLUDE (resolution) FROM unpriced_usage")
    assert unpriced == {
        "provider": "k",
        "model": "MI300X",
        "team": "a",
        "records": 1,
        "requests": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "first_day": datetime(2026, 3, 10).date(),
        "last_day": datetime(2026, 3, 11).date(),
        "kind": "gpu",
        "gpu_seconds": Decimal("57600.000000000"),
    }
    assert "no rate per GPU-hour" in rows(db, "SELECT resolution FROM unpriced_usage")[0]["resolution"]
