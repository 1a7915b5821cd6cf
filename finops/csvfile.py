"""The user's small CSV files (price overrides, ownership rules): UTF-8 text in, records with their line out.

Shared by `finops.price.overrides` and `finops.attribute.owners`, so that both read the same way: the
file must be UTF-8 (a byte-order mark is allowed), lines are counted as an editor counts them (blank
lines and line breaks inside quoted fields included), and any file the CSV reader cannot take is an
`InputError` that names the file and the line, never an internal error.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

from finops.errors import InputError

__all__ = ["read_csv"]

Record = dict[str, str | None]


def read_csv(path: Path, what: str) -> tuple[list[str], list[tuple[int, Record]]]:
    """The header and every record of `path` with the line it ends on; `what` names the file in messages
    ("the price overrides")."""
    text = _decode(path, _read_bytes(path, what))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = list(reader.fieldnames or [])
        return header, [(reader.line_num, record) for record in reader]
    except csv.Error as exc:  # a field longer than csv.field_size_limit()
        raise InputError(f"{path} line {reader.reader.line_num}: cannot read {what} as CSV ({exc}).") from None


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
