"""Write one export with DuckDB's `COPY (SELECT ...) TO`: a CSV or Parquet file, or a day-partitioned lake.

A file is written beside its target under a hidden temporary name and renamed into place, so a failed
export leaves nothing half-written and `--overwrite` replaces the old file in one step.

A lake (`--partition-by-day`) is a directory of Hive partitions `charge_day=YYYY-MM-DD/data_N.parquet` with a
`_finops_lake.json` manifest (its grain and teams). Re-exporting a range replaces exactly the partitions of
the days in that range, in four steps:
  1. COPY the rows into a hidden staging directory inside the lake (same file system: renames are atomic);
  2. move each old partition of the range aside into a hidden trash directory;
  3. rename each staged partition into place (a day that has no rows any more keeps no partition);
  4. write the manifest, then delete the trash and the staging directory.
Partitions outside the range are not touched; readers (Spark, Trino, DuckDB) skip `_` and `.` entries.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from finops.errors import FileProblem
from finops.export.select import Selection, SpendFilter
from finops.store.db import Database

__all__ = ["LAKE_MANIFEST", "Written", "write_file", "write_lake"]

LAKE_MANIFEST = "_finops_lake.json"
_PARTITION_PREFIX = "charge_day="
_CSV_OPTIONS = "FORMAT csv, HEADER true, DELIMITER ',', TIMESTAMP_FORMAT '%Y-%m-%dT%H:%M:%S.%fZ'"


@dataclass(frozen=True)
class Written:
    """What an export wrote."""

    rows: int
    path: Path
    partitions_written: tuple[date, ...] = ()
    partitions_removed: tuple[date, ...] = ()  # days of the range whose old partition now has no rows


def write_file(db: Database, selection: Selection, out: Path, *, file_format: str, overwrite: bool) -> Written:
    """One CSV (gzip when `out` ends in .gz) or Parquet file at `out`."""
    target = check_file_target(out, overwrite=overwrite)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    if file_format == "csv":
        options = f"{_CSV_OPTIONS}, COMPRESSION {'gzip' if out.name.endswith('.gz') else 'none'}"
    else:
        options = "FORMAT parquet"
    try:
        rows = _copy(db, selection, temporary, options, out=out)
        os.replace(temporary, target)
    except OSError as exc:
        raise FileProblem(f"Could not write --out {out}: {exc.strerror or exc}.", path=str(out)) from None
    finally:
        temporary.unlink(missing_ok=True)
    return Written(rows=rows, path=out)


def check_file_target(out: Path, *, overwrite: bool) -> Path:
    """The file to write for `out`: its directory exists, and it is not a directory, nor a file unless
    overwriting; a symbolic link is written through (its target is replaced, the link kept), and what is
    not a regular file (a pipe, a device) is refused, since the export is written aside and renamed."""
    if out.is_dir():
        raise FileProblem(f"--out {out} is a directory; expected the path of a file to write.", path=str(out))
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    if not target.parent.is_dir():
        raise FileProblem(
            f"--out {out}: the directory {target.parent} does not exist; create it first or choose another path.",
            path=str(out),
        )
    if target.exists() and not overwrite:
        raise FileProblem(
            f"--out {out} already exists; pass --overwrite to replace it, or choose another path.", path=str(out)
        )
    if target.exists() and not target.is_file():
        raise FileProblem(
            f"--out {out} is not a regular file (a pipe, a device or a socket); expected the path of a file: "
            "the export is written next to it and renamed into place.",
            path=str(out),
        )
    return target


def write_lake(
    db: Database, selection: Selection, out: Path, *, manifest: dict[str, Any], spend_filter: SpendFilter
) -> Written:
    """Replace the day partitions of `spend_filter`'s range in the lake at `out` (created if missing)."""
    check_lake_target(out, manifest)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise FileProblem(f"Could not create the lake directory {out}: {exc.strerror or exc}.", path=str(out)) from None
    token = uuid.uuid4().hex[:12]
    staging, trash = out / f".staging-{token}", out / f".trash-{token}"
    try:
        rows = _copy(db, selection, staging, "FORMAT parquet, PARTITION_BY (charge_day)", out=out)
        new = _partitions(staging) if staging.is_dir() else {}
        old = {day: path for day, path in _partitions(out).items() if _in_range(day, spend_filter)}
        trash.mkdir()
        for path in old.values():
            path.rename(trash / path.name)
        for _, path in sorted(new.items()):
            path.rename(out / path.name)
        _write_manifest(out, manifest)
        shutil.rmtree(trash)
    except OSError as exc:
        kept = f"; the partitions it had moved aside are in {trash}" if trash.is_dir() else ""
        raise FileProblem(f"Could not replace the partitions of lake {out}: {exc}{kept}.", path=str(out)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    removed = tuple(sorted(set(old) - set(new)))
    return Written(rows=rows, path=out, partitions_written=tuple(sorted(new)), partitions_removed=removed)


def check_lake_target(out: Path, manifest: dict[str, Any]) -> None:
    """`out` is a new directory, an empty one, or a finops lake written with the same grain and teams."""
    if out.exists() and not out.is_dir():
        raise FileProblem(
            f"--out {out} is a file; --partition-by-day writes a directory (a Parquet lake).", path=str(out)
        )
    if not out.exists():
        if not out.parent.is_dir():
            raise FileProblem(
                f"--out {out}: the directory {out.parent} does not exist; create it first or choose another path.",
                path=str(out),
            )
        return
    manifest_path = out / LAKE_MANIFEST
    if not manifest_path.is_file():
        if any(out.iterdir()):
            raise FileProblem(
                f"--out {out} is a directory that is not a finops lake (it has no {LAKE_MANIFEST}); "
                "choose a new or empty directory.",
                path=str(out),
            )
        return
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileProblem(f"{manifest_path} could not be read ({exc}); it is not a finops lake manifest.") from None
    for key, name in (("grain", "--grain"), ("teams", "--team")):
        if existing.get(key) != manifest[key]:
            raise FileProblem(
                f"--out {out} holds a lake of {name} {_describe(existing.get(key))}, and this export is "
                f"{name} {_describe(manifest[key])}; write it to another directory.",
                path=str(out),
            )


def _describe(value: Any) -> str:
    if value is None:
        return "(every team)"
    return ", ".join(value) if isinstance(value, list) else str(value)


def _copy(db: Database, selection: Selection, target: Path, options: str, *, out: Path) -> int:
    # the path is the user's own, given on the command line; it is quoted as a SQL string, and the
    # filter values travel as parameters
    literal = "'" + str(target).replace("'", "''") + "'"
    try:
        result = db.fetchone(f"COPY ({selection.sql}) TO {literal} ({options})", selection.params)
    except duckdb.IOException as exc:  # the directory is not writable, the disk is full, ...
        first_line = str(exc).splitlines()[0]
        raise FileProblem(f"Could not write --out {out}: {first_line}", path=str(out)) from None
    return int(result[0]) if result else 0


def _partitions(directory: Path) -> dict[date, Path]:
    found = {}
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name.startswith(_PARTITION_PREFIX):
            try:
                found[date.fromisoformat(entry.name.removeprefix(_PARTITION_PREFIX))] = entry
            except ValueError:
                continue  # not one of ours: left alone
    return found


def _in_range(day: date, spend_filter: SpendFilter) -> bool:
    return (spend_filter.start is None or day >= spend_filter.start) and (
        spend_filter.end is None or day < spend_filter.end
    )


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    temporary = out / f".{LAKE_MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, out / LAKE_MANIFEST)
