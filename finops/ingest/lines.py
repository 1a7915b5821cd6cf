"""Physical lines of a text file, found with numpy a chunk at a time (no Python loop per line).

DuckDB's readers are fast but do not say on which line a record stood. Ingest uses this module
(a) to give rejected records their line number and original text, and (b) to read a JSONL file
that DuckDB's reader refuses (bad JSON, a bad byte, a BOM, a truncated last line) line by line.

A *record* is a line that is not blank; blank lines carry no data and are skipped, as DuckDB does.
For CSV, newlines inside quoted fields do not end a record (quote parity).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from finops.ingest.files import open_binary

__all__ = ["Located", "iter_lines", "locate"]

CHUNK_BYTES = 16 * 1024 * 1024
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 13, 32]] = True


@dataclass(frozen=True)
class Located:
    line_number: int
    raw: str
    last_line_unterminated: bool = False


@dataclass
class _Chunk:
    data: bytes
    starts: np.ndarray  # byte offsets of record starts within data
    ends: np.ndarray  # byte offsets of record ends (exclusive, before the newline and any CR)
    line_numbers: np.ndarray  # physical line number (1-based) of each record's first line
    final: bool  # the last chunk of the file
    unterminated: bool  # the file does not end with a newline


def _chunks(path: Path, compression: str | None, *, csv: bool = False) -> Iterator[_Chunk]:
    """Records (non-blank lines, or CSV records) of the file, chunk by chunk."""
    line_base = 0  # physical lines completed before this chunk
    carry = b""
    in_quote = False
    first = True
    with open_binary(path, compression) as fh:
        while True:
            buf = fh.read(CHUNK_BYTES)
            data = carry + buf if carry else buf
            final = not buf
            if first:
                if data[:3] == b"\xef\xbb\xbf":
                    data = data[3:]
                first = False
            if not data:
                return
            arr = np.frombuffer(data, dtype=np.uint8)
            newlines = np.flatnonzero(arr == 10)
            quotes: np.ndarray | None = None
            if csv:
                quotes = np.cumsum(arr == 34, dtype=np.int64)
                parity = (quotes[newlines] + (1 if in_quote else 0)) % 2
                separators = newlines[parity == 0]
            else:
                separators = newlines
            if final:
                cut = len(data)
                ends = (
                    np.append(separators, len(data))
                    if (len(separators) == 0 or separators[-1] != len(data) - 1)
                    else separators
                )
                unterminated = data[-1:] != b"\n"
            else:
                if len(separators) == 0:
                    carry = data
                    continue
                cut = int(separators[-1]) + 1
                ends = separators
                unterminated = False
            starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.array([], dtype=np.int64)
            # physical line of each record start = lines before it in this chunk + base
            nl_before = np.searchsorted(newlines, starts, side="left")
            line_numbers = line_base + nl_before + 1
            # strip a trailing CR
            ends_clean = ends.copy()
            has_cr = (ends_clean > starts) & (arr[np.maximum(ends_clean - 1, 0)] == 13)
            ends_clean[has_cr] -= 1
            # drop blank (whitespace-only) records
            nonws = np.concatenate(([0], np.cumsum(~_WS[arr], dtype=np.int64)))
            keep = nonws[ends_clean] - nonws[starts] > 0
            if quotes is not None:
                in_quote = bool((int(quotes[cut - 1]) + (1 if in_quote else 0)) % 2) if cut else in_quote
            yield _Chunk(data[:cut], starts[keep], ends_clean[keep], line_numbers[keep], final, unterminated)
            line_base += int(np.count_nonzero(newlines < cut))
            carry = data[cut:]
            if final:
                return


def locate(
    path: Path, compression: str | None, ordinals: np.ndarray, *, csv: bool = False, header_records: int = 0
) -> dict[int, Located]:
    """Line number and text of the records at these 0-based ordinals (after `header_records` skipped)."""
    wanted = np.unique(np.asarray(ordinals, dtype=np.int64) + header_records)
    found: dict[int, Located] = {}
    if len(wanted) == 0:
        return found
    seen = 0
    for chunk in _chunks(path, compression, csv=csv):
        n = len(chunk.starts)
        lo, hi = np.searchsorted(wanted, [seen, seen + n])
        for w in wanted[lo:hi]:
            i = int(w - seen)
            raw = chunk.data[chunk.starts[i] : chunk.ends[i]].decode("utf-8", errors="replace")
            last = chunk.final and i == n - 1
            found[int(w) - header_records] = Located(int(chunk.line_numbers[i]), raw, last and chunk.unterminated)
        seen += n
        if seen > wanted[-1]:
            break
    return found


def iter_lines(path: Path, compression: str | None) -> Iterator[tuple[pa.Table, bool]]:
    """Arrow tables of (line_number, raw BLOB) for every non-blank line; True with the file's last line
    when that line has no terminating newline (a possibly truncated write)."""
    for chunk in _chunks(path, compression):
        if len(chunk.starts) == 0:
            continue
        data = np.frombuffer(chunk.data, dtype=np.uint8)
        lengths = chunk.ends - chunk.starts
        offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
        # gather the record bytes contiguously, vectorised
        idx = np.repeat((chunk.starts - offsets[:-1]).astype(np.int32), lengths) + np.arange(
            offsets[-1], dtype=np.int32
        )
        body = data[idx].tobytes()
        raw = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(body)]
        )
        table = pa.table({"_line": pa.array(chunk.line_numbers.astype(np.int64)), "_bytes": raw})
        yield table, chunk.final and chunk.unterminated
