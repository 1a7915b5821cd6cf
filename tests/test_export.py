"""`finops export`: CSV / Parquet / FOCUS files and a day-partitioned lake whose totals are the SQL totals to the
last digit; re-exporting a range replaces its partitions; FOCUS rows pass the FOCUS validator's rules."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.cli import main
from finops.export import DECLARED_APPLICABILITY, FOCUS_EXPORT_COLUMNS, LAKE_MANIFEST, X_COLUMNS, parse_request
from finops.export.conformance import check_conformance, load_model
from finops.settings import load_settings
from finops.store.db import connect
from tests.conftest import REPO
from tests.helpers import write_file
from tests.ingest.test_bad_input import line

FIXTURES = REPO / "fixtures" / "raw"
VALIDATOR_MODEL = Path("focus") / "focus_validator_model-1.2.json.gz"
# usage the catalog cannot price, usage nobody owns, and one token (a cost far below a float's comfort)
EXTRA = [
    line("x-unpriced-1", ts="2026-10-02T08:00:00Z", model="mystery-model-9", provider="mysteryai",
         input_tokens=5000, output_tokens=700, team="search", feature="answer"),
    line("x-unpriced-2", ts="2026-10-02T09:00:00Z", model="mystery-model-9", provider="mysteryai",
         input_tokens=100, output_tokens=10, team="search", feature="answer"),
    line("x-noteam", ts="2026-10-03T11:00:00Z", model="gpt-4o-mini", input_tokens=1234, output_tokens=56),
    line("x-one-token", ts="2026-10-03T12:00:00Z", model="gpt-4o-mini", input_tokens=1, output_tokens=0,
         team="support", feature="summarise"),
]  # fmt: skip
INPUTS = [
    (FIXTURES / "gateway" / "2026-10-01_03.jsonl", "gateway"),
    (FIXTURES / "gpu", "gpu"),
    (FIXTURES / "openai" / "usage_completions_2025-01.jsonl", "openai-usage"),
    (FIXTURES / "openai" / "costs_2025-01.jsonl", "openai-costs"),
    (FIXTURES / "openai" / "costs_2025-01-02_line_items.json", "openai-costs"),
]


def cli(*argv: str) -> None:
    try:
        main(list(argv))
    except SystemExit as exc:
        assert not exc.code, f"finops {' '.join(argv)} exited {exc.code}"


@pytest.fixture(scope="module")
def built_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database built as a user would: `finops ingest` of the fixtures, then `finops run`."""
    root = tmp_path_factory.mktemp("export-db")
    db = root / "spend.duckdb"
    extra = write_file(root, "extra.jsonl", "\n".join(EXTRA) + "\n")
    for path, source in [*INPUTS, (extra, "gateway")]:
        cli("--db", str(db), "ingest", str(path), "--source", source)
    owners, prices = REPO / "fixtures" / "owners.csv", REPO / "fixtures" / "prices.csv"
    cli("--db", str(db), "run", "--as-of", "2026-11-01", "--owners", str(owners), "--prices", str(prices))
    return db


@pytest.fixture
def db_path(built_db: Path, tmp_path: Path) -> str:
    """A private copy: a test may add data to it."""
    copy = tmp_path / "spend.duckdb"
    shutil.copy(built_db, copy)
    return str(copy)


def sql(db_path: str, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with connect(load_settings(db=Path(db_path)), read_only=True) as db:
        return db.execute(query, params or {})


def where(start: str | None, end: str | None, teams: list[str]) -> tuple[str, dict[str, Any]]:
    clauses, params = ["true"], dict[str, Any]()
    if start:
        clauses.append("charge_day >= $start")
        params["start"] = date.fromisoformat(start)
    if end:
        clauses.append("charge_day < $end")
        params["end"] = date.fromisoformat(end)
    if teams:
        clauses.append("list_contains($teams, team)")
        params["teams"] = teams
    return " AND ".join(clauses), params


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def csv_sum(rows: list[dict[str, str]], column: str) -> Decimal:
    return sum((Decimal(r[column]) for r in rows if r[column] != ""), Decimal(0))


def parquet(path: Path, query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)"
                if path.is_dir() else f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")  # fmt: skip
    return con.execute(query).fetchall()


FILTERS = [
    pytest.param(None, None, [], id="everything"),
    pytest.param("2025-03-03", "2026-10-03", ["search", "support"], id="range-and-teams"),
]


# --- totals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "teams"), FILTERS)
@pytest.mark.parametrize(
    ("fmt", "grain", "name"),
    [("csv", "line", "x.csv"), ("csv", "daily", "x.csv.gz"), ("parquet", "line", "x.parquet"),
     ("parquet", "daily", "x.parquet"), ("focus", None, "x.csv"), ("focus", None, "x.parquet")],
)  # fmt: skip
def test_each_export_totals_the_spend_of_its_filter_to_the_last_digit(
    db_path: str, tmp_path: Path, fmt: str, grain: str | None, name: str, start: str | None, end: str | None,
    teams: list[str],
) -> None:  # fmt: skip
    out = tmp_path / name
    argv = ["--db", db_path, "export", "--format", fmt, "--out", str(out)]
    argv += [*(["--grain", grain] if grain else []), *(["--start", start] if start else [])]
    argv += [*(["--end", end] if end else []), *[a for t in teams for a in ("--team", t)]]

    cli(*argv)

    clause, params = where(start, end, teams)
    [(expected,)] = sql(db_path, f"SELECT sum(cost_usd) FROM spend WHERE {clause}", params)
    relation = {"line": "spend", "daily": "spend_daily"}.get(grain or "", "spend")
    [(lines,)] = sql(db_path, f"SELECT count(*) FROM {relation} WHERE {clause}", params)
    column = "BilledCost" if fmt == "focus" else "cost_usd"
    if name.endswith((".csv", ".csv.gz")):
        rows = read_csv(out)
        total, count = csv_sum(rows, column), len(rows)
    else:
        query = f"SELECT sum({column}), count(*), any_value(typeof({column})) FROM t"
        [(total, count, money_type)] = parquet(out, query)
        assert money_type == "DECIMAL(38,12)"
    assert expected > 0 and total == expected
    if fmt != "focus":
        assert count == lines


def test_money_in_csv_is_the_exact_decimal_text(db_path: str, tmp_path: Path) -> None:
    cli("--db", db_path, "export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--team", "support")

    rows = {r["request_id"]: r for r in read_csv(tmp_path / "x.csv")}

    [(cost,)] = sql(db_path, "SELECT cost_usd FROM spend WHERE request_id = 'x-one-token'")
    assert rows["x-one-token"]["cost_usd"] == format(cost, "f") == "0.000000150000"  # 1 token at $0.15/M
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rows["x-one-token"]["ts"])


def test_unpriced_usage_stays_visible_null_in_csv_and_flagged_in_focus(db_path: str, tmp_path: Path) -> None:
    cli("--db", db_path, "export", "--format", "csv", "--out", str(tmp_path / "x.csv"))
    cli("--db", db_path, "export", "--format", "focus", "--out", str(tmp_path / "f.csv"))

    lines = [r for r in read_csv(tmp_path / "x.csv") if r["model"] == "mystery-model-9"]
    [focus] = [r for r in read_csv(tmp_path / "f.csv") if r["SkuId"] == "mystery-model-9"]

    assert [r["cost_usd"] for r in lines] == ["", ""]  # NULL, never 0
    assert (focus["x_PriceStatus"], focus["ChargeCategory"]) == ("Unpriced", "Usage")
    assert {focus[c] for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")} == {"0.000000000000"}
    assert "no known price" in focus["ChargeDescription"]
    assert (Decimal(focus["ConsumedQuantity"]), focus["ConsumedUnit"]) == (Decimal(5810), "Tokens")
    assert json.loads(focus["Tags"]) == {"team": "search", "feature": "answer"}


def test_focus_costs_list_bill_and_buckets(db_path: str, tmp_path: Path) -> None:
    cli("--db", db_path, "export", "--format", "focus", "--out", str(tmp_path / "f.csv"))
    rows = read_csv(tmp_path / "f.csv")

    [(listed,)] = sql(db_path, "SELECT sum(list_cost_usd) FROM spend")
    adjustments = [r for r in rows if r["ChargeCategory"] == "Adjustment"]
    # the catalog price of usage; a row of bill lines only (no list price) lists its billed amount
    assert csv_sum(rows, "ListCost") == listed + csv_sum(adjustments, "BilledCost")
    sonnet = [r for r in rows if r["SkuId"] == "claude-sonnet-4-5"]
    assert sonnet and all(Decimal(r["BilledCost"]) < Decimal(r["ListCost"]) for r in sonnet)  # 10 % discount
    unobserved = [r for r in rows if json.loads(r["Tags"])["team"] == "__unobserved__"]
    assert unobserved and {(r["ChargeCategory"], r["ConsumedQuantity"]) for r in unobserved} == {("Adjustment", "")}
    trued = [r for r in rows if r["x_LineTypes"] == "bill_adjustment,usage"]
    assert trued and all(r["ContractedCost"] != r["BilledCost"] for r in trued)
    idle = [r for r in rows if json.loads(r["Tags"])["team"] == "__idle__"]
    assert idle and {r["ConsumedUnit"] for r in idle} == {"GPU-Hours"}
    assert {json.loads(r["Tags"])["team"] for r in rows} >= {"__unattributed__", "__idle__", "__unobserved__"}


# --- the lake -------------------------------------------------------------------------------------------


def lake_files(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))}


def test_lake_reexport_replaces_the_partitions_of_its_range_and_only_those(db_path: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    export = ["--db", db_path, "export", "--format", "parquet", "--partition-by-day", "--out", str(lake)]
    cli(*export)
    first = lake_files(lake)
    cli(*export)  # the same export again: the same files, nothing duplicated
    assert lake_files(lake) == first
    # new usage on 2026-10-02, then a re-export of that day only
    late = write_file(tmp_path, "late.jsonl", line("late-1", ts="2026-10-02T23:00:00Z", team="search") + "\n")
    cli("--db", db_path, "ingest", str(late), "--source", "gateway")
    cli("--db", db_path, "run", "--as-of", "2026-11-01")
    # a stale partition in the range (a day that has no spend any more) is removed, not kept
    stale = lake / "charge_day=2026-10-04"
    shutil.copytree(lake / "charge_day=2026-10-03", stale)

    cli(*export, "--start", "2026-10-02", "--end", "2026-10-05")

    after = lake_files(lake)
    changed = {k for k in after if after[k] != first.get(k)}
    assert changed == {"charge_day=2026-10-02/data_0.parquet"}
    assert not stale.exists()
    [(expected_rows, expected_total)] = sql(db_path, "SELECT count(*), sum(cost_usd) FROM spend")
    [(rows, total, days)] = parquet(lake, "SELECT count(*), sum(cost_usd), count(DISTINCT charge_day) FROM t")
    assert (rows, total) == (expected_rows, expected_total)
    assert days == len([p for p in lake.iterdir() if p.name.startswith("charge_day=")])
    assert json.loads((lake / LAKE_MANIFEST).read_text())["grain"] == "line"
    assert not [p.name for p in lake.iterdir() if p.name.startswith(".")]  # no staging or trash left


def test_lake_refuses_another_grain_and_a_foreign_directory(
    capsys: pytest.CaptureFixture[str], db_path: str, tmp_path: Path
) -> None:
    lake, foreign = tmp_path / "lake", tmp_path / "mine"
    write_file(foreign, "notes.txt", "my own files")
    cli("--db", db_path, "export", "--format", "parquet", "--partition-by-day", "--out", str(lake))
    capsys.readouterr()

    code, err = run_failing(capsys, "--db", db_path, "export", "--format", "parquet", "--partition-by-day",
                            "--grain", "daily", "--out", str(lake))  # fmt: skip
    code2, err2 = run_failing(capsys, "--db", db_path, "export", "--format", "parquet", "--partition-by-day",
                              "--out", str(foreign))  # fmt: skip

    assert (code, code2) == (1, 1)
    assert f"--out {lake} holds a lake of --grain line, and this export is --grain daily" in err
    assert f"--out {foreign} is a directory that is not a finops lake" in err2
    assert (foreign / "notes.txt").read_text() == "my own files"


# --- FOCUS conformance ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def focus_exports(built_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("focus")
    for name in ("focus.csv", "focus.parquet"):
        cli("--db", str(built_db), "export", "--format", "focus", "--out", str(root / name))
    return {"csv": root / "focus.csv", "parquet": root / "focus.parquet"}


def load_focus(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if path.suffix == ".csv":  # a CSV has no types: read it as text, as the FOCUS rules see it
        con.execute(f"CREATE TABLE focus AS SELECT * FROM read_csv('{path}', header = true, all_varchar = true)")
    else:
        con.execute(f"CREATE TABLE focus AS SELECT * FROM read_parquet('{path}')")
    return con


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_focus_columns_are_the_focus_ones_then_the_x_ones(focus_exports: dict[str, Path], kind: str) -> None:
    con = load_focus(focus_exports[kind])

    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE focus)").fetchall())

    assert list(types) == [*FOCUS_EXPORT_COLUMNS, *X_COLUMNS]
    if kind == "parquet":  # money stays an exact decimal, never a float
        money = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCurrencyEffectiveCost")
        assert {types[c] for c in money} == {"DECIMAL(38,12)"}


@pytest.fixture
def validator_model(shared_data: Path) -> dict[str, Any]:
    """The FOCUS validator's rule model (shared/data/focus, see SOURCES.md); skipped, saying why, without it."""
    path = shared_data / VALIDATOR_MODEL
    if not path.is_file():
        pytest.skip(f"the FOCUS validator rule model is not at {path} (see shared/data/SOURCES.md, focus/)")
    return load_model(path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_focus_export_passes_the_validator_rules(
    validator_model: dict[str, Any], focus_exports: dict[str, Path], kind: str
) -> None:
    model = validator_model

    report = check_conformance(
        load_focus(focus_exports[kind]), "focus", model, applicability=DECLARED_APPLICABILITY, text_values=kind == "csv"
    )

    assert (report.errors, report.warnings) == ([], []), report.summary()
    assert report.count("pass") > 100


def test_conformance_check_catches_a_broken_focus_file(
    validator_model: dict[str, Any], focus_exports: dict[str, Path]
) -> None:
    con = load_focus(focus_exports["parquet"])
    con.execute("UPDATE focus SET \"ChargeCategory\" = 'usage' WHERE \"x_Kind\" = 'gpu'")
    con.execute("UPDATE focus SET \"ChargePeriodStart\" = '2025-03-03 00:00:00' WHERE \"x_Kind\" = 'gpu'")
    con.execute('UPDATE focus SET "Tags" = \'{"a": [1]}\'')
    con.execute('ALTER TABLE focus DROP COLUMN "PublisherName"')

    report = check_conformance(con, "focus", validator_model,
                               applicability=DECLARED_APPLICABILITY)  # fmt: skip

    assert {o.rule_id for o in report.errors} >= {
        "CostAndUsage-D-021-M",  # PublisherName MUST be present
        "ChargeCategory-C-003-M",  # allowed values
        "ChargePeriodStart-C-002-M",  # DateTimeFormat
        "Tags-C-001-M",  # KeyValueFormat: no arrays
    }


# --- bad arguments --------------------------------------------------------------------------------------


def run_failing(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml", "--out", "{tmp}/x.xml"],
         "Unknown export format 'xml'. Valid formats are: csv, parquet, focus."),
        (["--format", "csv", "--out", "{tmp}/x.csv", "--start", "2026-10-05", "--end", "2026-10-01"],
         "--end 2026-10-01 is not after --start 2026-10-05"),
        (["--format", "csv", "--out", "{tmp}/exists.csv"], "--out {tmp}/exists.csv already exists; pass --overwrite"),
        (["--format", "csv", "--out", "{tmp}/nope/x.csv"], "the directory {tmp}/nope does not exist"),
        (["--format", "csv", "--out", "{tmp}/x.csv", "--start", "1 Oct"], "--start '1 Oct' is not a date"),
        (["--format", "csv", "--out", "{tmp}/x.csv", "--grain", "hourly"], "Unknown grain 'hourly'."),
        (["--format", "focus", "--out", "{tmp}/x.json"], "expected a name ending in .csv, .csv.gz or .parquet"),
        (["--format", "focus", "--out", "{tmp}/x.csv", "--grain", "line"], "--grain line does not apply"),
        (["--format", "csv", "--out", "{tmp}/lake", "--partition-by-day"], "use it with --format parquet"),
        (["--out", "{tmp}/x.csv"], "--format is missing; expected one of: csv, parquet, focus."),
        (["--format", "csv", "--out", "{tmp}/x.parquet"], "x.parquet names a Parquet file, and --format is csv"),
        (["--format", "parquet", "--out", "{tmp}/x.csv"], "x.csv names a CSV file, and --format is parquet"),
        (["--format", "csv", "--out", "/proc/x.csv"], "Could not write --out /proc/x.csv: "),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_sentence_and_exit_1(
    capsys: pytest.CaptureFixture[str], db_path: str, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "exists.csv").write_text("keep me")

    code, err = run_failing(capsys, "--db", db_path, "export", *[a.replace("{tmp}", str(tmp_path)) for a in args])

    assert code == 1
    assert err.startswith("error: ") and message.replace("{tmp}", str(tmp_path)) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "exists.csv").read_text() == "keep me"
    assert not list(tmp_path.glob(".*.tmp"))


def test_overwrite_replaces_an_existing_file_and_an_empty_range_writes_the_header(
    capsys: pytest.CaptureFixture[str], db_path: str, tmp_path: Path
) -> None:
    out = tmp_path / "x.csv"
    out.write_text("old")

    cli("--db", db_path, "export", "--format", "csv", "--out", str(out), "--overwrite", "--start", "2030-01-01")

    assert out.read_text().splitlines()[0].startswith("ts,charge_day,source,provider,model,team,feature")
    assert read_csv(out) == []
    assert "wrote 0 rows" in capsys.readouterr().out


def test_overwrite_writes_through_a_symbolic_link_and_refuses_a_pipe(
    capsys: pytest.CaptureFixture[str], db_path: str, tmp_path: Path
) -> None:
    target, link, pipe = tmp_path / "t.csv", tmp_path / "link.csv", tmp_path / "pipe.csv"
    target.write_text("old")
    link.symlink_to(target)
    os.mkfifo(pipe)

    cli("--db", db_path, "export", "--format", "csv", "--out", str(link), "--overwrite")
    code, err = run_failing(capsys, "--db", db_path, "export", "--format", "csv", "--out", str(pipe), "--overwrite")

    assert link.is_symlink() and target.read_text().startswith("ts,charge_day,")
    assert code == 1 and "is not a regular file" in err and pipe.exists()


def test_an_unknown_team_is_warned_about(capsys: pytest.CaptureFixture[str], db_path: str, tmp_path: Path) -> None:
    capsys.readouterr()
    cli("--db", db_path, "export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--team", "serach")

    assert "warning: --team 'serach' has no spend in this range" in capsys.readouterr().err


def test_parse_request_resolves_grain_and_focus_file_format() -> None:
    line_request = parse_request(fmt="parquet", out=Path("x.parquet"))
    focus_request = parse_request(fmt="focus", out=Path("x.CSV.gz"), start="2026-10-01", teams=["a", "a", "b"])

    assert (line_request.grain, line_request.file_format) == ("line", "parquet")
    assert (focus_request.grain, focus_request.file_format) == ("focus", "csv")
    assert focus_request.spend_filter.teams == ("a", "b")


@pytest.fixture(autouse=True)
def _no_stray_temporaries(tmp_path: Path) -> Iterator[None]:
    yield
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith((".staging", ".trash"))]
