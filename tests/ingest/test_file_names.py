"""Which files an ingest reads: a file is read as itself whatever its name (DuckDB's readers would take `[a]`,
`?`, `*` or a backslash in a path as a pattern and read other files), a pattern names the files it matches, and
a directory is walked through links to directories (hunt D bugs 1 and 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finops.ingest import IngestOptions, ingest_paths
from finops.ingest.files import discover
from finops.store.db import Database
from tests.helpers import rows, run_cli, write_file


def record(request_id: str, tokens: int = 1) -> str:
    fields = {"ts": "2026-10-01T00:00:00Z", "model": "gpt-4o", "input_tokens": tokens, "output_tokens": 1}
    return json.dumps({"request_id": request_id, **fields}) + "\n"


@pytest.mark.parametrize(
    ("name", "look_alike"),
    [("costs[a].jsonl", "costsa.jsonl"), ("what?.jsonl", "whatX.jsonl"), ("a*.jsonl.gz", "ab.jsonl.gz")],
)
def test_a_file_whose_name_looks_like_a_pattern_is_read_as_itself(
    db: Database, tmp_path: Path, name: str, look_alike: str
) -> None:
    gz = name.endswith(".gz")
    write_file(tmp_path, name, record("own", 1000), gzipped=gz)
    write_file(tmp_path, look_alike, record("other-1") + record("other-2"), gzipped=gz)

    outcomes = list(ingest_paths(db, [tmp_path], "gateway", IngestOptions()))

    batches = rows(
        db,
        "SELECT b.source_file, b.lines, string_agg(u.request_id ORDER BY u.request_id) AS ids "
        "FROM ingest_batches b JOIN usage u USING (batch_id) GROUP BY ALL ORDER BY ALL",
    )
    assert {Path(b["source_file"]).name: (b["lines"], b["ids"]) for b in batches} == {
        name: (1, "own"),
        look_alike: (2, "other-1,other-2"),
    }
    assert all(o.report and o.report.rejected == 0 for o in outcomes)


def test_a_path_that_exists_is_itself_not_a_pattern(tmp_path: Path) -> None:
    own = write_file(tmp_path, "costs[a].csv", "request_id\n")
    write_file(tmp_path, "costsa.csv", "request_id\n")

    assert discover([own]) == [own.resolve()]
    assert discover([tmp_path / "costs[ab].csv"]) == [(tmp_path / "costsa.csv").resolve()]  # no such file: a pattern


def test_a_directory_is_walked_through_links_to_directories_and_a_loop_ends(tmp_path: Path) -> None:
    real = tmp_path / "mounted"
    real.mkdir()
    log = write_file(real, "gw.jsonl", record("r1"))
    watched = tmp_path / "in"
    watched.mkdir()
    (watched / "gateway").symlink_to(real, target_is_directory=True)
    (real / "back").symlink_to(watched, target_is_directory=True)  # a loop
    write_file(watched, ".hidden.jsonl", record("h"))

    assert discover([watched]) == [log.resolve()]


def test_an_error_shows_the_name_as_typed_brackets_included(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "--db", str(tmp_path / "f.duckdb"), "ingest", str(tmp_path / "costs[b].csv"), "--source", "gateway"
    )

    assert code == 1
    assert f"{tmp_path / 'costs[b].csv'}: no file matches this pattern." in err


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_refused_in_one_sentence_not_read_as_bad_lines(
    db: Database, tmp_path: Path, encoding: str
) -> None:
    path = write_file(tmp_path, "g.jsonl", record("u16").encode(encoding))

    [outcome] = list(ingest_paths(db, [path], "gateway", IngestOptions()))

    assert outcome.error is not None and outcome.report is None
    assert (
        "is UTF-16 text" in outcome.error.message and "expected UTF-8. Nothing of it was read" in outcome.error.message
    )
    assert db.scalar("SELECT count(*) FROM ingest_batches") == 0
