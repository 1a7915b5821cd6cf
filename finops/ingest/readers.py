"""Turn one input file into an *input relation*: one row per record, in file order.

Every input relation has the columns

    _line   BIGINT   physical line (JSONL dirty path, Parquet row), or NULL until located
    _path   VARCHAR  where in a JSON document the record stood, e.g. [3] or data[0].results[2]
    _json   JSON     the record's JSON text (JSON inputs), kept for rejects
    _bad    VARCHAR  a record-level problem found while reading (not an object, not a page ...)
    _extra  JSON     input keys the adapter does not know, kept rather than dropped

plus one column per input key. DuckDB's own readers do the parsing; a JSONL file DuckDB refuses
(a broken line, a bad byte, a BOM) is read line by line with numpy so that every other line still
loads and the broken ones become rejects with their line number and text.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format, InputFile
from finops.ingest.lines import iter_lines, locate
from finops.store.db import Database

__all__ = ["InputRelation", "LineReject", "open_input", "unreadable_relation"]

_counter = itertools.count()


@dataclass(frozen=True)
class LineReject:
    """A line rejected before it became a record (bad JSON, bad encoding, bad CSV structure)."""

    line_number: int | None
    raw: str
    reason: str
    message: str


@dataclass
class InputRelation:
    sql: str
    params: dict[str, Any]
    columns: frozenset[str]
    locate: str | None  # how rejects find their line and text afterwards: "jsonl" | "csv" | None
    # a slower, line-by-line reading to use when DuckDB's reader refuses the file
    fallback: Callable[[], InputRelation] | None = None
    # runs once the stage is built (CSV: collect the records the reader refused)
    after_stage: Callable[[], None] | None = None
    line_rejects: list[LineReject] = field(default_factory=list)
    csv_rejected_records: list[int] = field(default_factory=list)  # 0-based record numbers (incl. header)
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for fn in self.cleanup:
            fn()


def open_input(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    """The input relation of `file` as `adapter` reads it."""
    if file.format is Format.JSONL:
        return _jsonl(db, file, adapter)
    if file.format is Format.JSON:
        return _json_documents(db, file, adapter)
    if file.format is Format.CSV:
        return _csv(db, file, adapter)
    return _parquet(db, file, adapter)


def _struct(adapter: Adapter) -> str:
    body = ", ".join(f'"{k}": "{t}"' for k, t in adapter.input_fields.items())
    return "{" + body + "}"


def _json_input(records_sql: str, adapter: Adapter) -> str:
    """Unpack JSON records (`_line`, `_path`, `_json`, `_bad`) into one column per known key, plus `_extra`."""
    struct = _struct(adapter).replace("'", "''")
    cols = ", ".join(f'_s."{k}" AS "{k}"' for k in adapter.input_fields)
    return f"""
    SELECT _line, _path, _json, _bad, {cols},
        CASE WHEN len(_unknown) > 0 THEN NULLIF(CAST(to_json(map_from_entries(list_filter(
            list_transform(_unknown, lambda k: {{'key': k, 'value': _json -> k}}),
            lambda e: json_type(e.value) <> 'NULL'))) AS VARCHAR), '{{}}')::JSON END AS _extra
    FROM (
        SELECT _line, _path, _json,
            CASE WHEN _bad IS NOT NULL THEN _bad
                 WHEN NOT _is_object THEN 'the record is ' || left(CAST(_json AS VARCHAR), 60)
                      || '; expected a JSON object' END AS _bad,
            CASE WHEN _is_object THEN from_json(_json, '{struct}') END AS _s,
            CASE WHEN _is_object THEN list_filter(json_keys(_json), lambda k: NOT list_contains($known, k)) END
                AS _unknown
        FROM (SELECT *, left(ltrim(CAST(_json AS VARCHAR)), 1) = '{{' AS _is_object FROM ({records_sql}))
    )"""


def _jsonl(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    """JSONL, fastest reading first; each reading falls back to the next when DuckDB refuses the file:
    1. `read_json` with the top-level keys of the first records as JSON columns: one shallow parse, and a
       key first met after that sample stops it (nothing is dropped silently);
    2. `read_ndjson_objects` + `from_json`, with unknown keys collected from every record;
    3. line by line with numpy, when a line is not JSON, not UTF-8, or cut off."""
    if adapter.flatten is not None:
        # one document per line (API pages): read line by line, so that each page's records keep its line
        return _jsonl_line_by_line(db, file, adapter)
    return _jsonl_shallow(db, file, adapter) or _jsonl_objects(db, file, adapter)


_SAMPLE = 20_480
_SHALLOW = f"read_json($path, format = 'newline_delimited', maximum_depth = 1, sample_size = {_SAMPLE})"


def _jsonl_shallow(db: Database, file: InputFile, adapter: Adapter) -> InputRelation | None:
    try:
        keys = [row[0] for row in db.fetchall(f"DESCRIBE SELECT * FROM {_SHALLOW}", {"path": str(file.path)})]
    except duckdb.Error:
        return None
    if keys == ["json"] or not keys:  # not an object per line (arrays, scalars): the exact readers say so
        return None
    present = set(keys)
    columns = []
    for key, kind in adapter.input_fields.items():
        ref = _ident(key)
        if key not in present:
            columns.append(f"CAST(NULL AS {kind}) AS {ref}")
        elif kind == "VARCHAR":
            columns.append(f"{_json_to_text(ref)} AS {ref}")
        else:
            columns.append(ref)
    unknown = [k for k in keys if k not in adapter.known_fields]
    if unknown:
        entries = ", ".join(f"{{'key': {_literal(k)}, 'value': CAST({_ident(k)} AS JSON)}}" for k in unknown)
        extra = (
            f"NULLIF(CAST(to_json(map_from_entries(list_filter([{entries}], lambda e: e.value IS NOT NULL))) "
            "AS VARCHAR), '{}')::JSON"
        )
    else:
        extra = "CAST(NULL AS JSON)"
    sql = (
        "SELECT CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _path, CAST(NULL AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad, {', '.join(columns)}, {extra} AS _extra FROM {_SHALLOW}"
    )
    return InputRelation(
        sql=sql,
        params={"path": str(file.path)},
        columns=frozenset(adapter.input_fields),
        locate="jsonl",
        fallback=lambda: _jsonl_objects(db, file, adapter),
    )


def _ident(name: str) -> str:
    """A quoted SQL identifier for a key named in a file (quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A SQL string literal for a key named in a file (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _json_to_text(ref: str) -> str:
    """A JSON value as `from_json(..., 'VARCHAR')` gives it: a string unquoted, anything else its JSON text.

    `->>'$'` does exactly that, and costs less than testing the first character and cutting the quotes
    in SQL (issue 2: 12 text fields of 1M records, about 0.5 s less CPU); the same results on strings
    with escapes, numbers, booleans, objects and arrays were checked against that older expression.
    """
    return f"({ref})->>'$'"


def _jsonl_objects(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    known = sorted(adapter.known_fields)
    fast = (
        "SELECT CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _path, json AS _json, "
        "CAST(NULL AS VARCHAR) AS _bad FROM read_ndjson_objects($path)"
    )
    # DuckDB's reader refuses the whole file on one broken line: then read it line by line
    return InputRelation(
        sql=_json_input(fast, adapter),
        params={"path": str(file.path), "known": known},
        columns=frozenset(adapter.input_fields),
        locate="jsonl",
        fallback=lambda: _jsonl_line_by_line(db, file, adapter),
    )


def _jsonl_line_by_line(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    table = f"_lines_{next(_counter)}"
    db.execute(f"CREATE OR REPLACE TEMP TABLE {table} (_line BIGINT, _bytes BLOB, _unterminated BOOLEAN)")
    for chunk, unterminated_last in iter_lines(file.path, file.compression):
        view = f"{table}_chunk"
        db.con.register(view, chunk)
        try:
            db.execute(
                f"INSERT INTO {table} SELECT _line, _bytes, "
                f"$last AND _line = (SELECT max(_line) FROM {view}) FROM {view}",
                {"last": unterminated_last},
            )
        finally:
            db.con.unregister(view)
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {table}_text AS "
        f"SELECT _line, _bytes, _unterminated, TRY(decode(_bytes)) AS _text FROM {table}"
    )
    bad = db.fetchall(
        f"""SELECT _line, _bytes, _unterminated, _text IS NULL AS bad_encoding FROM {table}_text
            WHERE _text IS NULL OR NOT json_valid(_text) ORDER BY _line"""
    )
    rejects = []
    for line, raw_bytes, unterminated, bad_encoding in bad:
        raw = bytes(raw_bytes).decode("utf-8", errors="replace")
        if bad_encoding:
            offender = next((f"0x{b:02X}" for b in _first_invalid_utf8(bytes(raw_bytes))), "a byte")
            rejects.append(
                LineReject(
                    line,
                    raw,
                    "invalid_encoding",
                    f"the line is not valid UTF-8 ({offender}, Latin-1 or Windows-1252 text?); expected UTF-8",
                )
            )
        elif unterminated:
            rejects.append(
                LineReject(
                    line,
                    raw,
                    "truncated_line",
                    "the last line ends without a newline and is not complete JSON; the file looks cut off mid-write",
                )
            )
        else:
            rejects.append(
                LineReject(
                    line,
                    raw,
                    "invalid_json",
                    f"the line is not valid JSON: {raw[:60]!r}; expected one JSON object per line",
                )
            )
    records = (
        f"SELECT _line, CAST(NULL AS VARCHAR) AS _path, CAST(_text AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad FROM {table}_text "
        f"WHERE _text IS NOT NULL AND json_valid(_text) ORDER BY _line"
    )
    if adapter.flatten is not None:  # each line is a document; its records carry the line's number
        records = (
            f"WITH _docs AS (SELECT _line AS _doc_no, _json AS _doc FROM ({records})), _flat AS ({adapter.flatten}) "
            "SELECT _d AS _line, _path, _json, _bad FROM _flat ORDER BY _d, _i"
        )

    def drop() -> None:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"DROP TABLE IF EXISTS {table}_text")

    return InputRelation(
        sql=_json_input(records, adapter),
        params={"known": sorted(adapter.known_fields)},
        columns=frozenset(adapter.input_fields),
        locate=None,
        line_rejects=rejects,
        cleanup=[drop],
    )


def _first_invalid_utf8(data: bytes) -> list[int]:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [data[exc.start]]
    return []


_DEFAULT_FLATTEN = """
    SELECT _doc_no, _i, _json FROM (
        SELECT _doc_no, unnest(_items) AS _json, generate_subscripts(_items, 1) - 1 AS _i
        FROM (SELECT _doc_no, from_json(_doc, '["JSON"]') AS _items FROM _docs WHERE json_type(_doc) = 'ARRAY'))
    UNION ALL
    SELECT _doc_no, NULL AS _i, _doc AS _json FROM _docs WHERE json_type(_doc) <> 'ARRAY'
"""


def _json_documents(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    """A JSON document (an array of records, or API pages): records numbered in document order."""
    flatten = adapter.flatten or (
        "SELECT _doc_no AS _d, _i, _json, CASE WHEN _i IS NULL THEN NULL ELSE '[' || _i || ']' END AS _path, "
        f"CAST(NULL AS VARCHAR) AS _bad FROM ({_DEFAULT_FLATTEN})"
    )
    try:
        db.execute("SELECT count(*) FROM read_json_objects($path, format='unstructured')", {"path": str(file.path)})
    except duckdb.Error as exc:
        return InputRelation(
            sql=_json_input(
                "SELECT NULL::BIGINT _line, NULL::VARCHAR _path, NULL::JSON _json, NULL::VARCHAR _bad WHERE false",
                adapter,
            ),
            params={"known": sorted(adapter.known_fields)},
            columns=frozenset(adapter.input_fields),
            locate=None,
            line_rejects=[
                LineReject(
                    None,
                    file.head_text()[:2000],
                    "invalid_json",
                    f"the file is not a valid JSON document ({_first_line(exc)}); "
                    "expected a JSON array of records or an API page",
                )
            ],
        )
    records = f"""
        WITH _docs AS (SELECT row_number() OVER () - 1 AS _doc_no, json AS _doc
                       FROM read_json_objects($path, format='unstructured')),
             _flat AS ({flatten})
        SELECT row_number() OVER (ORDER BY _d, _i) AS _line, _path, _json, _bad FROM _flat"""
    return InputRelation(
        sql=_json_input(records, adapter),
        params={"path": str(file.path), "known": sorted(adapter.known_fields)},
        columns=frozenset(adapter.input_fields),
        locate=None,
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0].removeprefix("Invalid Input Error: ")[:160]


def _extras_sql(columns: list[str], known: frozenset[str]) -> str:
    if any(c not in known for c in columns):
        return "to_json(struct_pack(*COLUMNS(lambda c: NOT list_contains($known, c) AND NOT starts_with(c, '_'))))"
    return "CAST(NULL AS JSON)"


def _csv(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    """CSV through DuckDB's reader; the records it refuses (wrong column count, bad bytes) are recorded by
    the same read that stages the rest (`store_rejects`), and collected after it."""
    reader = "read_csv($path, header = true, all_varchar = true, store_rejects = true)"
    params: dict[str, Any] = {"path": str(file.path)}
    try:
        described = db.fetchall(f"DESCRIBE SELECT * FROM {reader}", params)
    except duckdb.Error as exc:
        return _unreadable(file, adapter, exc)
    columns = [row[0] for row in described]
    for table in ("reject_errors", "reject_scans"):
        if _has_table(db, table):
            db.execute(f"DELETE FROM {table}")
    sql = (
        f"SELECT CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _path, CAST(NULL AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad, *, {_extras_sql(columns, adapter.known_fields)} AS _extra FROM {reader}"
    )
    if "$known" in sql:
        params["known"] = sorted(adapter.known_fields)
    relation = InputRelation(sql=sql, params=params, columns=frozenset(columns), locate="csv")

    def collect_structural_rejects() -> None:
        found = db.fetchall("SELECT line, error_type, error_message FROM reject_errors ORDER BY line, column_idx")
        relation.line_rejects, relation.csv_rejected_records = _csv_structural(file, found)

    relation.after_stage = collect_structural_rejects
    return relation


def _has_table(db: Database, name: str) -> bool:
    return bool(db.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": name}))


def _csv_structural(file: InputFile, rows: list[tuple[Any, ...]]) -> tuple[list[LineReject], list[int]]:
    """CSV records DuckDB's reader refused (one reject per record, its first error), located by record
    number with the quote-aware line scanner, so a quoted newline earlier in the file does not shift them."""
    first_error: dict[int, tuple[str, str]] = {}
    for record_line, error_type, error_message in rows:
        first_error.setdefault(int(record_line) - 1, (str(error_type), str(error_message or error_type)))
    records = sorted(first_error)
    located = locate(file.path, file.compression, np.asarray(records, dtype=np.int64), csv=True)
    rejects = []
    for record in records:
        error_type, error_message = first_error[record]
        reason = "invalid_encoding" if "ENCODING" in error_type else "csv_structure"
        loc = located.get(record)
        detail = error_message.splitlines()[0]
        rejects.append(
            LineReject(
                loc.line_number if loc else None, loc.raw if loc else "", reason, f"{error_type.lower()}: {detail}"
            )
        )
    return rejects, records


def unreadable_relation(line_rejects: list[LineReject] | None = None) -> InputRelation:
    """A relation without records: the file is accounted for by `line_rejects` alone."""
    return InputRelation(
        sql="SELECT NULL::BIGINT _line, NULL::VARCHAR _path, NULL::JSON _json, NULL::VARCHAR _bad, "
        "NULL::JSON _extra WHERE false",
        params={},
        columns=frozenset(),
        locate=None,
        line_rejects=list(line_rejects or []),
    )


def _unreadable(file: InputFile, adapter: Adapter, exc: BaseException) -> InputRelation:
    return unreadable_relation(
        [
            LineReject(
                None, file.head_text()[:2000], "unreadable_file", f"DuckDB could not read the file: {_first_line(exc)}"
            )
        ]
    )


def _parquet(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    reader = "read_parquet($path, file_row_number = true)"
    params: dict[str, Any] = {"path": str(file.path)}
    try:
        described = db.fetchall(f"DESCRIBE SELECT * FROM {reader}", params)
    except duckdb.Error as exc:
        return _unreadable(file, adapter, exc)
    columns = [row[0] for row in described if row[0] != "file_row_number"]
    sql = (
        f"SELECT file_row_number + 1 AS _line, CAST(NULL AS VARCHAR) AS _path, CAST(NULL AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad, * EXCLUDE (file_row_number), "
        f"{_extras_sql(columns, adapter.known_fields | {'file_row_number'})} AS _extra FROM {reader}"
    )
    if "$known" in sql:
        params["known"] = sorted(adapter.known_fields | {"file_row_number"})
    return InputRelation(sql=sql, params=params, columns=frozenset(columns), locate="parquet")
