"""Physical lines of a text file, found with numpy a chunk at a time (no Python loop per line).

DuckDB's readers are fast but do not say on which line a record stood. Ingest uses this module
(a) to give rejected records their line number and original text, (b) to read a JSONL file that
DuckDB's reader refuses (bad JSON, a bad byte, a BOM, a truncated last line) line by line, and
(c) to split a CSV file whose quoting is broken into its records and its broken lines.

A *record* is a line that is not blank; blank lines carry no data and are skipped, as DuckDB does.

CSV records follow RFC 4180 as DuckDB reads it: a field that starts with a double quote (after at
most one space) is quoted, a quote inside it is doubled, and it ends at a quote followed by the
delimiter, the end of the line (spaces may come between) or of the file; a newline inside it does
not end the record. A quote anywhere else in an unquoted field is an ordinary character. A record
whose quoted field is never closed, or is closed by a quote followed by more text, is *broken*: its
first line is set aside and reading goes on at the next line, so one bad quote costs one line, not
the rest of the file (RFC 4180 would read the rest of the file as one field).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from finops.ingest.files import open_binary

__all__ = ["BrokenLine", "CsvRecords", "Located", "iter_lines", "locate", "write_csv_records"]

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


def _next_data(fh: io.BufferedIOBase, carry: bytes, first: bool) -> tuple[bytes, bool]:
    """The next block of the file after what the last chunk left over (`carry`), without the UTF-8 byte-order
    mark at the very start, and whether the file has ended."""
    buf = fh.read(CHUNK_BYTES)
    data = carry + buf if carry else buf
    if first and data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    return data, not buf


def _chunks(path: Path, compression: str | None) -> Iterator[_Chunk]:
    """Records (non-blank lines) of the file, chunk by chunk."""
    line_base = 0  # physical lines completed before this chunk
    carry = b""
    first = True
    with open_binary(path, compression) as fh:
        while True:
            data, final = _next_data(fh, carry, first)
            first = False
            if not data:
                return
            arr = np.frombuffer(data, dtype=np.uint8)
            newlines = np.flatnonzero(arr == 10)
            if final:
                cut = len(data)
                ends = (
                    np.append(newlines, len(data))
                    if (len(newlines) == 0 or newlines[-1] != len(data) - 1)
                    else newlines
                )
                unterminated = data[-1:] != b"\n"
            else:
                if len(newlines) == 0:
                    carry = data
                    continue
                cut = int(newlines[-1]) + 1
                ends = newlines
                unterminated = False
            starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.array([], dtype=np.int64)
            # physical line of each record start = lines before it in this chunk + base
            line_numbers = line_base + np.searchsorted(newlines, starts, side="left") + 1
            ends_clean, keep = _clean(arr, starts, ends)
            yield _Chunk(data[:cut], starts[keep], ends_clean[keep], line_numbers[keep], final, unterminated)
            line_base += int(np.count_nonzero(newlines < cut))
            carry = data[cut:]
            if final:
                return


def _clean(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Record ends without a trailing CR, and which records are not blank (whitespace only).

    Most records start with a byte that is not whitespace; only the others are walked, a byte at a time for
    all of them at once (a running sum of non-blank bytes over the whole chunk took most of a CSV scan)."""
    ends_clean = ends.copy()
    has_cr = (ends_clean > starts) & (arr[np.maximum(ends_clean - 1, 0)] == 13)
    ends_clean[has_cr] -= 1
    keep = ends_clean > starts
    if not len(arr):
        return ends_clean, keep
    maybe = np.flatnonzero(keep & _WS[arr[np.minimum(starts, len(arr) - 1)]])
    pos = starts[maybe] + 1
    for _ in range(64):
        if not len(maybe):
            break
        inside = pos < ends_clean[maybe]
        keep[maybe[~inside]] = False  # whitespace to its end: blank
        walking = inside & _WS[arr[np.minimum(pos, len(arr) - 1)]]
        maybe, pos = maybe[walking], pos[walking] + 1
    for i in maybe:  # a long run of leading whitespace
        keep[i] = bool(arr[starts[i] : ends_clean[i]].tobytes().strip(b" \t\r\n"))
    return ends_clean, keep


# ------------------------------------------------------------------------------------------------ CSV

_UNCLOSED = 1  # a quoted field never closed (to the end of the file, or for longer than CHUNK_BYTES)
_TEXT_AFTER_QUOTE = 2  # a quoted field closed by a quote that is followed by more text


@dataclass
class _CsvChunk:
    data: bytes
    starts: np.ndarray  # records: byte offsets of their starts within data
    ends: np.ndarray  # record ends (exclusive, before the newline and any CR)
    line_numbers: np.ndarray  # physical line of each record's first line
    bad_starts: np.ndarray  # broken lines: their starts, ends and line numbers, and what is wrong
    bad_ends: np.ndarray
    bad_line_numbers: np.ndarray
    bad_kinds: np.ndarray


def _csv_chunks(path: Path, compression: str | None, delimiter: int) -> Iterator[_CsvChunk]:
    """The records and broken lines of a CSV file, chunk by chunk (see the module docstring)."""
    line_base = 0
    carry = b""
    first = True
    with open_binary(path, compression) as fh:
        while True:
            data, final = _next_data(fh, carry, first)
            first = False
            if not data:
                return
            arr = np.frombuffer(data, dtype=np.uint8)
            split = _split_csv(arr, final, delimiter, too_long=len(data) > 2 * CHUNK_BYTES)
            if split.consumed == 0 and not final:
                carry = data
                continue
            newlines = split.newlines[: np.searchsorted(split.newlines, split.consumed)]
            ends_clean, keep = _clean(arr, split.starts, split.ends)
            bad_ends = _clean(arr, split.bad_starts, split.bad_ends)[0] if len(split.bad_starts) else split.bad_ends
            yield _CsvChunk(
                data[: split.consumed],
                split.starts[keep],
                ends_clean[keep],
                (line_base + np.searchsorted(newlines, split.starts, side="left") + 1)[keep],
                split.bad_starts,
                bad_ends,
                line_base + np.searchsorted(newlines, split.bad_starts, side="left") + 1,
                split.bad_kinds,
            )
            line_base += len(newlines)
            carry = data[split.consumed :]
            if final:
                return


@dataclass
class _Split:
    consumed: int  # bytes of the data that were split; the rest waits for more data
    newlines: np.ndarray  # offsets of every newline in the data
    starts: np.ndarray
    ends: np.ndarray  # at the record's newline, or the end of the data
    bad_starts: np.ndarray
    bad_ends: np.ndarray
    bad_kinds: np.ndarray


def _split_csv(arr: np.ndarray, final: bool, delimiter: int, *, too_long: bool) -> _Split:
    """Split `arr` (which starts at a record) into records and broken lines.

    Quote parity tells most of it in one vectorised pass: a newline after an even number of quotes ends a
    record. What parity cannot tell, a quote that is not where RFC 4180 puts one, is found in the same pass
    for both parities, and the loop below visits only those: a quote inside an unquoted field is an ordinary
    character (the parity of every later byte flips); a quoted field closed and followed by text breaks its
    record (the record's first line is set aside, parity starts again at the next line). `too_long`: the
    data holds more than a record may, so a field still open at its end is never closed.
    """
    n = len(arr)
    quotes = np.flatnonzero(arr == 34)
    newlines = np.flatnonzero(arr == 10)
    nq = len(quotes)
    before = _byte_at(arr, quotes - 1)  # 10 (a line start) for the start of the data
    before2 = _byte_at(arr, quotes - 2)
    after = _byte_at(arr, quotes + 1)  # 10 for the end of the data, where nothing is known yet
    field_start = (before == delimiter) | (before == 10) | ((before == 32) & ((before2 == delimiter) | (before2 == 10)))
    open_ok = field_start | (before == 34)  # or the second quote of a doubled one
    close_ok = (after == delimiter) | (after == 10) | (after == 13) | (after == 34)
    spaced = np.flatnonzero(after == 32)
    if len(spaced):  # spaces may follow a closing quote, before the delimiter or the line end
        close_ok[spaced] = _after_spaces_ok(arr, quotes[spaced] + 1, delimiter)
    odd = (np.arange(nq) & 1).astype(bool)
    # under flip p, quote k opens a field when k + p is even
    anomalies = (np.flatnonzero(np.where(odd, ~close_ok, ~open_ok)), np.flatnonzero(np.where(odd, ~open_ok, ~close_ok)))
    anomaly_at = (quotes[anomalies[0]], quotes[anomalies[1]])
    parity_at_newline = np.searchsorted(quotes, newlines) & 1
    record_ends = (newlines[parity_at_newline == 0], newlines[parity_at_newline == 1])

    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    bad: list[tuple[int, int, int]] = []
    x = scan = p = 0  # the start of the current record; where to look on from; the flip
    while x < n:
        i = int(np.searchsorted(anomaly_at[p], scan))
        a = int(anomaly_at[p][i]) if i < len(anomaly_at[p]) else n
        lo, hi = np.searchsorted(record_ends[p], [scan, a])
        if hi > lo:
            found = record_ends[p][lo:hi]
            starts.append(np.concatenate(([x], found[:-1] + 1)))
            ends.append(found)
            x = int(found[-1]) + 1
        if a < n and (int(anomalies[p][i]) + p) % 2 == 0:  # an opening quote that opens nothing: a character
            p ^= 1
            scan = a + 1
            while scan < n and arr[scan] == 34:  # and so are the quotes right after it
                p ^= 1
                scan += 1
            continue
        open_at_end = (nq + p) % 2 == 1
        if a < n:
            kind = _TEXT_AFTER_QUOTE
        elif x >= n:
            break
        elif final and not open_at_end:  # the last record, without a newline
            starts.append(np.array([x]))
            ends.append(np.array([n]))
            x = n
            break
        elif final or (too_long and open_at_end):
            kind = _UNCLOSED
        else:
            break  # the rest is one record, to be ended by data still to come
        j = int(np.searchsorted(newlines, x))
        if j == len(newlines) and not final:
            break  # the broken line goes on past the data
        line_end = int(newlines[j]) if j < len(newlines) else n
        bad.append((x, line_end, kind))
        x = scan = line_end + 1
        p = int(np.searchsorted(quotes, x)) & 1  # parity starts again at the next line
    empty = np.array([], dtype=np.int64)
    return _Split(
        x if x < n else n,
        newlines,
        np.concatenate(starts) if starts else empty,
        np.concatenate(ends) if ends else empty,
        np.array([b[0] for b in bad], dtype=np.int64),
        np.array([b[1] for b in bad], dtype=np.int64),
        np.array([b[2] for b in bad], dtype=np.int64),
    )


def _byte_at(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The bytes at `positions`, with 10 (a newline) for positions outside the data."""
    inside = (positions >= 0) & (positions < len(arr))
    out = np.full(len(positions), 10, dtype=np.uint8)
    out[inside] = arr[positions[inside]]
    return out


def _after_spaces_ok(arr: np.ndarray, positions: np.ndarray, delimiter: int) -> np.ndarray:
    """Whether the first byte that is not a space, from each of `positions`, may follow a closing quote."""
    positions = positions.copy()
    for _ in range(256):  # runs of spaces are short; a longer one is not skipped
        spaces = _byte_at(arr, positions) == 32
        spaces &= positions < len(arr)
        if not spaces.any():
            break
        positions[spaces] += 1
    following = _byte_at(arr, positions)
    ok: np.ndarray = (following == delimiter) | (following == 10) | (following == 13)
    return ok


@dataclass(frozen=True)
class BrokenLine:
    """The first line of a CSV record whose quoting is broken."""

    line_number: int
    raw: str
    unclosed: bool  # a quoted field never closed (else: closed and followed by more text)


@dataclass
class CsvRecords:
    """The records of a CSV file as `write_csv_records` wrote them, header first, one per line."""

    line_numbers: np.ndarray  # physical line (in the input) of each written record's first line
    ends: np.ndarray  # offset in the output just after each written record (where its newline is)
    broken: list[BrokenLine] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.line_numbers)


def write_csv_records(path: Path, compression: str | None, delimiter: bytes, out: BinaryIO) -> CsvRecords:
    """Write the records of a CSV file to `out`, each on one line (a quoted field keeps its newlines), and
    set its broken lines aside; blank lines go, CRLF becomes LF, and the BOM is dropped."""
    line_numbers: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    broken: list[BrokenLine] = []
    written = 0
    for chunk in _csv_chunks(path, compression, delimiter[0]):
        arr = np.frombuffer(chunk.data, dtype=np.uint8)
        for start, end, line, kind in zip(
            chunk.bad_starts, chunk.bad_ends, chunk.bad_line_numbers, chunk.bad_kinds, strict=True
        ):
            raw = chunk.data[start:end].decode("utf-8", errors="replace")
            broken.append(BrokenLine(int(line), raw, kind == _UNCLOSED))
        if len(chunk.starts) == 0:
            continue
        body = _joined(arr, chunk.starts, chunk.ends)
        out.write(body.tobytes())
        lengths = chunk.ends - chunk.starts
        ends.append(written + np.cumsum(lengths + 1) - 1)
        line_numbers.append(chunk.line_numbers)
        written += len(body)
    empty = np.array([], dtype=np.int64)
    return CsvRecords(
        np.concatenate(line_numbers) if line_numbers else empty, np.concatenate(ends) if ends else empty, broken
    )


def _joined(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The bytes of the records [starts, ends), each followed by a newline, vectorised: the data less the
    bytes between one record's end and the next one's start (a CR's newline, blank and broken lines)."""
    n = len(arr)
    ext = np.empty(n + 1, dtype=np.uint8)
    ext[:n] = arr
    ext[ends] = 10  # each record's CR, newline, or the end of the data becomes its newline
    keep = np.ones(n + 1, dtype=bool)
    keep[: starts[0]] = False
    keep[ends[-1] + 1 :] = False
    gap_starts = ends[:-1] + 1
    gaps = starts[1:] - gap_starts
    if gaps.any():
        total = int(gaps.sum())
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(gaps) - gaps, gaps)
        keep[np.repeat(gap_starts, gaps) + offsets] = False
    return ext[keep]


def locate(
    path: Path,
    compression: str | None,
    ordinals: np.ndarray,
    *,
    csv: bool = False,
    header_records: int = 0,
    delimiter: bytes = b",",
) -> dict[int, Located]:
    """Line number and text of the records at these 0-based ordinals (after `header_records` skipped).

    For CSV, a broken line (see the module docstring) counts as a record, as DuckDB's reader counts it."""
    wanted = np.unique(np.asarray(ordinals, dtype=np.int64) + header_records)
    found: dict[int, Located] = {}
    if len(wanted) == 0:
        return found
    seen = 0
    for data, starts, ends, line_numbers, unterminated_last in _records(path, compression, csv, delimiter):
        n = len(starts)
        lo, hi = np.searchsorted(wanted, [seen, seen + n])
        for w in wanted[lo:hi]:
            i = int(w - seen)
            raw = data[starts[i] : ends[i]].decode("utf-8", errors="replace")
            found[int(w) - header_records] = Located(int(line_numbers[i]), raw, unterminated_last and i == n - 1)
        seen += n
        if seen > wanted[-1]:
            break
    return found


def _records(
    path: Path, compression: str | None, csv: bool, delimiter: bytes
) -> Iterator[tuple[bytes, np.ndarray, np.ndarray, np.ndarray, bool]]:
    """(data, starts, ends, line numbers, whether the last is the file's unterminated last line) per chunk."""
    if not csv:
        for chunk in _chunks(path, compression):
            yield chunk.data, chunk.starts, chunk.ends, chunk.line_numbers, chunk.final and chunk.unterminated
        return
    for c in _csv_chunks(path, compression, delimiter[0]):
        if len(c.bad_starts):  # broken lines in file order among the records
            order = np.argsort(np.concatenate((c.starts, c.bad_starts)), kind="stable")
            yield (
                c.data,
                np.concatenate((c.starts, c.bad_starts))[order],
                np.concatenate((c.ends, c.bad_ends))[order],
                np.concatenate((c.line_numbers, c.bad_line_numbers))[order],
                False,
            )
        else:
            yield c.data, c.starts, c.ends, c.line_numbers, False


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
