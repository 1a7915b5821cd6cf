"""Turn one input file into an *input relation*: one row per record, in file order.

Every input relation has the columns

    _line   BIGINT   physical line (JSONL dirty path, Parquet row), or NULL until located
    _path   VARCHAR  where in a JSON document the record stood, e.g. [3] or data[0].results[2]
    _json   JSON     the record's JSON text (JSON inputs), kept for rejects
    _bad    VARCHAR  a record-level problem found while reading (not an object, not a page ...)
    _extra  JSON     input keys the adapter does not know, kept rather than dropped

plus one column per input key. DuckDB's own readers do the parsing; a JSONL file DuckDB refuses
(a broken line, a bad byte, a BOM) is read line by line with numpy so that every other line still
loads and the broken ones become rejects with their line number and text. So is a CSV file whose
records DuckDB's reader refuses or whose quoting it cannot sniff: `lines.write_csv_records` splits it
into records (setting lines with broken quoting aside) and DuckDB reads those, one per line.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format, InputFile
from finops.ingest.lines import CsvRecords, Located, iter_lines, locate, write_csv_records
from finops.store.db import Database

__all__ = ["InputRelation", "LineReject", "ReaderRefused", "header_delimiter", "open_input", "unreadable_relation"]

_counter = itertools.count()


@dataclass(frozen=True)
class LineReject:
    """A line rejected before it became a record (bad JSON, bad encoding, bad CSV structure)."""

    line_number: int | None
    raw: str
    reason: str
    message: str


class ReaderRefused(Exception):
    """DuckDB's reader read the file, but not the way ingest can account for it: take the fallback."""


@dataclass
class InputRelation:
    sql: str
    params: dict[str, Any]
    columns: frozenset[str]
    locate: str | None  # how rejects find their line and text afterwards: "jsonl" | "csv" | None
    # a slower, line-by-line reading to use when DuckDB's reader refuses the file
    fallback: Callable[[], InputRelation] | None = None
    # runs once the stage is built (CSV: collect the records the reader refused); may raise ReaderRefused
    after_stage: Callable[[], None] | None = None
    line_rejects: list[LineReject] = field(default_factory=list)
    csv_rejected_records: list[int] = field(default_factory=list)  # 0-based record numbers (incl. header)
    # CSV: the line and text of records by 0-based record number (incl. header), when not found by `locate`
    locator: Callable[[np.ndarray], dict[int, Located]] | None = None
    # only the exact (staged) path can read this file: the one-pass load is not tried
    exact_only: bool = False
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    # the same columns and types without reading the file (no rows): what the stage DESCRIBEs, when a reader
    # knows its types already (DuckDB's JSON reader samples the file again at every bind)
    probe_sql: str | None = None

    def close(self) -> None:
        for fn in self.cleanup:
            fn()


def open_input(
    db: Database, file: InputFile, adapter: Adapter, *, exact: bool = False, csv_refused: bool = False
) -> InputRelation:
    """The input relation of `file` as `adapter` reads it; `exact` for the staged path, which locates every
    reject (a reading only that path can use is not prepared for the one-pass load); `csv_refused` when
    DuckDB's CSV reader is known to refuse records of the file."""
    if file.format is Format.JSONL:
        return _jsonl(db, file, adapter)
    if file.format is Format.JSON:
        return _json_documents(db, file, adapter)
    if file.format is Format.CSV:
        return _csv_records(db, file, adapter) if csv_refused else _csv(db, file, adapter, exact=exact)
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
        described = db.fetchall(f"DESCRIBE SELECT * FROM {_SHALLOW}", {"path": str(file.path)})
    except duckdb.Error:
        return None
    keys = [row[0] for row in described]
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
    select = (
        "SELECT CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _path, CAST(NULL AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad, {', '.join(columns)}, {extra} AS _extra FROM "
    )
    # the reader's columns as the DESCRIBE above typed them, no rows: the stage describes this instead of
    # binding `read_json` (a sample of the file) once more
    typed = ", ".join(f"CAST(NULL AS {kind}) AS {_ident(key)}" for key, kind, *_ in described)
    return InputRelation(
        sql=select + _SHALLOW,
        params={"path": str(file.path)},
        columns=frozenset(adapter.input_fields),
        locate="jsonl",
        fallback=lambda: _jsonl_objects(db, file, adapter),
        probe_sql=f"{select}(SELECT {typed} WHERE false)",
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


_RFC4180 = "quote = '\"', escape = '\"'"


def _csv(db: Database, file: InputFile, adapter: Adapter, *, exact: bool) -> InputRelation:
    """CSV through DuckDB's reader, quoting as RFC 4180 has it (double quotes, doubled inside).

    The reader sniffs the delimiter. One broken quote in its sample makes the sniff fail, or take the
    whole header for one column: then, and when the reader refuses any record (a broken quote later on, a
    wrong number of columns, a bad byte), the file is read by records (`_csv_records`), which gives every
    rejected line its number and text; DuckDB's reader resynchronises after a broken quote on its own terms,
    which no line scan can follow."""
    reader = f"read_csv($path, header = true, all_varchar = true, store_rejects = true, {_RFC4180})"
    params: dict[str, Any] = {"path": str(file.path)}
    try:
        described = db.fetchall(f"DESCRIBE SELECT * FROM {reader}", params)
    except duckdb.Error as exc:
        if b"\0" in file.head:  # not text: no line of it would make sense
            return _unreadable(file, adapter, exc)
        return _csv_records(db, file, adapter) if exact else _exact_only()
    columns = [row[0] for row in described]
    if len(columns) == 1 and any(d in columns[0] for d in _DELIMITERS):  # the sniff gave up on the quoting
        return _csv_records(db, file, adapter) if exact else _exact_only()
    _clear_csv_rejects(db)
    sql = _csv_select(columns, adapter, reader, params)

    delimiter = header_delimiter(file, len(columns)).encode()

    def refuse_if_records_refused() -> None:
        if db.scalar("SELECT count(*) FROM reject_errors"):
            raise ReaderRefused("DuckDB's CSV reader refused records")

    def locate_records(records: np.ndarray) -> dict[int, Located]:
        return locate(file.path, file.compression, records, csv=True, delimiter=delimiter)

    return InputRelation(
        sql=sql,
        params=params,
        columns=frozenset(columns),
        locate="csv",
        fallback=lambda: _csv_records(db, file, adapter),
        after_stage=refuse_if_records_refused,
        locator=locate_records,
    )


_DELIMITERS = (",", "\t", ";", "|")


def _exact_only() -> InputRelation:
    return dataclasses.replace(unreadable_relation(), exact_only=True)


def _csv_select(columns: list[str], adapter: Adapter, reader: str, params: dict[str, Any]) -> str:
    """The staging SELECT over a CSV `reader`: the record's columns and its unknown ones gathered in `_extra`
    (adding the `$known` parameter to `params` when that needs it)."""
    sql = (
        f"SELECT CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _path, CAST(NULL AS JSON) AS _json, "
        f"CAST(NULL AS VARCHAR) AS _bad, *, {_extras_sql(columns, adapter.known_fields)} AS _extra FROM {reader}"
    )
    if "$known" in sql:
        params["known"] = sorted(adapter.known_fields)
    return sql


def _clear_csv_rejects(db: Database) -> None:
    for table in ("reject_errors", "reject_scans"):
        if _has_table(db, table):
            db.execute(f"DELETE FROM {table}")


def _has_table(db: Database, name: str) -> bool:
    return bool(db.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": name}))


def header_delimiter(file: InputFile, columns: int | None = None) -> str:
    """The delimiter of the header line: the one that splits it into `columns` fields (as DuckDB's reader
    read it), else the one it has most of outside quotes (a comma when it has none)."""
    header = re.sub(r'"(?:[^"]|"")*"', "", file.head_text().split("\n", 1)[0])
    for candidate in _DELIMITERS:
        if columns is not None and columns > 1 and header.count(candidate) == columns - 1:
            return candidate
    return max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","


_BROKEN_QUOTE = {
    True: "a quoted field that starts on this line is never closed (an unterminated quote)",
    False: "a quoted field that starts on this line is closed by a quote followed by more text (an unterminated "
    "quote, or a quote inside a quoted field that is not doubled)",
}


def _csv_records(db: Database, file: InputFile, adapter: Adapter) -> InputRelation:
    """CSV split into records by `lines.write_csv_records` (one per line in a temporary file, lines with
    broken quoting set aside as rejects), read by DuckDB with the dialect fixed: every record it reads or
    refuses is one of ours, so its line and text are known."""
    delimiter = header_delimiter(file)
    fd, name = tempfile.mkstemp(prefix="finops-records-", suffix=".csv")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            records = write_csv_records(file.path, file.compression, delimiter.encode(), out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    broken = [
        LineReject(
            b.line_number,
            b.raw,
            "csv_structure",
            f"{_BROKEN_QUOTE[b.unclosed]}; expected RFC 4180 quoting (a field in double quotes, a quote inside "
            "it doubled). This line is set aside and reading goes on at the next line",
        )
        for b in records.broken
    ]
    if broken and (len(records) == 0 or broken[0].line_number < records.line_numbers[0]):
        temp.unlink(missing_ok=True)
        return unreadable_relation(
            [
                LineReject(
                    None,
                    file.head_text()[:2000],
                    "unreadable_file",
                    f"the header line is broken: {_BROKEN_QUOTE[records.broken[0].unclosed]}; "
                    "without a header no record can be read",
                )
            ]
        )
    if len(records) == 0:  # nothing but blank lines
        temp.unlink(missing_ok=True)
        return unreadable_relation()
    columns = _header_names(_record_text(temp, records, 0), delimiter)
    struct = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in columns) + "}"
    reader = (
        "read_csv($path, header = true, all_varchar = true, store_rejects = true, auto_detect = false, "
        f"delim = {_literal(delimiter)}, {_RFC4180}, new_line = '\\n', columns = {struct})"
    )
    params: dict[str, Any] = {"path": str(temp)}
    _clear_csv_rejects(db)
    sql = _csv_select(columns, adapter, reader, params)

    def located(wanted: np.ndarray) -> dict[int, Located]:
        found = {}
        with open(temp, "rb") as fh:
            for record in np.unique(wanted):
                if 0 <= record < len(records):
                    found[int(record)] = Located(
                        int(records.line_numbers[record]), _record_text(temp, records, int(record), fh)
                    )
        return found

    relation = InputRelation(
        sql=sql,
        params=params,
        columns=frozenset(columns),
        locate="csv",
        line_rejects=list(broken),
        locator=located,
        cleanup=[lambda: temp.unlink(missing_ok=True)],
    )

    def collect_refused_records() -> None:
        found = db.fetchall("SELECT line, error_type, error_message FROM reject_errors ORDER BY line, column_idx")
        refused, relation.csv_rejected_records = _csv_structural(found, located)
        relation.line_rejects = broken + refused

    relation.after_stage = collect_refused_records
    return relation


def _record_text(path: Path, records: CsvRecords, i: int, fh: Any = None) -> str:
    """The text of written record `i` (0 = the header)."""
    start = int(records.ends[i - 1]) + 1 if i else 0
    with open(path, "rb") if fh is None else contextlib.nullcontext(fh) as source:
        source.seek(start)
        data = source.read(int(records.ends[i]) - start)
    return str(data.decode("utf-8", errors="replace"))


def _header_names(header: str, delimiter: str) -> list[str]:
    """Column names from the header record, as DuckDB's reader names them: trimmed, `column<i>` for an
    empty one, a repeated name (in any case) suffixed `_1`, `_2` ..."""
    fields = next(csv.reader(io.StringIO(header, newline=""), delimiter=delimiter, quotechar='"', strict=False), [])
    names: list[str] = []
    taken: set[str] = set()
    count: dict[str, int] = {}
    for i, raw in enumerate(fields):
        name = raw.strip() or f"column{i}"
        base = name
        while name.lower() in taken:
            count[base.lower()] = count.get(base.lower(), 0) + 1
            name = f"{base}_{count[base.lower()]}"
        count.setdefault(base.lower(), 0)
        taken.add(name.lower())
        names.append(name)
    return names


def _csv_structural(
    rows: list[tuple[Any, ...]], located: Callable[[np.ndarray], dict[int, Located]]
) -> tuple[list[LineReject], list[int]]:
    """CSV records DuckDB's reader refused (one reject per record, its first error), with the line and text
    `located` gives them by record number."""
    first_error: dict[int, tuple[str, str]] = {}
    for record_line, error_type, error_message in rows:
        first_error.setdefault(int(record_line) - 1, (str(error_type), str(error_message or error_type)))
    records = sorted(first_error)
    found = located(np.asarray(records, dtype=np.int64))
    rejects = []
    for record in records:
        error_type, error_message = first_error[record]
        reason = "invalid_encoding" if "ENCODING" in error_type else "csv_structure"
        loc = found.get(record)
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
