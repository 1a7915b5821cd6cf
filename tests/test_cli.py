"""The command line: reports per file, read-only SQL, and one clear sentence (never a traceback) for mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.helpers import run_cli, write_file
from tests.ingest.test_bad_input import line

run = run_cli


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "spend.duckdb")


def test_ingest_prints_a_report_per_file_and_says_when_nothing_is_new(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n" + line("b", input_tokens=-1) + "\n")

    code, out, _ = run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")
    code2, out2, _ = run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")

    assert code == code2 == 0
    assert f"{path} [gateway]: 2 read, 1 accepted, 0 duplicates, 1 rejected (negative_value 1)" in out
    assert "line 2: input_tokens is -1; expected a non-negative integer of at most 1e13. Kept in rejected_usage" in out
    assert "2 read, 0 accepted, 1 duplicates, 1 rejected" in out2
    assert "nothing new" not in out2  # one line was rejected, not a duplicate


def test_ingest_json_format_gives_the_reports(capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n")

    code, out, _ = run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway", "--format", "json")

    [report] = json.loads(out)
    assert (code, report["lines"], report["accepted"], report["source"]) == (0, 1, 1, "gateway")


def test_sql_answers_in_table_csv_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n" + line("b", model="claude-sonnet-4-5") + "\n")
    run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")
    query = "SELECT provider, model, count(*) AS n FROM usage GROUP BY ALL ORDER BY ALL"

    _, table, _ = run(capsys, "--db", db_path, "sql", query)
    _, csv_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "csv")
    _, json_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "json")

    assert "claude-sonnet-4-5" in table and "2 rows" in table
    assert csv_out.splitlines() == ["provider,model,n", "anthropic,claude-sonnet-4-5,1", "openai,gpt-4o-2024-08-06,1"]
    assert json.loads(json_out)[0] == {"provider": "anthropic", "model": "claude-sonnet-4-5", "n": 1}


def test_sql_table_cuts_long_values_and_escapes_control_characters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")
    query = "SELECT list(range) AS long, 'x' || chr(27) || '[2J' AS esc FROM range(100000)"

    _, table, err = run(capsys, "--db", db_path, "sql", query)
    _, csv_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "csv")

    assert len(table) < 5_000 and "\x1b" not in table and "x\\x1b[2J" in table
    assert "1 value cut to 200 characters in the table; --format csv or json shows them whole" in err
    assert "99999]" in csv_out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "nope.jsonl", "--source", "gateway"], "nope.jsonl: no such file."),
        (["ingest", "{file}", "--source", "openia"], "Unknown source 'openia'. Valid sources are: gateway, litellm"),
        (["ingest", "{file}", "--source", "gateway", "--timezone", "Mars/Olympus"], "Unknown time zone 'Mars/Olympus'"),
        (["ingest", "{file}", "--source", "gateway", "--fx-rate", "EUR=abc"], "--fx-rate 'EUR=abc' is not CODE=RATE"),
        (
            ["ingest", "{file}", "--source", "gateway", "--fx-rate", "EUR=1.123456789"],
            "--fx-rate 'EUR=1.123456789' has more than 8 decimal places",
        ),
        (["sql", "DELETE FROM usage_events"], "Only SELECT queries are allowed; this is a DELETE statement."),
        (["sql", "INSTALL httpfs"], "Only SELECT queries are allowed; this is an INSTALL statement."),
        (["sql", "INSERT INTO usage_events VALUES (1)"], "this is an INSERT statement."),
        (["sql", "SELECT 1; SELECT 2"], "Expected exactly one SELECT statement; got 2 statements."),
        (["sql", "SELECT * FROM no_such_table"], "The query failed: Catalog Error: Table with name no_such_table"),
        (["sql", "SELEC 1"], "The SQL does not parse"),
        (["sql", "PIVOT usage ON model USING count(*)"], "A PIVOT here needs its values listed, e.g. PIVOT spend ON"),
    ],
)
def test_user_mistakes_are_one_sentence_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str, argv: list[str], message: str
) -> None:
    good = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    run(capsys, "--db", db_path, "ingest", str(good), "--source", "gateway")

    code, _, err = run(capsys, "--db", db_path, *[a.replace("{file}", str(good)) for a in argv])

    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert err.startswith("error: ")


def test_sql_on_a_missing_database_says_what_to_do(capsys: pytest.CaptureFixture[str], db_path: str) -> None:
    code, _, err = run(capsys, "--db", db_path, "sql", "SELECT 1")

    assert code == 1
    assert "does not exist. Ingest something first" in err


def test_sql_cannot_read_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str) -> None:
    good = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    run(capsys, "--db", db_path, "ingest", str(good), "--source", "gateway")

    code, _, err = run(capsys, "--db", db_path, "sql", f"SELECT * FROM read_text('{good}')")

    assert code == 1
    assert "Permission Error" in err or "disabled" in err


def test_unrecognised_file_with_auto_names_the_file_and_the_sources(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    odd = write_file(tmp_path, "odd.jsonl", '{"hello": "world"}\n')

    code, _, err = run(capsys, "--db", db_path, "ingest", str(odd), "--source", "auto")

    assert code == 1
    assert f"{odd}: not recognised as any source (jsonl file). Known sources are: gateway, litellm" in err


def test_a_key_for_a_team_never_seen_is_created_with_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a", team="search") + "\n")
    run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")

    code, _, typo = run(capsys, "--db", db_path, "keys", "create", "--role", "owner", "--team", "serach")
    _, _, known = run(capsys, "--db", db_path, "keys", "create", "--role", "owner", "--team", "search")

    assert code == 0 and "warning: team 'serach' has no spend or budget yet" in typo
    assert "warning" not in known


def test_a_directory_without_input_files_is_warned_about(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    rotated = tmp_path / "logs"
    rotated.mkdir()
    write_file(rotated, "gw.jsonl.1", line("a") + "\n")

    code, _, err = run(capsys, "--db", db_path, "ingest", str(rotated), "--source", "gateway")

    assert code == 0
    assert f"warning: {rotated} holds no file named *.csv, *.json, *.jsonl" in err
    assert "name files directly to read them whatever their names" in err


def test_serve_with_a_snapshot_directory_it_cannot_make_stops_with_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = write_file(tmp_path, "a-file", "not a directory")
    monkeypatch.setenv("FINOPS_SQL_SNAPSHOT_DIR", str(blocker / "snapshots"))

    code, _, err = run(capsys, "--db", db_path, "serve", "--port", "0", "--no-scheduler")

    assert code == 1
    assert f"The SQL snapshot directory {blocker / 'snapshots'} cannot be created" in err


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            duckdb.OutOfMemoryException(
                "Out of Memory Error: failed to allocate data of size 16.0 MiB (60.0/61.0 MiB used)"
            ),
            "error: DuckDB ran out of memory (failed to allocate data of size 16.0 MiB (60.0/61.0 MiB used)). The "
            "statement was rolled back. Raise FINOPS_MEMORY_LIMIT",
        ),
        (
            duckdb.IOException('IO Error: Could not write file "spend.duckdb.wal": No space left on device'),
            'error: the disk is full (Could not write file "spend.duckdb.wal": No space left on device). Nothing of '
            "the failed step was committed. Free space",
        ),
        (
            duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not write file "s.wal": No space left on device'
            ),
            'error: the disk is full (Failed to commit: Could not write file "s.wal": No space left on device).',
        ),
        (
            OSError(28, "No space left on device"),
            "error: the disk is full ([Errno 28] No space left on device).",
        ),
        (
            duckdb.IOException('IO Error: Cannot open file "spend.duckdb": Permission denied'),
            'error: DuckDB could not read or write a file: Cannot open file "spend.duckdb": Permission denied. Check',
        ),
    ],
)
def test_running_out_of_memory_or_disk_is_one_sentence_not_an_internal_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    db_path: str,
    error: Exception,
    expected: str,
) -> None:
    """DuckDB's own limits (the memory limit, a full disk) are the machine's, not a finops bug."""
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("finops.cli.run.run_once", fail)
    code, _, err = run(capsys, "--db", db_path, "run")

    assert code == 1
    assert " ".join(err.split()).startswith(expected)
    assert "internal error" not in err


def test_a_pivot_with_its_values_listed_answers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    path = write_file(tmp_path, "g.jsonl", line("a") + "\n")
    run(capsys, "--db", db_path, "ingest", str(path), "--source", "gateway")

    code, out, _ = run(
        capsys,
        "--db",
        db_path,
        "sql",
        "PIVOT usage ON provider IN ('openai', 'anthropic') USING count(*) GROUP BY kind",
        "--format",
        "csv",
    )

    assert (code, out.splitlines()) == (0, ["kind,openai,anthropic", "tokens,1,0"])


def ingest_a_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str) -> None:
    run(
        capsys, "--db", db_path, "ingest", str(write_file(tmp_path, "g.jsonl", line("a") + "\n")), "--source", "gateway"
    )


def test_decimals_inside_lists_and_structs_print_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    ingest_a_line(capsys, tmp_path, db_path)
    query = "SELECT [CAST(0.00000075 AS DECIMAL(18, 12))] AS l, {'a': CAST(2.5 AS DECIMAL(10, 2))} AS s"

    _, csv_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "csv")
    _, json_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "json")

    assert csv_out.splitlines() == ["l,s", '[0.000000750000],"{""a"": 2.50}"']
    assert json.loads(json_out) == [{"l": ["0.000000750000"], "s": {"a": "2.50"}}]


def test_sql_json_keeps_every_column_and_is_strict_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_path: str
) -> None:
    ingest_a_line(capsys, tmp_path, db_path)
    query = "SELECT 1 AS a, 2 AS a, 3 AS a_1, 1/0 AS c, 'nan'::DOUBLE AS d, [-1/0] AS l"

    _, json_out, _ = run(capsys, "--db", db_path, "sql", query, "--format", "json")

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    # a name met again gets _1, _2 as DuckDB names them; a NaN or an infinity is text, as POST /v1/sql gives it
    assert json.loads(json_out, parse_constant=refuse) == [
        {"a": 1, "a_2": 2, "a_1": 3, "c": "inf", "d": "nan", "l": ["-inf"]}
    ]
