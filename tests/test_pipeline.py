"""`finops run`: every record priced once and attributed; reruns change nothing; new data only touches its days;
prices change history only through `finops reprice`, which records what it changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from genai_prices import Usage, calc_price

from finops.attribute.owners import read_rules
from finops.attribute.tokens import needed_dimensions, token_spend
from finops.pipeline import day_chunks, price_and_attribute, reprice, run_once
from finops.settings import Settings
from finops.store import spend as store
from finops.store.db import Database, connect
from tests.helpers import ingest_one, rows, write_file
from tests.ingest.test_bad_input import line

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def spend_total(db: Database, where: str = "true") -> Decimal:
    return db.scalar(f"SELECT sum(cost_usd) FROM spend WHERE {where}") or Decimal(0)


def snapshot(db: Database) -> list[dict[str, object]]:
    return rows(db, "SELECT request_id, team, feature, cost_usd, run_id FROM spend ORDER BY request_id")


def test_spend_per_team_equals_the_catalog_price_of_each_record(db: Database, fixtures_dir: Path) -> None:
    source = fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl"
    ingest_one(db, source, "gateway")

    run_once(db, as_of=AS_OF)

    expected: dict[str, Decimal] = {}
    for record in map(json.loads, source.read_text().splitlines()):
        usage = Usage(
            input_tokens=record["input_tokens"],
            cache_read_tokens=record.get("cached_input_tokens", 0),
            cache_write_tokens=record.get("cache_write_tokens", 0),
            output_tokens=record["output_tokens"],
            output_reasoning_tokens=record.get("reasoning_tokens", 0),
        )
        tier = {"batch": {"processing": "batch"}}.get(record.get("service_tier", "default"))
        ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
        price = calc_price(
            usage,
            record["model"],
            provider_id=record.get("provider") or "openai",
            genai_request_timestamp=ts,
            price_context=tier,
        ).total_price
        expected[record["team"]] = expected.get(record["team"], Decimal(0)) + price
    got = {r["team"]: r["cost"] for r in rows(db, "SELECT team, sum(cost_usd) AS cost FROM spend GROUP BY team")}
    assert got == {team: total.quantize(Decimal("1e-12")) for team, total in expected.items()}


def test_second_run_changes_nothing(db: Database, fixtures_dir: Path) -> None:
    ingest_one(db, fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl", "gateway")
    run_once(db, as_of=AS_OF)
    before = snapshot(db)
    daily_before = rows(db, "SELECT * FROM spend_daily ORDER BY ALL")

    summary = run_once(db, as_of=AS_OF)

    assert (summary.priced_records, summary.days_rebuilt) == (0, [])
    assert snapshot(db) == before
    assert rows(db, "SELECT * FROM spend_daily ORDER BY ALL") == daily_before


def test_new_data_reprocesses_only_the_days_it_touches(db: Database, tmp_path: Path, fixtures_dir: Path) -> None:
    ingest_one(db, fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl", "gateway")
    first = run_once(db, as_of=AS_OF)
    old_lines = snapshot(db)

    ingest_one(db, write_file(tmp_path, "late.jsonl", line("late-1", ts="2026-10-20T09:00:00Z") + "\n"), "gateway")
    second = run_once(db, as_of=AS_OF)

    assert second.days_rebuilt == [date(2026, 10, 20)]
    assert second.priced_records == 1
    assert [r for r in snapshot(db) if r["run_id"] == first.run_id] == old_lines


def test_day_chunks_cover_every_day_once_and_never_split_one() -> None:
    d = [date(2026, 10, n) for n in range(1, 6)]
    counts = [(d[0], 3), (d[1], 1), (d[2], 5), (d[3], 1), (d[4], 1)]

    assert day_chunks(counts, 4) == [(d[0], d[2]), (d[2], d[3]), (d[3], date(2026, 10, 6))]
    assert day_chunks(counts, 100) == [(d[0], date(2026, 10, 6))]
    assert day_chunks(counts, 1) == [(day, date(2026, 10, n + 2)) for n, day in enumerate(d)]
    assert day_chunks([], 10) == []


def test_a_run_read_a_day_at_a_time_writes_what_one_read_writes(
    db: Database, settings: Settings, tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl"
    ingest_one(db, source, "gateway")
    whole = run_once(db, as_of=AS_OF)
    reads: list[object] = []
    read = store.read_usage
    monkeypatch.setattr(store, "read_usage", lambda *a, **k: reads.append(k.get("within")) or read(*a, **k))
    with connect(settings.model_copy(update={"db": tmp_path / "chunked.duckdb"})) as other:
        ingest_one(other, source, "gateway")
        chunked = run_once(other, as_of=AS_OF, chunk_records=1)
        lines, daily = "SELECT * EXCLUDE (run_id) FROM spend ORDER BY ALL", "SELECT * FROM spend_daily ORDER BY ALL"

        assert len(reads) == 3  # the file's three UTC days, one read each
        assert (chunked.priced_records, chunked.unpriced_records, chunked.days_rebuilt) == (
            whole.priced_records,
            whole.unpriced_records,
            whole.days_rebuilt,
        )
        assert rows(other, lines) == rows(db, lines)
        assert rows(other, daily) == rows(db, daily)


def test_restated_record_replaces_its_line(db: Database, tmp_path: Path) -> None:
    ingest_one(db, write_file(tmp_path, "a.jsonl", line("x", output_tokens=100) + "\n"), "gateway")
    run_once(db, as_of=AS_OF)
    ingest_one(db, write_file(tmp_path, "b.jsonl", line("x", output_tokens=300) + "\n"), "gateway")

    run_once(db, as_of=AS_OF)

    [only] = rows(db, "SELECT output_tokens, cost_usd FROM spend WHERE request_id = 'x'")
    assert only["output_tokens"] == 300


def test_a_run_that_died_half_way_leaves_no_double_lines(db: Database, tmp_path: Path) -> None:
    ingest_one(db, write_file(tmp_path, "a.jsonl", line("a") + "\n"), "gateway")
    run_once(db, as_of=AS_OF)
    ingest_one(db, write_file(tmp_path, "b.jsonl", line("b") + "\n" + line("c") + "\n"), "gateway")
    # a run that wrote its lines, then died before it finished (its runs row has no finished_at)
    db.execute("INSERT INTO runs (run_id, as_of, started_at) VALUES (nextval('run_id_seq'), $a, now())", {"a": AS_OF})
    dead = db.scalar("SELECT max(run_id) FROM runs")
    usage = store.read_usage(db, store.last_watermark(db), AS_OF)
    store.replace_lines(db, price_and_attribute(db, usage), dead, store.last_watermark(db))

    run_once(db, as_of=AS_OF)
    run_once(db, as_of=AS_OF)

    assert [r["request_id"] for r in snapshot(db)] == ["a", "b", "c"]
    assert db.scalar("SELECT count(*) FROM runs WHERE finished_at IS NULL") == 0


def test_a_run_killed_between_deleting_and_writing_lines_loses_no_line(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hunt G 2: the delete of a re-priced record's old lines and the insert of its new ones were two commits
    ingest_one(db, write_file(tmp_path, "a.jsonl", line("a") + "\n" + line("b") + "\n"), "gateway")
    run_once(db, as_of=AS_OF)
    for _ in range(2):  # an unfinished run (the next one re-prices its records), and that next run
        db.execute(
            "INSERT INTO runs (run_id, as_of, started_at) VALUES (nextval('run_id_seq'), $a, now())", {"a": AS_OF}
        )
    this_run = db.scalar("SELECT max(run_id) FROM runs")
    lines = price_and_attribute(db, store.read_usage(db, store.Watermark(0, None), AS_OF))
    monkeypatch.setattr("finops.store.spend._LINES_FROM", " FROM no_such_table")  # the insert fails (a kill)

    with pytest.raises(duckdb.Error):
        store.replace_lines(db, lines, this_run, store.Watermark(0, None))

    assert [r["request_id"] for r in snapshot(db)] == ["a", "b"]


def test_as_of_replays_history_day_by_day(db: Database, tmp_path: Path) -> None:
    content = "\n".join(line(f"d{d}", ts=f"2026-10-0{d}T12:00:00Z") for d in (1, 2, 3)) + "\n"
    ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")

    run_once(db, as_of=datetime(2026, 10, 2, tzinfo=UTC))
    seen_day_1 = [r["request_id"] for r in snapshot(db)]
    run_once(db, as_of=datetime(2026, 10, 3, tzinfo=UTC))
    seen_day_2 = [r["request_id"] for r in snapshot(db)]
    run_once(db, as_of=datetime(2026, 10, 4, tzinfo=UTC))

    assert (seen_day_1, seen_day_2) == (["d1"], ["d1", "d2"])
    assert [r["request_id"] for r in snapshot(db)] == ["d1", "d2", "d3"]


def test_unknown_model_is_unpriced_never_zero(db: Database, tmp_path: Path) -> None:
    content = line("a", model="gpt-9-imaginary") + "\n" + line("b") + "\n"
    ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")

    summary = run_once(db, as_of=AS_OF)

    assert (summary.priced_records, summary.unpriced_records) == (1, 1)
    assert rows(db, "SELECT cost_usd FROM spend WHERE request_id = 'a'") == [{"cost_usd": None}]
    [unpriced] = rows(db, "SELECT model, records, input_tokens, resolution FROM unpriced_usage")
    assert (unpriced["model"], unpriced["records"], unpriced["input_tokens"]) == ("gpt-9-imaginary", 1, 1000)
    assert "no catalog entry" in unpriced["resolution"]
    assert db.scalar("SELECT sum(unpriced_requests) FROM spend_daily") == 1


def test_ownership_rules_and_the_unattributed_bucket(db: Database, tmp_path: Path) -> None:
    content = (
        "\n".join(
            [
                line("own", team="support", feature="chat", api_key="k-search-1"),
                line("by-key", api_key="k-search-1"),
                line("nobody", api_key="k-other"),
            ]
        )
        + "\n"
    )
    ingest_one(db, write_file(tmp_path, "g.jsonl", content), "gateway")
    owners = write_file(tmp_path, "owners.csv", "kind,match,team,feature\napi_key_pattern,k-search-*,search,rerank\n")

    run_once(db, as_of=AS_OF, owners=owners)

    got = {r["request_id"]: (r["team"], r["feature"]) for r in snapshot(db)}
    assert got == {
        "own": ("support", "chat"),
        "by-key": ("search", "rerank"),
        "nobody": ("__unattributed__", "__unattributed__"),
    }
    assert spend_total(db) == spend_total(db, "team <> ''")  # every dollar has an owner or a bucket


def test_discount_and_private_model_overrides(db: Database, tmp_path: Path) -> None:
    content = (
        line("listed", model="gpt-4o-2024-08-06") + "\n" + line("own", model="llama-internal", provider="selfhosted")
    )
    ingest_one(db, write_file(tmp_path, "g.jsonl", content + "\n"), "gateway")
    prices = write_file(
        tmp_path,
        "prices.csv",
        (
            "kind,provider,model,valid_from,discount_pct,input_mtok,output_mtok\n"
            "discount,openai,gpt-4o*,2026-01-01,12.5,,\n"
            "model,selfhosted,llama-internal,,,0.40,0.80\n"
        ),
    )

    run_once(db, as_of=AS_OF, price_overrides=prices)

    got = {r["request_id"]: r for r in rows(db, "SELECT request_id, list_cost_usd, cost_usd, price_source FROM spend")}
    # 1000 input at $2.50/M + 200 output at $10/M = $0.0045, less 12.5 %
    assert (got["listed"]["list_cost_usd"], got["listed"]["cost_usd"]) == (
        Decimal("0.004500000000"),
        Decimal("0.003937500000"),
    )
    assert "less prices.csv line 2" in got["listed"]["price_source"]
    assert got["own"]["cost_usd"] == Decimal("0.000560000000")  # 1000 x 0.40/M + 200 x 0.80/M
    assert got["own"]["price_source"] == "prices.csv line 3"


def test_a_new_discount_changes_history_only_through_reprice(db: Database, tmp_path: Path) -> None:
    ingest_one(db, write_file(tmp_path, "g.jsonl", line("a", model="gpt-4o-2024-08-06") + "\n"), "gateway")
    run_once(db, as_of=AS_OF)
    prices = write_file(
        tmp_path, "prices.csv", "kind,provider,model,valid_from,discount_pct\ndiscount,openai,*,2026-01-01,50\n"
    )
    ingest_one(db, write_file(tmp_path, "h.jsonl", line("b", model="gpt-4o-2024-08-06") + "\n"), "gateway")
    run_once(db, as_of=AS_OF, price_overrides=prices)

    costs = {r["request_id"]: r["cost_usd"] for r in snapshot(db)}
    assert costs == {"a": Decimal("0.004500000000"), "b": Decimal("0.002250000000")}

    report = reprice(db, date(2026, 10, 1), date(2026, 10, 2), price_overrides=prices)

    assert {r["request_id"]: r["cost_usd"] for r in snapshot(db)} == {
        "a": Decimal("0.002250000000"),
        "b": Decimal("0.002250000000"),
    }
    [diff] = rows(
        db, "SELECT old_cost_usd, new_cost_usd, diff_usd FROM reprices WHERE run_id = $r", {"r": report.run_id}
    )
    assert diff == {
        "old_cost_usd": Decimal("0.006750000000"),
        "new_cost_usd": Decimal("0.004500000000"),
        "diff_usd": Decimal("-0.002250000000"),
    }


def test_a_reprice_read_a_day_at_a_time_is_one_reprice(settings: Settings, tmp_path: Path, fixtures_dir: Path) -> None:
    source = fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl"
    prices = write_file(
        tmp_path, "prices.csv", "kind,provider,model,valid_from,discount_pct\ndiscount,openai,*,2026-01-01,50\n"
    )
    lines = "SELECT * EXCLUDE (run_id) FROM spend ORDER BY ALL"
    changes = "SELECT * EXCLUDE (run_id) FROM reprices ORDER BY ALL"
    results = []
    for name, chunk in (("whole", 10**9), ("by_day", 1)):
        with connect(settings.model_copy(update={"db": tmp_path / f"{name}.duckdb"})) as each:
            ingest_one(each, source, "gateway")
            run_once(each, as_of=AS_OF)
            report = reprice(each, date(2026, 10, 1), date(2026, 10, 4), price_overrides=prices, chunk_records=chunk)
            results.append((report.records, report.diffs.sort("team", "feature", "model"), rows(each, lines)))
            assert rows(each, "SELECT DISTINCT period_start, period_end FROM reprices") == [
                {"period_start": date(2026, 10, 1), "period_end": date(2026, 10, 4)}
            ]
            results[-1] += (rows(each, changes),)

    (records, diffs, spend, recorded), (records_c, diffs_c, spend_c, recorded_c) = results
    assert records == records_c == 48
    assert diffs.equals(diffs_c) and diffs["diff_usd"].sum() < 0
    assert spend == spend_c
    assert recorded == recorded_c


def test_a_reprice_that_fails_part_way_changes_nothing(
    db: Database, tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_one(db, fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl", "gateway")
    run_once(db, as_of=AS_OF)
    before = snapshot(db)
    prices = write_file(
        tmp_path, "prices.csv", "kind,provider,model,valid_from,discount_pct\ndiscount,openai,*,2026-01-01,50\n"
    )
    import finops.pipeline as pipeline

    priced = pipeline.price_and_attribute
    calls: list[int] = []

    def second_chunk_fails(db: Database, usage: store.Usage) -> object:
        calls.append(usage.height)
        if len(calls) == 2:
            raise RuntimeError("the machine went away")
        return priced(db, usage)

    monkeypatch.setattr(pipeline, "price_and_attribute", second_chunk_fails)
    with pytest.raises(RuntimeError):
        reprice(db, date(2026, 10, 1), date(2026, 10, 4), price_overrides=prices, chunk_records=1)

    assert len(calls) == 2
    assert snapshot(db) == before  # the first day's new lines were rolled back with the rest
    assert db.scalar("SELECT count(*) FROM reprices") == 0


def test_totals_do_not_depend_on_the_process_time_zone(tmp_path: Path, fixtures_dir: Path) -> None:
    source = fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl"
    query = "SELECT charge_day, team, sum(cost_usd) AS cost FROM spend_daily GROUP BY ALL ORDER BY ALL"
    outputs = {}
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        env = {**os.environ, "TZ": zone, "FINOPS_DB": str(tmp_path / f"{zone.replace('/', '_')}.duckdb")}
        for args in (
            ["ingest", str(source), "--source", "gateway"],
            ["run", "--as-of", "2026-11-01"],
            ["sql", query, "--format", "csv"],
        ):
            done = subprocess.run([sys.executable, "-m", "finops", *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        outputs[zone] = done.stdout
    assert outputs["UTC"] == outputs["America/Los_Angeles"] == outputs["Asia/Tokyo"]
    assert outputs["UTC"].count("\n") == 1 + 3 * 3  # header + 3 days x 3 teams


def test_the_dictionary_encoded_read_prices_like_the_text_itself(
    db: Database, tmp_path: Path, fixtures_dir: Path
) -> None:
    """`read_usage` hands the job each record's text-tuple number, DuckDB having numbered the tuples; the job
    must decide exactly what it decides from the records' own text columns (rules on keys, projects, tags)."""
    ingest_one(db, fixtures_dir / "raw" / "gateway" / "2026-10-01_03.jsonl", "gateway")
    content = "\n".join(
        [
            line("k", api_key="k-search-1", model="gpt-4o-mini"),
            line("p", project="proj-x", service_tier="batch"),
            line("t", tags={"app": "ui"}, model="claude-sonnet-4-5", provider="anthropic"),
            line("n", model="not-a-model"),
        ]
    )
    ingest_one(db, write_file(tmp_path, "g.jsonl", content + "\n"), "gateway")
    owners = write_file(
        tmp_path,
        "owners.csv",
        "kind,match,team,feature\napi_key_pattern,k-search-*,search,rerank\nproject,proj-x,px,\ntag,app=ui,,ui\n",
    )
    store.sync_rules(db, read_rules(owners))
    rules = store.read_rules(db)
    assert {"api_key", "project", "tags"} <= set(needed_dimensions(rules))

    encoded = price_and_attribute(
        db, store.read_usage(db, store.Watermark(0, None), AS_OF, text=needed_dimensions(rules))
    )
    text = store.frame(
        db,
        """SELECT CAST(key_hash >> 64 AS UBIGINT) AS key_hi, CAST(key_hash & 18446744073709551615 AS UBIGINT) AS key_lo,
                  ts, charge_day, provider, model, service_tier, extra->>'context_window' AS context_window, team,
                  feature, project, api_key, CAST(tags AS VARCHAR) AS tags, input_tokens, cached_input_tokens,
                  cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, requests,
                  ts_end IS NOT NULL AS is_bucket
           FROM usage_events""",
    )
    direct = token_spend(
        text.lazy(),
        store.resolutions_for(db, text).lazy(),
        store.read_prices(db).lazy(),
        store.read_discounts(db).lazy(),
        rules.lazy(),
    ).collect()
    assert encoded.height == direct.height == text.height
    assert encoded.sort("key_hi", "key_lo").equals(direct.sort("key_hi", "key_lo"))
    assert set(encoded["team"].cast(str)) >= {"search", "px"} and "ui" in set(encoded["feature"].cast(str))


# ------------------------------------------------------------------ a reprice of GPU days (QA hunt A, bug 2)

GPU_JOB = (
    '{"job_id":"j-old","start":"2026-10-01T00:00:00Z","end":"2026-10-01T01:00:00Z","gpu_type":"L4","gpu_count":1,'
    '"team":"search","feature":"embed","cluster":"west"}\n'
)
GPU_CAPACITY = "cluster,gpu_type,gpu_count,start,end\nwest,L4,2,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z\n"
NEW_RATES = (
    "kind,provider,model,valid_from,discount_pct,gpu_type,hourly_usd\n"
    "discount,openai,*,2026-01-01,50,,\n"
    "gpu,,,2026-01-01,,L4,0.50\n"
)


def tokens_and_gpu(db: Database, tmp_path: Path) -> Path:
    """A token record, an L4 job and two L4s of capacity on 1 October 2026, priced; the overrides of a reprice."""
    ingest_one(db, write_file(tmp_path, "g.jsonl", line("a", team="search", feature="chat") + "\n"), "gateway")
    ingest_one(db, write_file(tmp_path, "jobs.jsonl", GPU_JOB), "gpu")
    ingest_one(db, write_file(tmp_path, "cap.csv", GPU_CAPACITY), "gpu")
    run_once(db, as_of=AS_OF)
    return write_file(tmp_path, "prices.csv", NEW_RATES)


def test_a_reprice_records_the_difference_of_gpu_and_idle_lines_too(db: Database, tmp_path: Path) -> None:
    prices = tokens_and_gpu(db, tmp_path)

    report = reprice(db, date(2026, 10, 1), date(2026, 10, 2), price_overrides=prices)

    expected = [  # 47 idle GPU-hours and one job hour at the L4 list price (0.8048), then at 0.50
        ("__idle__", "__idle__", "L4", Decimal("37.8256"), Decimal("23.5"), Decimal("-14.3256")),
        ("search", "embed", "L4", Decimal("0.8048"), Decimal("0.5"), Decimal("-0.3048")),
        ("search", "chat", "gpt-4o-2024-08-06", Decimal("0.0045"), Decimal("0.00225"), Decimal("-0.00225")),
    ]
    assert [tuple(r.values()) for r in report.diffs.iter_rows(named=True)] == expected
    recorded = rows(db, "SELECT * EXCLUDE (run_id, period_start, period_end) FROM reprices ORDER BY abs(diff_usd) DESC")
    assert [tuple(r.values()) for r in recorded] == expected
    assert (report.records, report.total_diff) == (2, Decimal("-14.63265"))
    assert report.total_diff == sum(r[5] for r in expected)
    assert rows(db, "SELECT hourly_usd, price_source, run_id FROM gpu_pool_rates") == [
        {"hourly_usd": Decimal("0.5"), "price_source": "prices.csv line 3", "run_id": report.run_id}
    ]


def test_a_reprice_that_fails_after_its_gpu_step_changes_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tokens_and_gpu(db, tmp_path)
    lines = "SELECT * FROM spend_lines ORDER BY ALL"
    before = (
        rows(db, lines),
        rows(db, "SELECT * FROM gpu_pool_rates"),
        rows(db, "SELECT * FROM spend_daily ORDER BY ALL"),
    )
    import finops.pipeline as pipeline

    def bills_fail(db: Database, days: list[date], run_id: int) -> None:
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(pipeline.bill_spend, "rebuild_bill_lines", bills_fail)
    with pytest.raises(RuntimeError):
        reprice(db, date(2026, 10, 1), date(2026, 10, 2), price_overrides=prices)

    after = (
        rows(db, lines),
        rows(db, "SELECT * FROM gpu_pool_rates"),
        rows(db, "SELECT * FROM spend_daily ORDER BY ALL"),
    )
    assert after == before
    assert db.scalar("SELECT count(*) FROM reprices") == 0


def test_a_reprice_keeps_a_group_that_names_no_model_as_one_row(db: Database, tmp_path: Path) -> None:
    # hunt H 3: a bill line with no model (OpenAI's own Costs example) came out as an 'old' and a 'new' row
    page = {
        "object": "page",
        "has_more": False,
        "next_page": None,
        "data": [
            {
                "object": "bucket",
                "start_time": 1790812800,  # 2026-10-01
                "end_time": 1790899200,
                "results": [
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": 1.25, "currency": "usd"},
                        "line_item": None,
                        "project_id": None,
                    }
                ],
            }
        ],
    }
    ingest_one(db, write_file(tmp_path, "costs.json", json.dumps(page)), "openai-costs")
    run_once(db, as_of=AS_OF)

    report = reprice(db, date(2026, 10, 1), date(2026, 10, 2))

    assert [tuple(r.values()) for r in report.diffs.iter_rows(named=True)] == [
        ("__unobserved__", "__unobserved__", None, Decimal("1.25"), Decimal("1.25"), Decimal("0"))
    ]
