"""`gateway`: the canonical per-request log (DESIGN.md), from JSONL, JSON arrays, CSV or Parquet."""

from __future__ import annotations

from finops.ingest.adapter import Adapter, identity_mapping
from finops.ingest.files import Format, InputFile
from finops.ingest.sources._sniff import first_records, header
from finops.ingest.targets import USAGE

__all__ = ["GATEWAY"]

_TEXT = (
    "request_id",
    "model",
    "provider",
    "team",
    "feature",
    "project",
    "user",
    "environment",
    "api_key",
    "trace_id",
    "prompt_hash",
    "service_tier",
    "currency",
)
_TYPED = (
    "ts",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "tags",
    "attempt",
    "status",
    "latency_ms",
    "cost_usd",
)
_SIGNATURE = {"request_id", "ts", "input_tokens", "output_tokens"}


def _mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    mapping = identity_mapping(USAGE.field_names, columns)
    mapping.pop("reported_cost_usd", None)
    if "cost_usd" in columns:
        mapping["reported_cost_usd"] = '"cost_usd"'
    return mapping


def _recognise(file: InputFile) -> bool:
    if file.format in (Format.CSV, Format.PARQUET):
        return _SIGNATURE <= set(header(file))
    return any(isinstance(r, dict) and _SIGNATURE <= r.keys() for r in first_records(file))


GATEWAY = Adapter(
    name="gateway",
    description="canonical per-request gateway log (JSONL, JSON array, CSV, Parquet; gzip or not)",
    formats=frozenset(Format),
    target=USAGE,
    input_fields={**{k: "VARCHAR" for k in _TEXT}, **{k: "JSON" for k in _TYPED}},
    mapping=_mapping,
    recognise=_recognise,
)
