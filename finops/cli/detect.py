"""`finops detect series FILE.csv --time-col C --value-col C [--out OUT.csv]`: the spike detector's online form over
any CSV time series (a cloud bill, a metric), with the shape score of `finops.detect.shapes` beside it, each row
judged only by the rows above it.

Order of operations: read the CSV as text (so the input's columns are written back unchanged), each record
with its line; parse the time
column (ISO 8601 / RFC 3339 with or without an offset, `YYYY-MM-DD HH:MM[:SS[.f]]`, a date, a trailing `Z` or
` UTC`, `YYYYMMDD`, or an epoch number in seconds, milliseconds, microseconds or nanoseconds by its size, as
ingest reads them; a time with no offset is UTC) and the value column (a number); score
with `finops.detect.spikes.score_series`; write the input's columns plus `score` (0..1) and `is_anomaly`.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click
import polars as pl

from finops import csvfile
from finops.detect.spikes import Direction, load_spike_config, score_series
from finops.errors import FileProblem, InputError

__all__ = ["parse_times", "read_series", "read_text", "register"]

_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M%:z", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_EPOCH_MS = 100_000_000_000  # a bigger epoch number is milliseconds (seconds reach it in the year 5138)


def parse_times(text: pl.Expr) -> pl.Expr:
    """Timestamps (UTC) from text in the forms the module docstring lists; NULL where none fits."""
    norm = (
        text.str.strip_chars()
        .str.replace(r"(?i)\s*(Z|UTC)$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ]", "$1 ")
        .str.replace(r"([+-]\d{2})(\d{2})$", "$1:$2")
    )
    parsed = [norm.str.to_datetime(f, strict=False, time_zone="UTC", time_unit="us") for f in _FORMATS]
    bare = text.str.strip_chars()
    # eight digits are a date (YYYYMMDD), not seconds of 1970: bills write them so
    compact = (
        pl.when(bare.str.contains(r"^\d{8}$"))
        .then(bare.str.to_datetime("%Y%m%d", strict=False, time_zone="UTC", time_unit="us"))
        .otherwise(None)
    )
    # an epoch number's unit by its size, as ingest reads them: seconds, milliseconds, microseconds, nanoseconds
    whole = bare.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)
    size = whole.abs()
    micros = (
        pl.when(size < _EPOCH_MS)
        .then(whole * 1_000_000)
        .when(size < _EPOCH_MS * 1_000)
        .then(whole * 1_000)
        .when(size < _EPOCH_MS * 1_000_000)
        .then(whole)
        .otherwise(whole // 1_000)
    )
    fraction = bare.cast(pl.Float64, strict=False)  # 1704067200.25: fractional seconds (or ms ...)
    fraction_micros = (
        pl.when(fraction.abs() < _EPOCH_MS)
        .then(fraction * 1e6)
        .when(fraction.abs() < _EPOCH_MS * 1_000)
        .then(fraction * 1e3)
        .otherwise(None)
        .round()
        .cast(pl.Int64, strict=False)
    )
    epoch = pl.from_epoch(pl.coalesce(micros, fraction_micros), time_unit="us").dt.replace_time_zone("UTC")
    return pl.coalesce(*parsed, compact, epoch)


def read_series(path: Path, time_col: str, value_col: str, *, min_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The file as text (every column kept as written) and the parsed (`_time`, `_value`) frame, in file order.
    Raises one-sentence errors for a missing file, missing columns, bad times or values, and too few rows."""
    raw, lines = read_text(path)
    missing = [c for c in (time_col, value_col) if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path}: no column {', '.join(repr(m) for m in missing)}; the columns are: {', '.join(raw.columns)}.",
            missing=missing,
            columns=raw.columns,
        )
    taken = [c for c in ("score", "is_anomaly") if c in raw.columns]
    if taken:
        raise InputError(
            f"{path}: already has a column {taken[0]!r}, which the output adds; rename it first.", column=taken[0]
        )
    parsed = raw.select(
        _time=parse_times(pl.col(time_col)),
        _value=pl.col(value_col).str.strip_chars().cast(pl.Float64, strict=False),
    )
    for invalid, name, expected in (
        (pl.col("_time").is_null(), time_col, "a timestamp such as 2024-01-31T13:00:00Z, 2024-01-31 13:00:00"),
        (~pl.col("_value").is_finite().fill_null(False), value_col, "a finite number"),
    ):
        bad = parsed.with_row_index("_row").filter(invalid)
        if bad.height:
            row = int(bad["_row"][0])
            found = raw[row, name]
            shown = "empty" if found is None or not found.strip() else repr(found)
            if len(shown) > 80:  # an unclosed quote runs to the end of the file: say so, do not print it all
                shown = f"{shown[:60]}... ({len(found or '')} characters; an unclosed quote?)"
            raise InputError(
                f"{path} line {lines[row]}: {name} is {shown}; expected {expected} ({bad.height} such row(s)).",
                line=lines[row],
                column=name,
            )
    if raw.height < min_rows:
        lower = " (lower it with --min-history)" if min_rows > 2 else ""
        raise InputError(
            f"{path} has {raw.height} data row(s); at least {min_rows} are needed, as the first {min_rows - 1} only "
            f"build the baseline{lower}.",
            rows=raw.height,
        )
    return raw, parsed


def read_text(path: Path) -> tuple[pl.DataFrame, list[int]]:
    """The file's records as text columns named by its header (an empty cell NULL), and the line each record
    starts on (as an editor counts lines: quoted line breaks and blank lines included; a blank line holds no
    record). UTF-8 (a byte-order mark is fine), RFC 4180 quoting; a record with more or fewer fields than the
    header, or a header naming a column twice, is one `InputError` sentence naming the file and the line."""
    if path.is_dir():
        raise FileProblem(f"{path} is a directory; expected a CSV file with a header row.", path=str(path))
    if not path.is_file():
        raise FileProblem(f"{path}: no such file; expected a CSV file with a header row.", path=str(path))
    text = csvfile.read_text(path, "the series")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records: list[list[str]] = []
    lines: list[int] = []
    end = 0  # the line the previous record ended on
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip() and (header is None or len(header) > 1)):
                continue  # a blank line (spaces only, too) holds no record
            if header is None:
                header = _header(path, cells, start)
            elif len(cells) != len(header):
                raise InputError(
                    f"{path} line {start}: {len(cells)} field(s); expected {len(header)} ({', '.join(header)}), "
                    "one per header column (quote a value that contains a comma).",
                    line=start,
                )
            else:
                records.append(cells)
                lines.append(start)
    except csv.Error as exc:  # a NUL byte, a field longer than csv.field_size_limit()
        raise InputError(f"{path} line {reader.line_num}: not readable as CSV ({exc}).", line=reader.line_num) from None
    if header is None:
        raise FileProblem(f"{path}: the file is empty; expected a CSV file with a header row.", path=str(path))
    frame = pl.DataFrame(records, schema=dict.fromkeys(header, pl.String), orient="row")
    return frame.with_columns(pl.all().replace("", None)), lines  # an empty cell is NULL, written back empty


def _header(path: Path, cells: list[str], line: int) -> list[str]:
    names = list(cells)  # as written: the output gives the input's columns back unchanged
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise InputError(
            f"{path} line {line}: the header names column {twice!r} twice; expected each column once.", line=line
        )
    return names


def register(cli: click.Group) -> None:
    @cli.group("detect")
    def detect() -> None:
        """Run finops' detectors over data outside the database."""

    @detect.command("series")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--time-col", required=True, help="The column holding each row's time (naive times are UTC).")
    @click.option("--value-col", required=True, help="The column holding each row's value.")
    @click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Output CSV [default: stdout].")
    @click.option(
        "--direction",
        type=click.Choice(["both", "up", "down"]),
        default="both",
        show_default=True,
        help="Which departures count: rises, drops, or both.",
    )
    @click.option(
        "--min-history",
        type=click.IntRange(min=1),
        default=None,
        help="Rows before the first scored row [env FINOPS_SPIKE_MIN_HISTORY_ROWS; default 168].",
    )
    def series(
        file: Path, time_col: str, value_col: str, out: Path | None, direction: str, min_history: int | None
    ) -> int:
        """Score every row of a CSV time series: the input's columns plus score (0..1) and is_anomaly.

        Each row is judged only by the rows above it (file order is time order), so appending rows never
        changes an earlier score."""
        config = load_spike_config(**({"min_history_rows": min_history} if min_history is not None else {}))
        raw, parsed = read_series(file, time_col, value_col, min_rows=config.min_history_rows + 1)
        scored = score_series(
            parsed.lazy(), time="_time", value="_value", config=config, direction=_direction(direction)
        ).collect()
        result = raw.with_columns(score=scored["score"].round(6), is_anomaly=scored["is_anomaly"])
        if out is None:
            sys.stdout.write(result.write_csv())
        else:
            try:
                result.write_csv(out)
            except OSError as exc:  # a missing directory, no permission, a read-only file system
                raise FileProblem(f"Could not write --out {out}: {exc.strerror or exc}.", path=str(out)) from None
        return 0


def _direction(value: str) -> Direction:
    if value == "up":
        return "up"
    return "down" if value == "down" else "both"
