"""PLACEHOLDER being written: OpenAI organization Usage and Costs API pages."""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format
from finops.ingest.targets import USAGE

__all__ = ["OPENAI_USAGE", "OPENAI_COSTS"]


def _unwritten(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    raise NotImplementedError("adapter not written yet")


OPENAI_USAGE = Adapter(
    name="openai-usage",
    description="OpenAI organization Usage and Costs API pages",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)

OPENAI_COSTS = Adapter(
    name="openai-costs",
    description="OpenAI organization Usage and Costs API pages",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)
