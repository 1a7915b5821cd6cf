"""PLACEHOLDER being written: Anthropic Admin usage and cost reports."""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format
from finops.ingest.targets import USAGE

__all__ = ["ANTHROPIC_USAGE", "ANTHROPIC_COSTS"]


def _unwritten(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    raise NotImplementedError("adapter not written yet")


ANTHROPIC_USAGE = Adapter(
    name="anthropic-usage",
    description="Anthropic Admin usage and cost reports",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)

ANTHROPIC_COSTS = Adapter(
    name="anthropic-costs",
    description="Anthropic Admin usage and cost reports",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)
