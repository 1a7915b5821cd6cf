"""Find input files and tell their format (JSONL, JSON document, CSV, Parquet) and compression.

The format comes from the content where it can (Parquet magic, gzip magic, the first non-blank
character), and from the extension where the content cannot tell (an empty file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from finops.errors import FileProblem

__all__ = ["INPUT_SUFFIXES", "Format", "Gunzipped", "InputFile", "discover", "gunzip", "open_binary", "sniff"]

HEAD_BYTES = 256 * 1024
_INPUT_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"}
# the names a directory is searched for (each also with .gz); a file named directly is read whatever its name
INPUT_SUFFIXES = tuple(sorted(_INPUT_SUFFIXES))


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
    """Expand files, directories (recursively, known suffixes only, following links to directories) and glob
    patterns, in a stable order. A path that exists is itself, even when its name holds `*`, `?` or `[`."""
    found: list[Path] = []
    for raw in paths:
        text = str(raw)
        pattern = any(c in text for c in "*?[") and not Path(text).exists()
        matches = [Path(m) for m in sorted(glob.glob(text))] if pattern else [Path(text)]
        if not matches:
            raise FileProblem(f"{text}: no file matches this pattern.", path=text)
        for path in matches:
            if path.is_dir():
                found.extend(p for p in _walk(path) if _input_suffix(p))
            elif path.exists():
                found.append(path)
            else:
                raise FileProblem(f"{path}: no such file.", path=str(path))
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def _walk(top: Path) -> list[Path]:
    """The files under `top`, sorted, hidden names (a part starting with '.') left out. Links to directories are
    followed (a log folder mounted elsewhere and linked in), each real directory once (a link loop ends)."""
    files: list[Path] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(top, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in names if not n.startswith(".") and (Path(root) / n).is_file())
    return sorted(files)


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
    """The first HEAD_BYTES of the decompressed data, or as much of it as decompresses: a file cut off or
    damaged is told apart later (`gunzip`), which keeps what can be read of it."""
    out = bytearray()
    decompressor = zlib.decompressobj(wbits=_GZIP)
    with open(path, "rb") as fh:
        data = fh.read(HEAD_BYTES)
        while data and len(out) < HEAD_BYTES:
            try:
                out += decompressor.decompress(data, HEAD_BYTES - len(out))
            except zlib.error:
                break
            if decompressor.eof:  # a member ends: another may follow
                data = decompressor.unused_data or fh.read(HEAD_BYTES)
                if data[:2] != b"\x1f\x8b":
                    break
                decompressor = zlib.decompressobj(wbits=_GZIP)
            else:
                data = decompressor.unconsumed_tail or fh.read(HEAD_BYTES)
    return bytes(out)


_GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer, checked
_BLOCK = 1024 * 1024
_TAIL_LIMIT = 1024 * 1024  # the most of a cut-off last line kept as its raw text


@dataclass(frozen=True)
class Gunzipped:
    """A gzip file decompressed into a plain file, and what was wrong with its gzip data, if anything.

    `problem` is None for a sound file. Otherwise the data could not be read to its end: when `corrupt`,
    nothing of it can be trusted (a damaged deflate stream writes garbage before zlib notices, and a
    checksum mismatch says only that something is wrong); when not, the file is cut off (or followed by
    bytes that are not gzip) and `file` holds its complete lines, `lines` of them, while `tail` is the
    incomplete last line, dropped (at most 1 MiB of it).
    """

    file: InputFile
    problem: str | None = None
    corrupt: bool = False
    lines: int = 0
    tail: bytes = b""


def gunzip(file: InputFile, directory: Path | None) -> Gunzipped:
    """Decompress `file` into `directory`, checking its gzip data (the CRC and length of every member);
    with no directory, only check it (nothing is written: `Gunzipped.file` is `file` itself).

    DuckDB's readers do not check the CRC (a damaged file loads garbage rows) and Python's gzip raises
    EOFError on a file cut off, after what it read is gone; zlib, a block at a time, keeps every byte
    that decompresses.
    """
    if directory is None:
        plain = file
    else:
        plain = dataclasses.replace(file, path=directory / _plain_name(file.path), compression=None)
    problem: str | None = None
    corrupt = False
    written = newlines = 0
    last_newline = -1  # offset in the output of the last newline
    decompressor = zlib.decompressobj(wbits=_GZIP)
    sink = open(plain.path, "wb") if directory is not None else contextlib.nullcontext(None)  # noqa: SIM115
    with open(file.path, "rb") as src, sink as dst:
        data = b""
        while True:
            if not data:
                data = src.read(_BLOCK)
                if not data:
                    if not decompressor.eof:
                        problem = "the gzip data ends before its end marker: the file is cut off"
                    break
            if decompressor.eof:  # what follows a member: another member, zero padding, or junk
                if len(data) < 2:
                    data += src.read(_BLOCK)
                if data[:2] == b"\x1f\x8b":
                    decompressor = zlib.decompressobj(wbits=_GZIP)
                elif not data.strip(b"\0"):
                    data = b""
                    continue
                else:
                    problem = "the gzip data is followed by bytes that are not gzip"
                    break
            try:
                out = decompressor.decompress(data, _BLOCK)
            except zlib.error as exc:
                problem, corrupt = f"the gzip data is damaged (zlib: {_zlib_reason(exc)})", True
                break
            if out and dst is not None:  # checking only: nothing to keep or count
                dst.write(out)
                newlines += out.count(b"\n")
                at = out.rfind(b"\n")
                if at >= 0:
                    last_newline = written + at
                written += len(out)
            data = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
    if problem is None or corrupt or directory is None:
        return Gunzipped(plain, problem, corrupt)
    # keep the complete lines; the incomplete last one is reported, not read
    keep = last_newline + 1
    with open(plain.path, "r+b") as fh:
        fh.seek(keep)
        tail = fh.read(_TAIL_LIMIT)
        fh.truncate(keep)
    return Gunzipped(plain, problem, False, newlines, tail)


def _plain_name(path: Path) -> str:
    name = path.name
    return name[:-3] if name.lower().endswith(".gz") else name + ".plain"


def _zlib_reason(exc: zlib.error) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


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
