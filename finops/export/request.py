"""What one `finops export` asks for, checked: each mistake is one sentence naming the option."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal, cast

from finops.errors import InputError
from finops.export.select import Grain, SpendFilter

__all__ = ["FORMATS", "GRAINS", "ExportRequest", "parse_request"]

Format = Literal["csv", "parquet", "focus"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "focus")
GRAINS = ("line", "daily")
# a file named for the other format is a mistake (a CSV called .parquet breaks every reader)
_WRONG_SUFFIXES = {"csv": (".parquet",), "parquet": (".csv", ".csv.gz")}
_FOCUS_SUFFIXES: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class ExportRequest:
    format: Format
    out: Path
    spend_filter: SpendFilter
    grain: Grain  # "focus" for a FOCUS export (always daily)
    file_format: Literal["csv", "parquet"]  # what is written: a FOCUS export by the suffix of --out
    partition_by_day: bool = False
    overwrite: bool = False


def parse_request(
    *,
    fmt: str | None,
    out: Path | None,
    start: str | None = None,
    end: str | None = None,
    teams: Iterable[str] = (),
    grain: str | None = None,
    partition_by_day: bool = False,
    overwrite: bool = False,
) -> ExportRequest:
    """Check the options of one export and resolve the defaults (grain `line`; FOCUS: daily, by suffix)."""
    if fmt is None:
        raise InputError(f"--format is missing; expected one of: {', '.join(FORMATS)}.")
    if out is None:
        raise InputError(
            "--out is missing; expected the path of the file (or, with --partition-by-day, the lake) to write."
        )
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format '{fmt}'. Valid formats are: {', '.join(FORMATS)}.")
    if grain is not None and grain not in GRAINS:
        raise InputError(f"Unknown grain '{grain}'. Valid grains are: {', '.join(GRAINS)}.")
    first, last = _day("--start", start), _day("--end", end)
    if first is not None and last is not None and last <= first:
        raise InputError(
            f"--end {last} is not after --start {first}; the range is the UTC days from --start up to, "
            "but not including, --end."
        )
    team_list = tuple(dict.fromkeys(t for t in teams))
    if any(not t.strip() for t in team_list):
        raise InputError("--team '' is empty; expected a team name (repeat --team for several).")
    spend_filter = SpendFilter(start=first, end=last, teams=team_list)
    if fmt == "focus":
        if grain == "line":
            raise InputError(
                "--grain line does not apply to --format focus: FOCUS rows are one per day, provider, model, "
                "team, feature and kind; leave out --grain."
            )
        if partition_by_day:
            raise InputError("--partition-by-day writes a Parquet lake of spend; use it with --format parquet.")
        suffix = next((s for s in _FOCUS_SUFFIXES if out.name.lower().endswith(s)), None)
        if suffix is None:
            raise InputError(
                f"--out {out}: a FOCUS export is written as CSV or Parquet, chosen by the file name; "
                "expected a name ending in .csv, .csv.gz or .parquet."
            )
        return ExportRequest("focus", out, spend_filter, "focus", _FOCUS_SUFFIXES[suffix], overwrite=overwrite)
    if partition_by_day and fmt != "parquet":
        raise InputError("--partition-by-day writes a Parquet lake; use it with --format parquet.")
    if partition_by_day and overwrite:
        raise InputError(
            "--overwrite does not apply to --partition-by-day: re-exporting a range already replaces the "
            "lake's partitions of those days, and only those."
        )
    if not partition_by_day and out.name.lower().endswith(_WRONG_SUFFIXES[fmt]):
        raise InputError(
            f"--out {out} names a {'Parquet' if fmt == 'csv' else 'CSV'} file, and --format is {fmt}; "
            f"change the name or the format."
        )
    resolved = cast(Grain, grain or "line")
    file_format: Literal["csv", "parquet"] = "csv" if fmt == "csv" else "parquet"
    return ExportRequest(file_format, out, spend_filter, resolved, file_format, partition_by_day, overwrite)


def _day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} '{value}' is not a date; expected YYYY-MM-DD (a UTC day).") from None
