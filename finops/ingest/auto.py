"""`--source auto`: recognise a file's source by its shape, and say which one was chosen."""

from __future__ import annotations

from finops.errors import UnrecognisedFile
from finops.ingest.adapter import Adapter
from finops.ingest.files import InputFile
from finops.ingest.sources import SOURCES

__all__ = ["detect_source"]


def detect_source(file: InputFile) -> Adapter:
    """The first adapter (in `SOURCES` order) that recognises the file; otherwise a clear error."""
    if not file.head.strip():
        raise UnrecognisedFile(
            f"{file.display}: the file is empty, so its source cannot be recognised. "
            f"Name it with --source ({', '.join(SOURCES)}).",
            path=file.display,
        )
    for adapter in SOURCES.values():
        if file.format in adapter.formats and adapter.recognise(file):
            return adapter
    raise UnrecognisedFile(
        f"{file.display}: not recognised as any source ({file.format.value} file). "
        f"Known sources are: {', '.join(SOURCES)}; name one with --source.",
        path=file.display,
        sources=list(SOURCES),
    )
