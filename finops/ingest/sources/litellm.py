"""PLACEHOLDER being written: LiteLLM StandardLoggingPayload records and LiteLLM_SpendLogs exports."""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format
from finops.ingest.targets import USAGE

__all__ = ["LITELLM"]


def _unwritten(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    raise NotImplementedError("adapter not written yet")


LITELLM = Adapter(
    name="litellm",
    description="LiteLLM StandardLoggingPayload records and LiteLLM_SpendLogs exports",
    formats=frozenset(),
    target=USAGE,
    input_fields={},
    mapping=_unwritten,
)
