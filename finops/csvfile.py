"""The user's small CSV files (price overrides, ownership rules): UTF-8 text in, records with their line out.

Shared by `finops.price.overrides` and `finops.attribute.owners`, so that both read the same way: the
file must be UTF-8 (a byte-order mark is allowed), lines are counted as an editor counts them (blank
lines and line breaks inside quoted fields included), and any file the CSV reader cannot take is an
`InputError` that names the file and the line, never an internal error.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import io
from pathlib import Path

from finops.errors import InputError

__all__ = ["glob_mistake", "read_csv", "read_text"]

Record = dict[str, str | None]


def read_csv(path: Path, what: str) -> tuple[list[str], list[tuple[int, Record]]]:
    """The header and every record of `path` with the line it ends on; `what` names the file in messages
    ("the price overrides"). A record with more or fewer cells than the header is an `InputError`."""
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""))
    try:
        header = next(reader, [])
        records: list[tuple[int, Record]] = []
        for cells in reader:
            if not cells:  # a blank line holds no record
                continue
            if header and len(cells) != len(header):
                raise InputError(
                    f"{path} line {reader.line_num}: {len(cells)} cells; expected {len(header)} "
                    f"({', '.join(header)}), one per header column (quote a value that contains a comma)."
                )
            records.append((reader.line_num, dict(zip(header, cells, strict=True))))
        return header, records
    except csv.Error as exc:  # a field longer than csv.field_size_limit()
        raise InputError(f"{path} line {reader.line_num}: cannot read {what} as CSV ({exc}).") from None


def read_text(path: Path, what: str) -> str:
    """The text of a user's CSV file: UTF-8 (a byte-order mark is dropped); UTF-16, NUL bytes or bytes that
    are not UTF-8 are an `InputError` naming the file and the line."""
    return _decode(path, _read_bytes(path, what))


def glob_mistake(pattern: str) -> str | None:
    """Why the glob `pattern` (`fnmatch` syntax) cannot match what it was meant to, or None when it is sound:
    a `[` that no `]` closes (fnmatch would read it as a literal `[`) or a class that holds no character
    (`[z-a]`, which fnmatch turns into a pattern that never matches)."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":  # fnmatch's own scan for the closing bracket
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":  # a `]` first in the class is one of its characters
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return f"the '[' at character {i + 1} is never closed (a literal '[' is written [[])"
            i = j
        i += 1
    if "(?!)" in fnmatch.translate(pattern):
        return "a [...] class in it holds no character"
    return None


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror}).") from None


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(
            f"{path} line 1: the file is UTF-16 text (Excel's 'Unicode Text'); expected UTF-8 "
            "(in Excel, save as 'CSV UTF-8')."
        )
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start  # in the file, as a hex dump shows it
        line = data.count(b"\n", 0, offset) + 1
        raise InputError(
            f"{path} line {line}: byte 0x{data[offset]:02X} at offset {offset} is not UTF-8 "
            "(Latin-1 or Windows-1252 text?); expected a UTF-8 file (in Excel, save as 'CSV UTF-8')."
        ) from None
    if "\x00" in text:  # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL after every letter
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(f"{path} line {line}: the file contains NUL bytes (UTF-16 text?); expected UTF-8 text.")
    return text
