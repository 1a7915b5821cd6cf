"""Reads and writes of the detection stage: detector inputs from `spend_lines`, findings replaced in the horizon."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from finops.detect import DetectInputs
from finops.store.db import Database
from finops.store.spend import frame, registered

__all__ = ["read_inputs", "replace_findings"]

_LINES = """
    SELECT s.ts, s.charge_day, s.source, s.provider, s.model, s.team, s.feature, s.project, s."user",
           s.cost_usd, s.list_cost_usd, s.input_tokens, s.cached_input_tokens, s.cache_write_tokens, s.output_tokens,
           s.reasoning_tokens, s.requests, s.trace_id, s.request_id, s.attempt, s.status,
           s.prompt_hash, s.latency_ms
    FROM spend_lines s
    WHERE s.line_type = 'usage' AND s.ts >= $start AND s.ts < $end"""

_HOURLY = """
    SELECT time_bucket(INTERVAL 1 HOUR, ts) AS hour, team, feature, provider, model,
           sum(cost_usd) AS cost_usd, sum(requests) AS requests, count(*) AS lines,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM spend_lines
    WHERE line_type = 'usage' AND ts >= $start AND ts < $end
    GROUP BY ALL"""


def read_inputs(db: Database, history_start: datetime, horizon_start: datetime, as_of: datetime) -> DetectInputs:
    params = {"start": history_start, "end": as_of}
    return DetectInputs(
        lines=frame(db, _LINES, params).lazy(),
        hourly=frame(db, _HOURLY, params).lazy(),
        history_start=history_start,
        horizon_start=horizon_start,
        as_of=as_of,
    )


def replace_findings(db: Database, findings: pl.DataFrame, horizon_start: datetime, run_id: int) -> int:
    """Replace the findings of incidents ending after `horizon_start`; an incident found again keeps its id
    and its first run."""
    with db.transaction(), registered(db, "_found", findings):
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _first AS SELECT finding_id, first_run_id, detected_at FROM findings "
            "WHERE window_end > $h",
            {"h": horizon_start},
        )
        db.execute("DELETE FROM findings WHERE window_end > $h", {"h": horizon_start})
        db.execute("DELETE FROM findings WHERE finding_id IN (SELECT finding_id FROM _found)")
        db.execute(
            """INSERT INTO findings BY NAME
               SELECT f.* REPLACE (CAST(f.evidence AS JSON) AS evidence, CAST(f.details AS JSON) AS details),
                      coalesce(p.first_run_id, $run) AS first_run_id, $run AS last_run_id,
                      coalesce(p.detected_at, now()) AS detected_at
               FROM _found f LEFT JOIN _first p USING (finding_id)""",
            {"run": run_id},
        )
        db.execute("DROP TABLE _first")
    return findings.height
