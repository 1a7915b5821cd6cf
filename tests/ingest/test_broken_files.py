"""Broken files: a gzip file cut off or damaged, a CSV file with a broken quote. What can be read is read, the
rest is rejected with its line and a reason, the counts add up, and the files after it are ingested."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.ingest import IngestOptions, ingest_paths
from finops.jobs import WatchedFolder, ingest_watched
from finops.settings import Settings
from finops.store.db import Database
from tests.helpers import ingest_one, rows, write_file

REPO = Path(__file__).resolve().parents[2]
SPEND_LOGS = REPO / "fixtures" / "raw" / "litellm" / "spend_logs.csv"
CSV_HEADER = "request_id,ts,model,input_tokens,output_tokens,team,tags\n"


def record(i: int) -> dict[str, Any]:
    return {
        "request_id": f"z{i}",
        "ts": "2026-10-01T00:00:00Z",
        "model": "gpt-4o",
        "input_tokens": i,
        "output_tokens": 5,
        "team": "t" * (i % 50),  # lines of different lengths, so a cut falls anywhere in a line
    }


def jsonl(n: int) -> bytes:
    return "".join(json.dumps(record(i)) + "\n" for i in range(n)).encode()


def csv_text(n: int) -> bytes:
    return (CSV_HEADER + "".join(f"c{i},2026-10-01T00:00:00Z,gpt-4o,{i},5,t{i % 7},\n" for i in range(n))).encode()


def truncated(data: bytes) -> bytes:
    """`data` gzipped, then cut in half (a partial download)."""
    compressed = gzip.compress(data)
    return compressed[: len(compressed) // 2]


def damaged(data: bytes) -> bytes:
    """`data` gzipped with one byte in the middle flipped (zlib finds it by the CRC only)."""
    compressed = bytearray(gzip.compress(data))
    compressed[len(compressed) // 2] ^= 0xFF
    return bytes(compressed)


def readable_lines(compressed: bytes) -> int:
    """The newlines in what zlib can decompress of `compressed`."""
    return zlib.decompressobj(wbits=31).decompress(compressed).count(b"\n")


def rejects(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT line_number, reason, message, raw FROM rejected_usage ORDER BY line_number NULLS FIRST")


def batches(db: Database) -> list[dict[str, Any]]:
    return rows(db, "SELECT source_file, lines, accepted, duplicates, rejected FROM ingest_batches ORDER BY batch_id")


def assert_balanced(db: Database) -> None:
    for batch in batches(db):
        assert batch["lines"] == batch["accepted"] + batch["duplicates"] + batch["rejected"], batch


# ------------------------------------------------------------------------------------------------ gzip


@pytest.mark.parametrize(("name", "make"), [("g.jsonl.gz", jsonl), ("g.csv.gz", csv_text)])
def test_truncated_gzip_keeps_its_complete_lines_and_rejects_the_rest(
    db: Database, tmp_path: Path, name: str, make: Any
) -> None:
    data = truncated(make(20_000))
    complete = readable_lines(data)  # physical lines wholly decompressed (a CSV's header among them)
    path = write_file(tmp_path, name, data)

    report = ingest_one(db, path, "gateway")

    records = complete - (1 if name.endswith(".csv.gz") else 0)
    assert (report.lines, report.accepted, report.rejected) == (records + 1, records, 1)
    [reject] = rejects(db)
    assert reject["reason"] == "unreadable_file"
    assert reject["line_number"] == complete + 1
    assert "the gzip data ends before its end marker: the file is cut off" in reject["message"]
    assert reject["raw"]  # what came of the cut line
    assert db.scalar("SELECT count(*) FROM usage_events") == records
    assert_balanced(db)


@pytest.mark.parametrize(("name", "make"), [("g.jsonl.gz", jsonl), ("g.csv.gz", csv_text)])
def test_damaged_gzip_is_rejected_whole_with_the_reason(db: Database, tmp_path: Path, name: str, make: Any) -> None:
    path = write_file(tmp_path, name, damaged(make(20_000)))

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (1, 0, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (None, "unreadable_file")
    assert "the gzip data is damaged (zlib: incorrect data check)" in reject["message"]
    assert db.scalar("SELECT count(*) FROM usage_events") == 0  # DuckDB alone would have loaded garbage
    assert_balanced(db)


@pytest.mark.parametrize("broken", [truncated, damaged])
def test_a_broken_gzip_file_does_not_stop_the_files_after_it(db: Database, tmp_path: Path, broken: Any) -> None:
    bad = write_file(tmp_path, "a.jsonl.gz", broken(jsonl(20_000)))
    good = write_file(tmp_path, "b.jsonl", json.dumps(record(99_999)) + "\n")

    outcomes = list(ingest_paths(db, [bad, good], "gateway", IngestOptions()))

    assert [o.error for o in outcomes] == [None, None]
    assert [b["source_file"] for b in batches(db)] == [str(bad), str(good)]
    assert db.scalar("SELECT count(*) FROM usage_events WHERE request_id = 'z99999'") == 1
    assert_balanced(db)


def test_the_watch_job_ingests_the_files_after_a_truncated_gzip(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = WatchedFolder(tmp_path / "logs", "gateway")
    write_file(folder.path, "a.jsonl.gz", truncated(jsonl(20_000)))
    good = write_file(folder.path, "b.jsonl", json.dumps(record(99_999)) + "\n")

    report = ingest_watched(db, settings, [folder], settle_s=0)

    assert report.errors == []
    assert str(good) in report.ingested
    assert db.scalar("SELECT count(*) FROM usage_events WHERE request_id = 'z99999'") == 1


def test_a_small_truncated_gzip_is_read_not_refused(db: Database, tmp_path: Path) -> None:
    # smaller than the head the format is told from: the head itself is cut off
    compressed = gzip.compress(jsonl(5))
    path = write_file(tmp_path, "g.jsonl.gz", compressed[:-12])

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (5, 4, 1)
    assert [(r["line_number"], r["reason"]) for r in rejects(db)] == [(5, "unreadable_file")]


def test_gzip_cut_at_a_line_end_still_says_the_rest_is_missing(db: Database, tmp_path: Path) -> None:
    # two gzip members; the second cut inside its header: the readable data ends with a whole line
    data = gzip.compress(jsonl(5)) + gzip.compress(jsonl(10)[len(jsonl(5)) :])[:5]
    path = write_file(tmp_path, "g.jsonl.gz", data)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (6, 5, 1)
    assert [(r["line_number"], r["reason"], r["raw"]) for r in rejects(db)] == [(6, "unreadable_file", "")]


def test_concatenated_gzip_members_and_zero_padding_are_read_whole(db: Database, tmp_path: Path) -> None:
    data = gzip.compress(jsonl(5)) + gzip.compress(jsonl(10)[len(jsonl(5)) :]) + b"\0" * 64
    path = write_file(tmp_path, "g.jsonl.gz", data)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (10, 10, 0)


def test_bytes_after_the_gzip_data_are_rejected_not_dropped(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.jsonl.gz", gzip.compress(jsonl(5)) + b"not gzip")

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (6, 5, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (6, "unreadable_file")
    assert "followed by bytes that are not gzip" in reject["message"]


def test_truncated_gzip_json_document_is_rejected_whole(db: Database, tmp_path: Path) -> None:
    document = json.dumps([record(i) for i in range(5_000)]).encode()
    path = write_file(tmp_path, "g.json.gz", truncated(document))

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (1, 0, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (None, "unreadable_file")
    assert "a JSON document cannot be read in part" in reject["message"]


def test_gzip_parquet_is_read_and_a_truncated_one_rejected_whole(db: Database, tmp_path: Path) -> None:
    plain = tmp_path / "p.parquet"
    duckdb.sql(
        "COPY (SELECT 'p' || i AS request_id, '2026-10-01T00:00:00Z' AS ts, 'gpt-4o' AS model, i AS input_tokens, "
        f"1 AS output_tokens FROM range(5000) t(i)) TO '{plain}' (FORMAT parquet)"
    )
    whole = write_file(tmp_path, "whole.parquet.gz", plain.read_bytes(), gzipped=True)
    cut = write_file(tmp_path, "cut.parquet.gz", truncated(plain.read_bytes()))

    assert ingest_one(db, whole, "gateway").accepted == 5000
    report = ingest_one(db, cut, "gateway")

    assert (report.lines, report.rejected) == (1, 1)
    assert "a Parquet file cannot be read in part" in rejects(db)[0]["message"]


# ------------------------------------------------------------------------------------------------- CSV


def csv_row(i: int, team: str = "t", tags: str = "", tokens: str | None = None) -> str:
    return f"r{i},2026-10-01T00:00:00Z,gpt-4o,{i if tokens is None else tokens},1,{team},{tags}\n"


def test_csv_cut_inside_a_quoted_field_keeps_the_rows_before_it(db: Database, tmp_path: Path) -> None:
    rows_ = [f'g{i},2026-10-01T00:00:00Z,gpt-4o,{i},1,"{{""app"":""x{i}""}}"\n' for i in range(10)]
    content = ("request_id,ts,model,input_tokens,output_tokens,tags\n" + "".join(rows_))[:-12]
    path = write_file(tmp_path, "cut.csv", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (10, 9, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (11, "csv_structure")
    assert reject["raw"] == content.splitlines()[-1]
    assert "never closed" in reject["message"]
    assert rows(db, "SELECT tags FROM usage WHERE request_id = 'g0'") == [{"tags": '{"app":"x0"}'}]


def test_one_unterminated_quote_does_not_turn_quoting_off(db: Database, tmp_path: Path) -> None:
    content = (
        CSV_HEADER
        + csv_row(1, "ok", '"{""a"":""b,c""}"')
        + csv_row(2, '"multi, word"')
        + csv_row(3, '"unterminated')
        + csv_row(4, "ok")
    )
    path = write_file(tmp_path, "q.csv", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (4, 3, 1)
    assert [(r["line_number"], r["reason"], r["raw"]) for r in rejects(db)] == [
        (4, "csv_structure", csv_row(3, '"unterminated').rstrip("\n"))
    ]
    assert rows(db, "SELECT request_id, team, tags FROM usage ORDER BY 1") == [
        {"request_id": "r1", "team": "ok", "tags": '{"a":"b,c"}'},
        {"request_id": "r2", "team": "multi, word", "tags": None},
        {"request_id": "r4", "team": "ok", "tags": None},
    ]


def test_a_broken_quote_past_the_sniffed_sample_costs_one_line(db: Database, tmp_path: Path) -> None:
    # DuckDB sniffs the first 20,480 rows; it refuses the record with the broken quote and resynchronises on
    # its own terms: every line after it must still get its own line number
    body = [csv_row(i, tags='"{""app"":""x""}"') for i in range(30_000)]
    body[25_000] = csv_row(25_000, '"broken')
    body[28_000] = csv_row(28_000, tokens="-5")
    path = write_file(tmp_path, "big.csv", CSV_HEADER + "".join(body))

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (30_000, 29_998, 2)
    assert [(r["line_number"], r["reason"]) for r in rejects(db)] == [
        (25_002, "csv_structure"),
        (28_002, "negative_value"),
    ]
    assert rejects(db)[1]["raw"] == body[28_000].rstrip("\n")
    assert db.scalar("SELECT count(*) FROM usage WHERE request_id = 'r25001'") == 1


def test_text_after_a_closing_quote_rejects_that_line_only(db: Database, tmp_path: Path) -> None:
    content = CSV_HEADER + csv_row(1, '"a\nb"') + csv_row(2, '"ab"cd') + csv_row(3) + csv_row(4, tokens="x")
    path = write_file(tmp_path, "g.csv", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (4, 2, 2)
    assert [(r["line_number"], r["reason"]) for r in rejects(db)] == [(4, "csv_structure"), (6, "wrong_type")]
    assert "followed by more text" in rejects(db)[0]["message"]
    assert rows(db, "SELECT team FROM usage WHERE request_id = 'r1'") == [{"team": "a\nb"}]


def test_a_quote_inside_an_unquoted_field_is_a_character_and_keeps_line_numbers(db: Database, tmp_path: Path) -> None:
    body = [csv_row(i, '5" screen' if i % 3 == 0 else "x") for i in range(50)]
    body[40] = csv_row(40, tokens="-1")
    path = write_file(tmp_path, "g.csv", CSV_HEADER + "".join(body))

    report = ingest_one(db, path, "gateway")

    assert (report.accepted, report.rejected) == (49, 1)
    assert [(r["line_number"], r["raw"]) for r in rejects(db)] == [(42, body[40].rstrip("\n"))]
    assert rows(db, "SELECT team FROM usage WHERE request_id = 'r3'") == [{"team": '5" screen'}]


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_a_broken_quote_in_a_file_with_another_delimiter(db: Database, tmp_path: Path, delimiter: str) -> None:
    content = (
        f"request_id{delimiter}ts{delimiter}model{delimiter}input_tokens{delimiter}output_tokens{delimiter}team\n"
        f'a{delimiter}2026-10-01T00:00:00Z{delimiter}gpt-4o{delimiter}1{delimiter}1{delimiter}"x{delimiter}y"\n'
        f'b{delimiter}2026-10-01T00:00:00Z{delimiter}gpt-4o{delimiter}1{delimiter}1{delimiter}"bro\n'
        f"c{delimiter}2026-10-01T00:00:00Z{delimiter}gpt-4o{delimiter}1{delimiter}1{delimiter}ok\n"
    )
    path = write_file(tmp_path, "g.tsv" if delimiter == "\t" else "g.csv", content)

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (3, 2, 1)
    assert [r["line_number"] for r in rejects(db)] == [3]
    assert rows(db, "SELECT team FROM usage ORDER BY request_id") == [{"team": f"x{delimiter}y"}, {"team": "ok"}]


def test_crlf_and_bom_with_a_broken_quote_keep_line_numbers(db: Database, tmp_path: Path) -> None:
    content = CSV_HEADER + csv_row(1) + csv_row(2, '"x') + csv_row(3, '"multi\nline"') + csv_row(4, tokens="-1")
    path = write_file(tmp_path, "g.csv", b"\xef\xbb\xbf" + content.replace("\n", "\r\n").encode())

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.accepted, report.rejected) == (4, 2, 2)
    assert [(r["line_number"], r["reason"]) for r in rejects(db)] == [(3, "csv_structure"), (6, "negative_value")]
    assert rows(db, "SELECT team FROM usage WHERE request_id = 'r3'") == [{"team": "multi\r\nline"}]


def test_a_broken_header_rejects_the_file_with_the_reason(db: Database, tmp_path: Path) -> None:
    path = write_file(tmp_path, "g.csv", 'request_id,"ts,model\na,b,c\n')

    report = ingest_one(db, path, "gateway")

    assert (report.lines, report.rejected) == (1, 1)
    [reject] = rejects(db)
    assert (reject["line_number"], reject["reason"]) == (None, "unreadable_file")
    assert "the header line is broken" in reject["message"]


@pytest.mark.parametrize("cut", [2_000, 4_263, 4_802, 9_000, 16_000, 25_400])
def test_litellm_spend_logs_cut_mid_row_keep_whole_rows_and_number_every_reject(
    db: Database, tmp_path: Path, cut: int
) -> None:
    # LiteLLM's export has JSON with newlines in quoted fields: a record spans many lines
    data = SPEND_LOGS.read_bytes()[:cut]
    path = write_file(tmp_path, "spend_logs.csv", data)
    complete = data[: data.rfind(b"\nchatcmpl-") + 1]  # the rows that end before the row that is cut
    whole_rows = complete.count(b"\nchatcmpl-")

    report = ingest_one(db, path, "litellm", zone="UTC")

    assert report.accepted == whole_rows
    assert report.lines == report.accepted + report.rejected
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert report.lines <= physical - complete.count(b"\n") + whole_rows  # never more than one per line
    found = rejects(db)
    assert found and all(r["line_number"] is not None and r["raw"] for r in found)
    assert min(r["line_number"] for r in found) == complete.count(b"\n") + 1
    assert_balanced(db)


@pytest.mark.parametrize("seed", range(4))
def test_random_broken_csv_balances_and_every_reject_has_its_line(db: Database, tmp_path: Path, seed: int) -> None:
    # quoted commas and newlines, doubled quotes, stray and unterminated quotes, CRLF, blank lines, bad values
    teams = ["t", '5" screen', '"q, c"', '"multi\nline"', '"e ""s"" q"', ' "one space"', '"trail" ', "", 'ab""c']
    teams += ['a"b"c', '"a\r\nb"', '""', '"unterminated', 'ok"', '"x"y', "\n", '"', ","]
    rng = random.Random(seed)
    for n in range(25):
        newline = rng.choice(["\n", "\r\n"])
        body = [
            csv_row(i, rng.choice(teams) if rng.random() < 0.4 else "t", tokens=rng.choice(["1", "2", "-1", "x"]))
            for i in range(rng.randint(1, 15))
        ]
        text = CSV_HEADER.replace("\n", newline) + "".join(r.replace("\n", newline) for r in body)
        path = write_file(tmp_path, f"f{n}.csv", text)

        [outcome] = list(ingest_paths(db, [path], "gateway", IngestOptions()))

        assert outcome.error is None and outcome.report is not None
        assert outcome.report.balanced
        physical = text.replace("\r\n", "\n").split("\n")
        for reject in rows(db, "SELECT * FROM rejected_usage WHERE batch_id = $b", {"b": outcome.report.batch_id}):
            assert reject["line_number"] is not None, (reject, text)
            assert reject["raw"].replace("\r\n", "\n").split("\n")[0] == physical[reject["line_number"] - 1]
