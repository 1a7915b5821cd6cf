"""Load one file: stage -> check -> set rejects aside -> deduplicate -> insert -> record the batch.

Order of operations for one file (all column-wise SQL; the last four in one transaction):
  1. stage: read the file with DuckDB's reader, map the source's fields onto the target's, type and
     check every field, and keep the first problem of each row (`_stage`, a temp table in file order);
  2. rejects: rows with a problem, and lines the reader refused, go to `rejected_usage` with their
     line number and original text;
  3. dedup within the file: of several rows with one key, the last one wins (an earlier revision
     is `superseded`, an identical copy a duplicate);
  4. dedup against the table: a row whose key is already stored is a duplicate when its content is
     the same, and a restatement otherwise: the old row moves to `revisions`, the new one replaces it;
  5. insert the rest and write the `ingest_batches` row.
Invariant: lines == accepted + duplicates + rejected, checked before commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from finops.ingest import lines
from finops.ingest.adapter import Adapter
from finops.ingest.fields import Problem, Rep, field_sql, first_problem, rep_of
from finops.ingest.files import Format, Gunzipped, InputFile, gunzip
from finops.ingest.readers import InputRelation, LineReject, ReaderRefused, open_input, unreadable_relation
from finops.ingest.report import IngestReport, RejectSample
from finops.ingest.targets import Target
from finops.store.db import Database

__all__ = ["IngestOptions", "ingest_file"]

_PARAM = re.compile(r"\$([a-z_]+)")
SAMPLE_REJECTS = 5


@dataclass(frozen=True)
class IngestOptions:
    """What the user declared about the input."""

    zone: str | None = None  # the zone naive timestamps are in (--timezone)
    fx_rates: dict[str, Decimal] = field(default_factory=dict)  # USD per unit of a currency (--fx-rate)
    now: datetime | None = None  # the ingest time future timestamps are judged against
    max_future_s: int = 86_400
    min_timestamp: str = "2015-01-01"
    # what LiteLLM's prompt_tokens includes of Anthropic-style cache tokens (--litellm-prompt-tokens):
    # auto (told by the numbers), all (reads and writes), reads (reads only), none
    litellm_prompt_tokens: str = "auto"


Watch = Callable[[str], AbstractContextManager[None]]

# what DuckDB's file readers take as a pattern in a path: a file named so is read through a plain-named link
_GLOB = "*?[\\"


def _bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    used = set(_PARAM.findall(sql))
    return {k: v for k, v in params.items() if k in used}


def ingest_file(
    db: Database,
    file: InputFile,
    adapter: Adapter,
    options: IngestOptions,
    *,
    detected: bool = False,
    display_name: str | None = None,
    watch: Watch | None = None,
) -> IngestReport:
    """Ingest one file whole, or not at all; returns its report.

    A gzip file's data is checked first (one zlib pass, nothing written): a sound one is then read as it
    is. A broken one is decompressed into a temporary file: what a cut-off file holds is read and the
    rest rejected, a damaged one is rejected whole (`_gzip_rejects`). So is a gzipped Parquet file, which
    DuckDB cannot read compressed.
    """
    name = display_name or file.display
    if any(c in str(file.path) for c in _GLOB):  # DuckDB's readers would expand it and read other files
        with tempfile.TemporaryDirectory(prefix="finops-ingest-") as tmp:
            link = Path(tmp) / ("input" + "".join(s for s in file.path.suffixes if s[1:].isalnum()))
            link.symlink_to(file.path.resolve())
            literal = dataclasses.replace(file, path=link)
            return ingest_file(db, literal, adapter, options, detected=detected, display_name=name, watch=watch)
    if file.compression != "gzip":
        return _ingest(db, file, adapter, options, detected, name, watch, [])
    if file.format is not Format.PARQUET:
        checked = gunzip(file, None)
        # only a cut-off file of lines has a part worth decompressing; the others' verdict is known now
        if checked.problem is None or checked.corrupt or file.format is Format.JSON:
            return _ingest(db, file, adapter, options, detected, name, watch, _gzip_rejects(checked))
    with tempfile.TemporaryDirectory(prefix="finops-ingest-") as tmp:
        unzipped = gunzip(file, Path(tmp))
        return _ingest(db, unzipped.file, adapter, options, detected, name, watch, _gzip_rejects(unzipped))


def _ingest(
    db: Database,
    file: InputFile,
    adapter: Adapter,
    options: IngestOptions,
    detected: bool,
    name: str,
    watch: Watch | None,
    gzip_rejects: list[LineReject],
) -> IngestReport:
    target = adapter.target_for(file)
    started = datetime.now(UTC)
    report = IngestReport(
        batch_id=0,
        source=adapter.name,
        source_file=name,
        target_table=target.table,
        file_format=file.format.value,
        detected=detected,
        started_at=started,
    )
    params = _params(options, adapter)
    fast = _Fast.NOT_TRIED if gzip_rejects else _load_clean(db, file, adapter, target, params, report, options, watch)
    if fast is _Fast.LOADED:
        return report
    if any(r.line_number is None for r in gzip_rejects):  # nothing of the file can be read
        relation = unreadable_relation()
    else:
        relation = open_input(db, file, adapter, exact=True, csv_refused=fast is _Fast.CSV_REFUSED)
    try:
        relation = _stage(db, relation, file, adapter, target, params, watch)
        with db.transaction():
            report.batch_id = int(db.scalar("SELECT nextval('batch_id_seq')"))
            _set_rejects_aside(db, relation, file, adapter, report, gzip_rejects)
            _load(db, target, adapter.name, report)
            report.finished_at = datetime.now(UTC)
            if not report.balanced:  # a bug, never a user's mistake: refuse to commit
                raise RuntimeError(f"ingest of {file.display} does not balance: {report.as_dict()}")
            _record_batch(db, report, file, options)
    finally:
        relation.close()
        for table in ("_stage", "_skip", "_match"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    return report


def _gzip_rejects(unzipped: Gunzipped) -> list[LineReject]:
    """What a gzip file's data could not give: its incomplete rest (a reject at the line where reading
    stopped, with the text of that line as far as it came), or the whole file (a reject without a line)
    when the data is damaged, or when it is a JSON document or Parquet file, which cannot be read in part."""
    if unzipped.problem is None:
        return []
    file = unzipped.file
    if unzipped.corrupt or file.format in (Format.JSON, Format.PARQUET):
        if unzipped.corrupt:
            why = "no part of the file can be trusted, so none of it was loaded. Fetch or compress the file again"
        else:
            kind = "a JSON document" if file.format is Format.JSON else "a Parquet file"
            why = f"{kind} cannot be read in part, so none of it was loaded. Fetch the file again"
        return [LineReject(None, file.head_text()[:2000], "unreadable_file", f"{unzipped.problem}; {why}")]
    read = f"lines 1 to {unzipped.lines:,} were read" if unzipped.lines else "no line before it"
    return [
        LineReject(
            unzipped.lines + 1,
            unzipped.tail.decode("utf-8", errors="replace"),
            "unreadable_file",
            f"{unzipped.problem}; the file could not be read from this line on ({read}). "
            "Fetch the file again to load the rest",
        )
    ]


# ---------------------------------------------------------------------------------------------- stage


class _Fast(enum.Enum):
    """How the one-pass load went."""

    LOADED = "loaded"
    NOT_TRIED = "not tried"
    NOT_CLEAN = "not clean"
    CSV_REFUSED = "DuckDB's CSV reader refused records"  # the exact path need not ask it again


class _NotClean(Exception):
    """The one-pass load met something only the exact path handles (a bad row, an unreadable line, a
    refused CSV record, a key twice in the file): roll it back and take the exact path."""

    def __init__(self, why: str, outcome: _Fast = _Fast.NOT_CLEAN) -> None:
        super().__init__(why)
        self.outcome = outcome


_NOT_CLEAN = "finops: not a clean file"


def _params(options: IngestOptions, adapter: Adapter) -> dict[str, Any]:
    return {
        "zone": options.zone or adapter.default_zone,
        "now": options.now or datetime.now(UTC),
        "max_future_s": options.max_future_s,
        "min_ts": datetime.fromisoformat(options.min_timestamp).replace(tzinfo=UTC),
        "fx": json.dumps({k.upper(): str(v) for k, v in options.fx_rates.items()}),
        "source": adapter.name,
        "prompt_includes": options.litellm_prompt_tokens,
    }


def _load_clean(
    db: Database,
    file: InputFile,
    adapter: Adapter,
    target: Target,
    params: dict[str, Any],
    report: IngestReport,
    options: IngestOptions,
    watch: Watch | None,
) -> _Fast:
    """The fast path for a clean file: one pass from the reader into the table, no staging copy.

    Any row with a problem stops the statement (`error()`), so the file goes the exact way instead; after
    the insert, rows whose key and content are already stored are deleted again (duplicates) and earlier
    revisions of restated keys move to `revisions`. LOADED when the file was loaded this way.
    """
    relation = open_input(db, file, adapter)
    if relation.line_rejects or relation.exact_only:
        relation.close()
        return _Fast.NOT_CLEAN
    try:
        sql, all_params = _stage_sql(db, relation, file, adapter, target, {**relation.params, **params})
        columns = ", ".join(_q(c) for c in (*target.stored_columns, "extra", "key_hash", "content_hash"))
        insert = (
            f"INSERT INTO {target.table} BY NAME SELECT {columns}, $batch AS batch_id, $source AS source "
            f"FROM ({sql}) WHERE CASE WHEN _reason IS NULL THEN true ELSE error('{_NOT_CLEAN}') END"
        )
        with db.transaction():
            report.batch_id = int(db.scalar("SELECT nextval('batch_id_seq')"))
            try:
                with watch(file.display) if watch else contextlib.nullcontext(), db.insertion_order(False):
                    inserted = db.fetchone(insert, _bind(insert, {**all_params, "batch": report.batch_id}))
            except duckdb.Error as exc:
                raise _NotClean(str(exc)) from None
            if relation.locate == "csv" and db.scalar("SELECT count(*) FROM reject_errors"):
                raise _NotClean("the CSV reader refused records", _Fast.CSV_REFUSED)
            report.lines = int(inserted[0]) if inserted else 0
            _settle_clean(db, target, report)
            report.finished_at = datetime.now(UTC)
            if not report.balanced:
                raise RuntimeError(f"ingest of {file.display} does not balance: {report.as_dict()}")
            _record_batch(db, report, file, options)
    except _NotClean as exc:
        return exc.outcome
    finally:
        relation.close()
        for table in ("_hits", "_pairs"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    return _Fast.LOADED


def _settle_clean(db: Database, target: Target, report: IngestReport) -> None:
    """After a one-pass insert: a key twice in the file sends the file the exact way (the later revision
    must win, and only the file order knows which that is); stored duplicates are deleted again; earlier
    revisions of restated keys move to `revisions`.

    The probe of the stored rows reads one column: `key_hash IN (the batch's keys)` becomes a Bloom filter
    in the scan (DuckDB's join filter pushdown), so only the rows it lets through (the batch's own, the
    stored matches, a few false positives) are materialised with their rowid and content hash. A filter on
    `batch_id` in that scan stops the pushdown (3-6x slower), hence the batch's own rows are dropped after
    an `OFFSET 0`, which keeps the filter out of the scan. Issue 2: 100k new rows against 10M stored ones,
    a join of every stored rowid/key/content took 0.8-1.4 s, this probe 0.1-0.2 s. Into a table holding
    nothing else, there is nothing to probe.
    """
    table, key, batch = target.table, _q(target.key_column), {"b": report.batch_id}
    twice = db.scalar(
        f"SELECT count(*) FROM (SELECT key_hash FROM {table} WHERE batch_id = $b GROUP BY key_hash "
        "HAVING count(*) > 1)",
        batch,
    )
    if twice:
        raise _NotClean("a key appears twice in the file")
    same = restated = 0
    if db.fetchone(f"SELECT 1 FROM {table} WHERE batch_id <> $b LIMIT 1", batch):
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _hits AS
            SELECT row, key_hash, content_hash FROM (
                SELECT rowid AS row, key_hash, content_hash, batch_id FROM {table}
                WHERE key_hash IN (SELECT key_hash FROM {table} WHERE batch_id = $b) OFFSET 0)
            WHERE batch_id <> $b""",
            batch,
        )
        if db.scalar("SELECT count(*) FROM _hits"):
            db.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _pairs AS
                SELECT n.rowid AS nrow, o.row AS orow, n.content_hash = o.content_hash AS same
                FROM (SELECT rowid, key_hash, content_hash FROM {table} WHERE batch_id = $b) n
                JOIN _hits o USING (key_hash)""",
                batch,
            )
            counts = db.fetchone("SELECT count(*) FILTER (same), count(*) FILTER (NOT same) FROM _pairs")
            same, restated = counts or (0, 0)
    if same:
        db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT nrow FROM _pairs WHERE same)")
    if restated:
        db.execute(
            f"""INSERT INTO revisions SELECT $table, t.source, CAST(t.{key} AS VARCHAR), t.batch_id, $b, now(),
                to_json(t) FROM {table} t WHERE t.rowid IN (SELECT orow FROM _pairs WHERE NOT same)""",
            {**batch, "table": table},
        )
        db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT orow FROM _pairs WHERE NOT same)")
    report.duplicates = int(same)
    report.restated = int(restated)
    report.accepted = report.lines - report.duplicates


def _stage(
    db: Database,
    relation: InputRelation,
    file: InputFile,
    adapter: Adapter,
    target: Target,
    params: dict[str, Any],
    watch: Watch | None,
) -> InputRelation:
    """Create `_stage`: typed canonical columns, `_reason`/`_message` of the first problem, keys."""
    while True:
        sql, all_params = _stage_sql(db, relation, file, adapter, target, {**relation.params, **params})
        try:
            with watch(file.display) if watch else contextlib.nullcontext(), db.insertion_order(True):
                db.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {sql}", _bind(sql, all_params))
            if relation.after_stage:
                relation.after_stage()
            return relation
        except (duckdb.Error, ReaderRefused):
            if relation.fallback is None:
                raise
            relation.close()
            relation = relation.fallback()


def _stage_sql(
    db: Database, relation: InputRelation, file: InputFile, adapter: Adapter, target: Target, params: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    mapping = dict(adapter.mapping(file.format, relation.columns))
    if adapter.choose_target is not None:  # one mapping serves each target it chooses: keep the chosen one's
        mapping = {name: expr for name, expr in mapping.items() if name in target.field_names}
    unknown = set(mapping) - set(target.field_names)
    if unknown:
        raise ValueError(f"adapter {adapter.name} maps unknown fields {sorted(unknown)} of {target.table}")
    raw_cols = ", ".join(f'{expr} AS "{name}__raw"' for name, expr in mapping.items())
    head = f"SELECT _line, _path, _json, _bad, _extra{', ' + raw_cols if raw_cols else ''} FROM "
    layer1, probe = f"{head}({relation.sql})", f"{head}({relation.probe_sql or relation.sql})"
    types = {row[0]: row[1] for row in db.fetchall(f"DESCRIBE {probe}", _bind(probe, params))}

    helpers: list[str] = []
    values: list[str] = []
    problems = []
    for f in target.fields:
        raw = f'"{f.name}__raw"'
        rep = rep_of(types[f"{f.name}__raw"]) if f.name in mapping else Rep.NULL
        label = _input_label(mapping.get(f.name), f.name, adapter.labels.get(f.name))
        built = field_sql(f, raw if f.name in mapping else "NULL", rep, label)
        helpers += [f'{expr} AS "{name}"' for name, expr in built.helpers]
        values.append(f'{built.value} AS "{f.name}"')
        problems += built.problems
    record_problem = Problem("_bad IS NOT NULL", "unexpected_shape", "_bad")
    field_case = first_problem([record_problem, *problems])
    invariant_case = first_problem(target.invariants)
    derived = dict(target.derived)
    stored = [f'{derived.get(c, _q(c))} AS "{c}"' for c in target.stored_columns]
    key = _q(target.key_column)
    content = ", ".join(_q(c) for c in target.stored_columns) + ", extra"
    sql = f"""
    WITH l1 AS ({layer1}),
    l2 AS (SELECT *{", " + ", ".join(helpers) if helpers else ""} FROM l1),
    l3 AS (SELECT _line, _path, _json, _extra, {", ".join(values)}, {field_case} AS _fp FROM l2),
    l4 AS (SELECT *, COALESCE(_fp, {invariant_case}) AS _p FROM l3),
    l5 AS (SELECT _line, _path, CASE WHEN _p IS NOT NULL THEN CAST(_json AS VARCHAR) END AS _raw,
                  _p.reason AS _reason, _p.message AS _message, {", ".join(stored)}, _extra AS extra FROM l4)
    SELECT *,
        -- 126 bits: two 64-bit hashes, the high one shifted right 2, so a key fits DECIMAL(38,0) in Arrow
        (CAST(hash($source, {key}) >> 2 AS UHUGEINT) << 64) | CAST(hash({key}, $source) AS UHUGEINT) AS key_hash,
        hash({content}) AS content_hash
    FROM l5"""
    return sql, params


_COLUMN_REF = re.compile(r'^"([^"]+)"$')
_JSON_PATH = re.compile(r"^json_extract(?:_string)?\(\"([^\"]+)\", '\$\.([A-Za-z0-9_.]+)'\)$")


def _input_label(expr: str | None, name: str, declared: str | None = None) -> str:
    """How the input names a field: `cost_usd` for `"cost_usd"`, `metadata.team` for a JSON path; for a
    computed field, the name its adapter declares (`declared`), else the canonical name."""
    if expr is None:
        return name
    if m := _COLUMN_REF.match(expr):
        return m[1]
    if m := _JSON_PATH.match(expr):
        return f"{m[1]}.{m[2]}"
    return declared or name


def _q(name: str) -> str:
    return '"' + name + '"'


# -------------------------------------------------------------------------------------------- rejects


def _set_rejects_aside(
    db: Database,
    relation: InputRelation,
    file: InputFile,
    adapter: Adapter,
    report: IngestReport,
    more_rejects: list[LineReject],
) -> None:
    staged, bad = db.fetchone("SELECT count(*), count(_reason) FROM _stage") or (0, 0)
    # DuckDB's messages name the file it read, which may be a temporary copy (a decompressed file, a push)
    line_rejects = [
        dataclasses.replace(r, message=r.message.replace(str(file.path), report.source_file))
        for r in [*relation.line_rejects, *more_rejects]
    ]
    report.lines = int(staged) + len(line_rejects)
    report.rejected = int(bad) + len(line_rejects)
    base = {"batch_id": report.batch_id, "source": adapter.name, "source_file": report.source_file}
    if line_rejects:
        _insert_line_rejects(db, line_rejects, base)
    if bad:
        _insert_record_rejects(db, relation, file, base)
    if report.rejected:
        rows = db.fetchall(
            "SELECT reason, count(*) FROM rejected_usage WHERE batch_id = $b GROUP BY reason", {"b": report.batch_id}
        )
        report.rejected_by_reason = {r: int(n) for r, n in rows}
        report.samples = [
            RejectSample(line, path, reason, message)
            for line, path, reason, message in db.fetchall(
                "SELECT line_number, record_path, reason, message FROM rejected_usage WHERE batch_id = $b "
                "ORDER BY line_number NULLS FIRST LIMIT $n",
                {"b": report.batch_id, "n": SAMPLE_REJECTS},
            )
        ]


def _insert_line_rejects(db: Database, rejects: list[LineReject], base: dict[str, Any]) -> None:
    table = pa.table(
        {
            "line_number": pa.array([r.line_number for r in rejects], pa.int64()),
            "raw": pa.array([r.raw for r in rejects], pa.string()),
            "reason": pa.array([r.reason for r in rejects], pa.string()),
            "message": pa.array([r.message for r in rejects], pa.string()),
        }
    )
    with _registered(db, "_line_rejects", table):
        db.execute(
            "INSERT INTO rejected_usage SELECT $batch_id, $source, $source_file, line_number, NULL, raw, reason, "
            "message, now() FROM _line_rejects",
            base,
        )


def _insert_record_rejects(db: Database, relation: InputRelation, file: InputFile, base: dict[str, Any]) -> None:
    if relation.locate in ("jsonl", "csv"):
        ordinals = np.asarray(
            [r[0] for r in db.fetchall("SELECT rowid FROM _stage WHERE _reason IS NOT NULL ORDER BY rowid")],
            dtype=np.int64,
        )
        csv = relation.locate == "csv"
        records = _csv_record_numbers(ordinals, relation.csv_rejected_records) if csv else ordinals
        if relation.locator is not None:
            located = relation.locator(records)
        else:
            located = lines.locate(file.path, file.compression, records, csv=csv)
        table = pa.table(
            {
                "ordinal": pa.array(ordinals),
                "line_number": pa.array(
                    [located[int(r)].line_number if int(r) in located else None for r in records], pa.int64()
                ),
                "raw": pa.array([located[int(r)].raw if int(r) in located else None for r in records], pa.string()),
            }
        )
        with _registered(db, "_located", table):
            db.execute(
                "INSERT INTO rejected_usage SELECT $batch_id, $source, $source_file, l.line_number, s._path, "
                "COALESCE(s._raw, l.raw), s._reason, s._message, now() "
                "FROM _stage s JOIN _located l ON s.rowid = l.ordinal",
                base,
            )
        return
    if relation.locate == "parquet":
        db.execute(
            "INSERT INTO rejected_usage SELECT $batch_id, $source, $source_file, s._line, s._path, p.raw, "
            "s._reason, s._message, now() FROM _stage s "
            "JOIN (SELECT file_row_number + 1 AS _row, "
            "      CAST(to_json(struct_pack(*COLUMNS(lambda c: c <> 'file_row_number'))) AS VARCHAR) AS raw "
            "      FROM read_parquet($path, file_row_number = true)) p ON p._row = s._line "
            "WHERE s._reason IS NOT NULL",
            {**base, "path": str(file.path)},
        )
        return
    db.execute(
        "INSERT INTO rejected_usage SELECT $batch_id, $source, $source_file, _line, _path, _raw, _reason, _message, "
        "now() FROM _stage WHERE _reason IS NOT NULL",
        base,
    )


def _csv_record_numbers(ordinals: np.ndarray, structural: list[int]) -> np.ndarray:
    """Record numbers (0-based, header = 0) of staged CSV rows, skipping records the reader refused."""
    records = ordinals + 1
    for refused in sorted(structural):
        records = np.where(records >= refused, records + 1, records)
    return records


@contextlib.contextmanager
def _registered(db: Database, name: str, table: pa.Table) -> Iterator[None]:
    db.con.register(name, table)
    try:
        yield
    finally:
        db.con.unregister(name)


# ----------------------------------------------------------------------------------------------- load


def _load(db: Database, target: Target, source: str, report: IngestReport) -> None:
    table, key = target.table, _q(target.key_column)
    # within the file: the last row of a key wins
    db.execute("""
        CREATE OR REPLACE TEMP TABLE _skip AS
        WITH dup AS (SELECT key_hash, max(rowid) AS last_row FROM _stage WHERE _reason IS NULL
                     GROUP BY key_hash HAVING count(*) > 1),
             winner AS (SELECT d.key_hash, d.last_row, s.content_hash FROM dup d JOIN _stage s ON s.rowid = d.last_row)
        SELECT s.rowid AS srow, s.content_hash <> w.content_hash AS superseded
        FROM _stage s JOIN winner w ON s.key_hash = w.key_hash
        WHERE s._reason IS NULL AND s.rowid <> w.last_row""")
    # against what is stored: same key and content is a duplicate, new content a restatement
    db.execute(f"""
        CREATE OR REPLACE TEMP TABLE _match AS
        SELECT s.rowid AS srow, t.rowid AS trow, s.content_hash = t.content_hash AS same
        FROM (SELECT rowid, key_hash, content_hash FROM _stage WHERE _reason IS NULL
              AND rowid NOT IN (SELECT srow FROM _skip)) s
        JOIN {table} t ON t.key_hash = s.key_hash""")
    skipped, superseded = db.fetchone("SELECT count(*), count(*) FILTER (superseded) FROM _skip") or (0, 0)
    same, restated = db.fetchone("SELECT count(*) FILTER (same), count(*) FILTER (NOT same) FROM _match") or (0, 0)
    if restated:
        db.execute(
            f"""
            INSERT INTO revisions SELECT $table, t.source, CAST(t.{key} AS VARCHAR), t.batch_id, $batch, now(),
                to_json(t) FROM {table} t WHERE t.rowid IN (SELECT trow FROM _match WHERE NOT same)""",
            {"table": table, "batch": report.batch_id},
        )
        db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT trow FROM _match WHERE NOT same)")
    columns = ", ".join(_q(c) for c in target.stored_columns)
    with db.insertion_order(False):
        inserted = db.fetchone(
            f"""
            INSERT INTO {table} BY NAME
            SELECT {columns}, extra, key_hash, content_hash, $batch AS batch_id, $source AS source FROM _stage
            WHERE _reason IS NULL
              AND rowid NOT IN (SELECT srow FROM _skip)
              AND rowid NOT IN (SELECT srow FROM _match WHERE same)""",
            {"batch": report.batch_id, "source": source},
        )
    report.accepted = int(inserted[0]) if inserted else 0
    report.duplicates = int(skipped) + int(same)
    report.superseded = int(superseded)
    report.restated = int(restated)


def _record_batch(db: Database, report: IngestReport, file: InputFile, options: IngestOptions) -> None:
    opts = {"timezone": options.zone, "fx_rates": {k: str(v) for k, v in options.fx_rates.items()} or None}
    db.execute(
        """INSERT INTO ingest_batches VALUES ($batch_id, $source, $source_file, $fmt, $bytes, $detected, $target,
           $lines, $accepted, $duplicates, $rejected, $restated, $superseded, $started, $finished, $options)""",
        {
            "batch_id": report.batch_id,
            "source": report.source,
            "source_file": report.source_file,
            "fmt": report.file_format,
            "bytes": file.size,
            "detected": report.detected,
            "target": report.target_table,
            "lines": report.lines,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "restated": report.restated,
            "superseded": report.superseded,
            "started": report.started_at,
            "finished": report.finished_at,
            "options": json.dumps({k: v for k, v in opts.items() if v}),
        },
    )
