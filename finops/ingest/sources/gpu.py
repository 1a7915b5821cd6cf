"""PLACEHOLDER being written: canonical GPU job and cluster capacity records."""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format
from finops.ingest.targets import USAGE

__all__ = ["GPU"]


def _unwritten(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    raise NotImplementedError("adapter not written yet")


GPU = Adapter(
    name="gpu",
    description="canonical GPU job and cluster capacity records",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)
