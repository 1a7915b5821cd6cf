"""Find input files and tell their format (JSONL, JSON document, CSV, Parquet) and compression.

The format comes from the content where it can (Parquet magic, gzip magic, the first non-blank
character), and from the extension where the content cannot tell (an empty file).
"""

from __future__ import annotations

import enum
import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from finops.errors import FileProblem

__all__ = ["Format", "InputFile", "discover", "open_binary", "sniff"]

HEAD_BYTES = 256 * 1024
_INPUT_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"}


class Format(enum.Enum):
    JSONL = "jsonl"  # one JSON value per line
    JSON = "json"  # one JSON document: an array of records, or an API page
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: Format
    compression: str | None  # "gzip" or None
    size: int
    head: bytes  # the first bytes, decompressed, without a BOM

    @property
    def display(self) -> str:
        return str(self.path)

    def head_text(self) -> str:
        return self.head.decode("utf-8", errors="replace")


def open_binary(path: Path, compression: str | None) -> io.BufferedIOBase:
    """The file's bytes, decompressed."""
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, directories (recursively, known suffixes only) and glob patterns, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        text = str(raw)
        matches = [Path(m) for m in sorted(glob.glob(text))] if any(c in text for c in "*?[") else [Path(text)]
        if not matches:
            raise FileProblem(f"{text}: no file matches this pattern.", path=text)
        for path in matches:
            if path.is_dir():
                found.extend(
                    p
                    for p in sorted(path.rglob("*"))
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                    and _input_suffix(p)
                )
            elif path.exists():
                found.append(path)
            else:
                raise FileProblem(f"{path}: no such file.", path=str(path))
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def _input_suffix(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes and suffixes[-1] in _INPUT_SUFFIXES else None


def sniff(path: Path) -> InputFile:
    """Read the head of `path` and decide its format and compression."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise FileProblem(f"{path}: cannot read the file ({exc.strerror}).", path=str(path)) from None
    compression = None
    if raw[:2] == b"\x1f\x8b":
        compression = "gzip"
        raw = _gunzip_head(path)
    if raw[:4] == b"PAR1":
        return InputFile(path, Format.PARQUET, compression, size, raw)
    head = raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw
    return InputFile(path, _text_format(path, head), compression, size, head)


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileProblem(
            f"{path}: looks gzip-compressed but cannot be decompressed ({exc}).", path=str(path)
        ) from None


def _text_format(path: Path, head: bytes) -> Format:
    suffix = _input_suffix(path)
    stripped = head.lstrip()
    if not stripped:
        return {
            ".csv": Format.CSV,
            ".tsv": Format.CSV,
            ".parquet": Format.PARQUET,
            ".pq": Format.PARQUET,
            ".json": Format.JSON,
        }.get(suffix or "", Format.JSONL)
    if suffix in {".parquet", ".pq"}:
        raise FileProblem(f"{path}: named .parquet but is not a Parquet file (no PAR1 magic bytes).", path=str(path))
    first = stripped[:1]
    if first == b"[":
        return Format.JSON
    if first == b"{":
        line = stripped.split(b"\n", 1)[0].strip()
        try:
            json.loads(line)
        except (ValueError, RecursionError):
            # the first line is not a whole JSON value: a pretty-printed document (or a broken JSONL file)
            return Format.JSONL if suffix in {".jsonl", ".ndjson"} else Format.JSON
        return Format.JSONL
    if suffix in {".jsonl", ".ndjson", ".json"} or _json_lines_follow(stripped):
        # a JSON file whose first line is broken: read line by line, so that line is rejected, not the file
        return Format.JSONL
    return Format.CSV


def _json_lines_follow(head: bytes) -> bool:
    """Whether most of the lines after the first (the last, maybe cut off, left out) start with `{`."""
    lines = [x.strip() for x in head.split(b"\n")[1:-1]]
    lines = [x for x in lines if x]
    return bool(lines) and sum(x.startswith(b"{") for x in lines) * 2 > len(lines)
