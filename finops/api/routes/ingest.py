"""`POST /v1/ingest/{source}`: push records (JSONL, JSON, CSV, Parquet; gzip allowed); the CLI's report back."""

from __future__ import annotations

import zoneinfo
from pathlib import Path as FilePath
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Request

from finops.api.deps import Ingester, SettingsDep, StateDep
from finops.api.models import IngestReportBody
from finops.api.push import ingest_body, private_folder, receive_body, suffix_for
from finops.api.routing import QueryCheckedRoute
from finops.api.state import AppState
from finops.errors import InputError
from finops.ingest import IngestOptions, IngestReport, parse_fx_rates
from finops.ingest.sources import get_adapter

router = APIRouter(route_class=QueryCheckedRoute, tags=["ingest"])  # reads its own body, with the ingest size limit


@router.post("/v1/ingest/{source}", response_model=IngestReportBody)
async def post_ingest(
    request: Request,
    caller: Ingester,
    settings: SettingsDep,
    state: StateDep,
    source: Annotated[str, Path(max_length=40, description="A source name (gateway, litellm, ...) or auto.")],
    content_type: Annotated[str | None, Header()] = None,
    content_encoding: Annotated[str | None, Header()] = None,
    name: Annotated[
        str, Query(max_length=200, pattern=r"^[\w.@:+-]+$", description="Recorded as source_file.")
    ] = "api-push",
    timezone: Annotated[str | None, Query(max_length=64, description="Zone of timestamps without offset.")] = None,
    fx_rate: Annotated[
        list[str] | None,
        Query(max_length=50, description="CODE=RATE, USD per unit of a currency the records' amounts are in."),
    ] = None,
    litellm_prompt_tokens: Annotated[
        Literal["auto", "all", "reads", "none"],
        Query(description="litellm: what prompt_tokens includes of cache reads and writes (--litellm-prompt-tokens)."),
    ] = "auto",
) -> IngestReportBody:
    """Ingest the body as one file, in one transaction: every record accepted, a duplicate, or rejected
    with its reason (kept in rejected_usage). Pushing the same records twice adds nothing."""
    if source != "auto":
        get_adapter(source)  # an unknown source is refused before the body is read
    suffix = suffix_for(content_type, content_encoding)
    options = IngestOptions(
        zone=_zone(timezone),
        fx_rates=parse_fx_rates(fx_rate or (), "fx_rate"),
        max_future_s=settings.max_future_s,
        min_timestamp=settings.min_timestamp,
        litellm_prompt_tokens=litellm_prompt_tokens,
    )
    with private_folder() as folder:
        path = await receive_body(request, FilePath(folder), suffix, settings.api_max_ingest_bytes)
        report = await anyio.to_thread.run_sync(_ingest, state, path, source, options, f"api:{name}")
    return IngestReportBody(**report.as_dict())


def _ingest(state: AppState, path: FilePath, source: str, options: IngestOptions, name: str) -> IngestReport:
    try:
        with state.write_lock, state.database() as db:
            return ingest_body(db, path, source, options, name)
    finally:
        state.cache.invalidate()  # after the commit (SQL snapshots follow the batch id themselves)


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError("timezone is not a known IANA zone name (e.g. UTC, Europe/Paris).") from None
    return value
