"""Stage 4: find the money that burns. Every detector returns rows of `FINDING_SCHEMA`.

    retries.py   retry chains (one logical request tried many times) and retry storms (a feature's
                 or a model's retry share jumping above its own baseline)
    spikes.py    hourly and daily cost spikes and level shifts against a seasonal, robust baseline;
                 also `finops detect series` over any CSV time series
    outliers.py  single requests far above their feature/model's usual cost, and runaway sessions

`run_all` runs them over the detection inputs and returns merged, finalised incidents with stable ids.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from finops.detect.findings import FINDING_COLUMNS, FINDING_SCHEMA, finalise, fold_outliers
from finops.detect.source import FrameSource, LineSource

__all__ = ["DETECTOR_MODULES", "DetectInputs", "Detector", "run_all"]


@dataclass(frozen=True)
class DetectInputs:
    """What detectors read (all UTC). Findings are reported for incidents that end after `horizon_start`;
    lines and hourly series reach back to `history_start` for baselines.

    `source` answers the retry and outlier detectors' questions about the lines (`LineSource`) without
    handing over every line: `finops.store.findings.read_inputs` gives one that asks DuckDB; without one,
    `reads()` answers them from `lines` in memory (the same answers)."""

    lines: pl.LazyFrame  # attempt-level usage lines (spend_lines of line_type usage), ts in [history_start, as_of)
    hourly: pl.LazyFrame  # hour (UTC, Datetime), team, feature, provider, model, cost_usd, requests, tokens
    history_start: datetime
    horizon_start: datetime
    as_of: datetime
    source: LineSource | None = None

    def reads(self) -> LineSource:
        """The source of the detectors' line reads: `source`, else one over `lines`."""
        return self.source if self.source is not None else FrameSource(self.lines)


Detector = Callable[[DetectInputs], pl.LazyFrame]

# module -> function name; each is looked up when the detectors run
DETECTOR_MODULES: dict[str, str] = {
    "finops.detect.retries": "detect_retries",
    "finops.detect.spikes": "detect_spikes",
    "finops.detect.outliers": "detect_outliers",
}


def _detectors() -> list[Detector]:
    found = []
    for module, name in DETECTOR_MODULES.items():
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ModuleNotFoundError, AttributeError):
            continue  # a detector not installed in this build
    return found


def run_all(inputs: DetectInputs, detectors: list[Detector] | None = None) -> pl.DataFrame:
    """Every detector's incidents that end after the horizon start, with stable ids and severity; an outlier
    request that is part of a cost spike or a runaway session is folded into it (`fold_outliers`)."""
    # collected one by one: a lazy detector plan inside the concat is planned again, and much slower
    frames = [
        d(inputs).select(list(FINDING_SCHEMA)).collect().lazy()
        for d in (detectors if detectors is not None else _detectors())
    ]
    if not frames:
        return pl.DataFrame(schema={c: FINDING_SCHEMA.get(c, pl.String()) for c in FINDING_COLUMNS})
    merged = pl.concat([f.cast(FINDING_SCHEMA) for f in frames], how="vertical")  # type: ignore[arg-type]
    horizon = (
        pl.lit(inputs.horizon_start).dt.replace_time_zone("UTC")
        if inputs.horizon_start.tzinfo is None
        else pl.lit(inputs.horizon_start)
    )
    return finalise(fold_outliers(merged).filter(pl.col("window_end") > horizon)).collect()
