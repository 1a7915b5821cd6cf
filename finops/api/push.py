"""Records pushed over HTTP go through the CLI's ingest code: the body is written to a private temporary
file (with the suffix of its content type) and ingested as one file, so the report is the CLI's report.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from fastapi import Request

from finops.api.errors import UnsupportedMediaType
from finops.api.routing import read_limited
from finops.errors import InputError
from finops.ingest import IngestOptions, IngestReport, sniff_for
from finops.ingest.engine import ingest_file
from finops.ingest.sources import get_adapter
from finops.store.db import Database

__all__ = ["MEDIA_SUFFIXES", "ingest_body", "suffix_for"]

MEDIA_SUFFIXES = {
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/jsonlines": ".jsonl",
    "application/x-jsonlines": ".jsonl",
    "application/json": ".json",
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/parquet": ".parquet",
}


def suffix_for(content_type: str | None, content_encoding: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_SUFFIXES:
        raise UnsupportedMediaType(
            "Push records as one of these content types: " + ", ".join(sorted(MEDIA_SUFFIXES)) + ".",
            accepted=sorted(MEDIA_SUFFIXES),
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in {"identity", "gzip"}:
        raise UnsupportedMediaType("Content-Encoding may be gzip or none.", accepted=["gzip", "identity"])
    suffix = MEDIA_SUFFIXES[media]
    return suffix + (".gz" if encoding == "gzip" and suffix != ".parquet" else "")


async def receive_body(request: Request, folder: Path, suffix: str, limit: int) -> Path:
    """Write the request body to `folder/push<suffix>`, refusing it past `limit` bytes."""
    path = folder / f"push{suffix}"
    path.write_bytes(await read_limited(request, limit, "FINOPS_API_MAX_INGEST_BYTES"))
    return path


def ingest_body(db: Database, path: Path, source: str, options: IngestOptions, name: str) -> IngestReport:
    """Ingest one pushed file as `name` (its `source_file` in `ingest_batches`)."""
    adapter = None if source == "auto" else get_adapter(source)
    try:
        file, chosen = sniff_for(path, adapter, name, "bodies")
        report = ingest_file(db, file, chosen, options, detected=adapter is None, display_name=name)
    except InputError as exc:
        raise _named(exc, path, name) from None
    _speak_http(db, report)
    return report


# what a reject message tells a command-line user to give, and how an HTTP client gives it
_HTTP_WORDS = (("with --timezone", "with ?timezone="), ("--fx-rate ", "?fx_rate="), ("--source ", "/v1/ingest/"))


def _http_words(message: str) -> str:
    for cli, http in _HTTP_WORDS:
        message = message.replace(cli, http)
    return message


def _speak_http(db: Database, report: IngestReport) -> None:
    """The reject messages of a push (its report's samples and its rows of `rejected_usage`) name the route's
    query parameters and paths, not the command line's options."""
    report.samples = [dataclasses.replace(s, message=_http_words(s.message)) for s in report.samples]
    if report.rejected:
        message = "message"
        for cli, http in _HTTP_WORDS:
            message = f"replace({message}, '{cli}', '{http}')"
        db.execute(f"UPDATE rejected_usage SET message = {message} WHERE batch_id = $b", {"b": report.batch_id})


def _named(exc: InputError, path: Path, name: str) -> InputError:
    """The error with the body's name where it names the server's temporary file."""
    exc.message = _http_words(exc.message.replace(str(path), name))
    exc.context = {k: v.replace(str(path), name) if isinstance(v, str) else v for k, v in exc.context.items()}
    return exc


def private_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="finops-push-")
