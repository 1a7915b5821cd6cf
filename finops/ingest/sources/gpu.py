"""`gpu`: canonical GPU job and cluster capacity records (DESIGN.md) -> `gpu_jobs` / `gpu_capacity`.

Reads JSONL, JSON arrays, CSV and Parquet, gzip or not. Input keys are the canonical names; three
are renamed: `start` -> start_ts, `end` -> end_ts, `cost_usd` -> reported_cost_usd.

**One kind per file.** A file holds GPU jobs or capacity records, never both. The kind is chosen
from the file's head: jobs when its columns include `job_id` (CSV, Parquet), or when at least half
of its first records carry `job_id` (JSON); capacity otherwise. A record of the other kind is
rejected (reason `wrong_record_kind`, or the field it lacks), never loaded as the wrong kind and
never dropped. Fields of the other kind on an accepted record (a `team` on a capacity record, an
`hourly_rate` on a job) are not stored; extra, unknown keys are kept in `extra`.

Jobs (`targets.GPU_JOBS`): `end` or `gpu_seconds` (GPU time = wall seconds x `gpu_count`, which
may be fractional for MIG slices and time-slicing, default 1). With only `gpu_seconds`, the end is
start + gpu_seconds / gpu_count, to the microsecond; with only `end`, gpu_seconds is (end - start)
x gpu_count. With both, they must agree within one wall second (at least one GPU-second), else the
record is rejected (`inconsistent_gpu_time`): either could be the wrong one, and trusting one would
misprice the job; within it, both are stored as given.
A job is stored whole on its start's UTC day, even across midnight; pricing splits it by day.

Capacity (`targets.GPU_CAPACITY`): the natural key `capacity_id` is the record's own `capacity_id`,
else `cluster/gpu_type/start` (start in UTC, e.g. `gpu-east/H100/2025-03-03T00:00:00Z`): name
pools that share a cluster, GPU type and start with a `capacity_id`, or they are one record.
"""

from __future__ import annotations

from finops.ingest.adapter import Adapter
from finops.ingest.files import Format, InputFile
from finops.ingest.sources._sniff import first_records, header
from finops.ingest.targets import GPU_CAPACITY, GPU_JOBS, Target

__all__ = ["GPU"]

# target field -> input key, for both kinds; the engine keeps the chosen target's fields
_INPUT_KEY = {
    "job_id": "job_id",
    "capacity_id": "capacity_id",
    "start_ts": "start",
    "end_ts": "end",
    "gpu_seconds": "gpu_seconds",
    "gpu_type": "gpu_type",
    "gpu_count": "gpu_count",
    "team": "team",
    "feature": "feature",
    "project": "project",
    "user": "user",
    "cluster": "cluster",
    "status": "status",
    "tags": "tags",
    "reported_cost_usd": "cost_usd",
    "hourly_rate": "hourly_rate",
    "hourly_rate_text": "hourly_rate",  # the capacity target checks the rate's decimal places on its text
    "currency": "currency",
}
_TEXT = ("job_id", "capacity_id", "gpu_type", "team", "feature", "project", "user", "cluster", "status", "currency")
_TYPED = ("start", "end", "gpu_seconds", "gpu_count", "tags", "cost_usd", "hourly_rate")

_JOB_SIGNATURE = frozenset({"job_id", "gpu_type", "start"})
_CAPACITY_SIGNATURE = frozenset({"cluster", "gpu_type", "gpu_count", "start", "end"})
# keys of token usage records (gateway, LiteLLM, provider exports): such a file is never GPU records
_TOKEN_KEYS = frozenset(
    {"request_id", "input_tokens", "output_tokens", "prompt_tokens", "completion_tokens", "spend", "response_cost"}
)


def _mapping(fmt: Format, columns: frozenset[str]) -> dict[str, str]:
    return {name: f'"{key}"' for name, key in _INPUT_KEY.items() if key in columns}


def _head_keys(file: InputFile) -> list[frozenset[str]]:
    """The keys of each record in the file's head: one set of column names for CSV and Parquet."""
    if file.format in (Format.CSV, Format.PARQUET):
        columns = header(file)
        return [frozenset(columns)] if columns else []
    return [frozenset(r) for r in first_records(file) if isinstance(r, dict)]


def _choose_target(file: InputFile) -> Target:
    """Jobs when the head's records carry `job_id` (at least half of them), capacity otherwise."""
    heads = _head_keys(file)
    if not heads:  # empty, or a JSON document too large to parse from its head
        text = file.head_text()
        return GPU_JOBS if not text.strip() or '"job_id"' in text else GPU_CAPACITY
    with_id = sum("job_id" in keys for keys in heads)
    return GPU_JOBS if 2 * with_id >= len(heads) else GPU_CAPACITY


def _recognise(file: InputFile) -> bool:
    heads = _head_keys(file)
    if any(keys & _TOKEN_KEYS for keys in heads):
        return False
    return any(_JOB_SIGNATURE <= keys or _CAPACITY_SIGNATURE <= keys for keys in heads)


GPU = Adapter(
    name="gpu",
    description="canonical GPU job records and cluster capacity records, one kind per file "
    "(JSONL, JSON array, CSV, Parquet; gzip or not)",
    formats=frozenset(Format),
    target=GPU_JOBS,
    input_fields={**{k: "VARCHAR" for k in _TEXT}, **{k: "JSON" for k in _TYPED}},
    mapping=_mapping,
    recognise=_recognise,
    choose_target=_choose_target,
)
