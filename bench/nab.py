"""The Numenta Anomaly Benchmark (NAB v1.1) score of `finops detect series`, scored as NAB scores it.

    python -m bench.nab [--data ../shared/data/anomaly/nab] [--out bench/out] [--tune]

Order of operations:
  1. the settings: `SpikeConfig`'s defaults, which `--tune` chose on a seeded synthetic corpus
     (`synthetic_corpus`: 120 NAB-like series of ten kinds with labelled windows, scored with the same NAB scorer) by
     coordinate ascent over `TUNING_GRID`; with `--tune` the search runs again and its pick
     is used (about five minutes on a busy 2-core machine); the synthetic corpus is scored in every run;
  2. load the NAB files (`data/<category>/<file>.csv`), their windows (`labels/combined_windows.json`)
     and the three profiles (`config/profiles.json`);
  3. run the online detector (`finops.detect.spikes.score_series`, the code behind `finops detect
     series`) over every file, with the settings chosen in 1;
  4. per profile: every row's NAB sweep score (`sweep_scores`: the scaled sigmoid of its position
     relative to the labelled windows, probationary rows dropped), one threshold for the whole corpus
     that maximises the total (`optimise_threshold`), each file's raw score at that threshold;
  5. normalise: 100 * (raw - null) / (perfect - null), the null detector scoring -fnWeight per window
     and the perfect one tpWeight per window;
  6. check the scorer: NAB's random detector (Python `random.seed(42)` per file, `random.uniform(0, 1)`
     per row) rescored at its published threshold against the published per-file scores in
     `results/all_detectors_per_file_scores.csv`, and the null detector against its published 0.

The scorer follows `nab/sweeper.py`, `nab/optimizer.py`, `nab/scorer.py` and `Runner.normalize` of NAB
v1.1 (commit ea702d75); it differs from them only in how it adds things up (whole columns, cumulative sums):
`tests/test_detect_series.py` checks the corpus-wide threshold search against scoring every candidate threshold
one by one, and step 6 checks the whole scorer against NAB's published figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "anomaly" / "nab"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROBATION_PERCENT = 0.15
SCORE_TOLERANCE = 1e-4  # the published per-file scores agree with ours to about 2e-6
# Published standard-profile scores on these 30 files (63 windows), from issue 4: each detector's per-file
# scores in results/all_detectors_per_file_scores.csv, summed over the 30 files and normalised as above.
PUBLISHED_HEADLINE = {
    "numenta": "Numenta HTM",
    "knncad": "KNN-CAD",
    "randomCutForest": "Random Cut Forest",
    "twitterADVec": "Twitter ADVec",
    "random": "random",
}
TARGET_DETECTOR = "randomCutForest"

Floats = npt.NDArray[np.float64]


# --- NAB's scoring function --------------------------------------------------------------------------------------


def scaled_sigmoid(position: Floats) -> Floats:
    """NAB's scaled sigmoid: 2 * sigmoid(-5 x) - 1, and -1 beyond 3 window widths past a window."""
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


def probation_length(rows: int) -> float:
    """Rows NAB ignores at the start of a file: 15 % of it, at most 750 rows."""
    return min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000)


@dataclass(frozen=True)
class Labelled:
    """One file: its timestamps and its labelled windows as (first row, last row) index pairs."""

    name: str
    timestamps: list[datetime]
    windows: list[tuple[int, int]]

    @property
    def rows(self) -> int:
        return len(self.timestamps)


def window_indices(name: str, timestamps: Sequence[datetime], limits: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """Row indices of each window's limits. NAB enters a window only on a row stamped exactly at its start (and
    looks its end up with `list.index`), so a limit that is not a row's timestamp is an error here too."""
    position = {t: i for i, t in enumerate(timestamps)}
    out = []
    for start, end in limits:
        a, b = position.get(_parse_ts(start)), position.get(_parse_ts(end))
        if a is None or b is None:
            raise ValueError(f"{name}: window [{start}, {end}] does not start and end on rows of the file")
        out.append((a, b))
    return out


def sweep_scores(
    file: Labelled, cost: dict[str, float], probation: Callable[[int], float] = probation_length
) -> tuple[Floats, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each row's weighted NAB score if it were a detection (`Sweeper.calcSweepScore`), its window number (-1 when
    outside every window) and whether it is scored at all (False in the probationary period).

    In a window of width w ending at row b, row i scores scaled_sigmoid(-(b - i + 1) / w) * tpWeight / S(-1);
    after a window (last row b, width w) row i scores scaled_sigmoid(|b - i| / (w - 1)) * fpWeight; before the
    first window a detection scores -fpWeight.
    """
    n = file.rows
    idx = np.arange(n, dtype=np.float64)
    window = np.full(n, -1, dtype=np.int64)
    prev_right = np.full(n, np.nan)
    prev_width = np.full(n, np.nan)
    score = np.empty(n)
    max_tp = float(scaled_sigmoid(np.array([-1.0]))[0])
    for k, (a, b) in enumerate(file.windows):  # a loop over the (few) windows, not the rows
        width = float(b - a + 1)
        window[a : b + 1] = k
        score[a : b + 1] = scaled_sigmoid(-(b - idx[a : b + 1] + 1) / width) * cost["tpWeight"] / max_tp
        prev_right[b + 1 :] = b
        prev_width[b + 1 :] = width
    outside = window < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        past = scaled_sigmoid(np.abs(prev_right - idx) / (prev_width - 1.0))
    score[outside] = np.where(np.isnan(prev_right), -1.0, past)[outside] * cost["fpWeight"]
    scored = idx >= probation(n)
    return score, window, scored


@dataclass
class FileScore:
    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    windows: int
    detected_windows: int


def score_file(
    file: Labelled,
    anomaly: Floats,
    threshold: float,
    cost: dict[str, float],
    probation: Callable[[int], float] = probation_length,
) -> FileScore:
    """One file's raw NAB score at a threshold (`Sweeper.scoreDataSet`): a detection is a row whose anomaly score is
    >= threshold; each window scores its earliest detection, or -fnWeight when it has none; every detection
    outside the windows adds its (negative) sweep score."""
    sweep, window, scored = sweep_scores(file, cost, probation)
    hit = (anomaly >= threshold) & scored
    inside = window >= 0
    fp_score = float(sweep[hit & ~inside].sum())
    total = fp_score
    detected = 0
    for k in range(len(file.windows)):
        in_k = hit & (window == k)
        if in_k.any():
            detected += 1
            total += float(sweep[in_k].max())
        else:
            # a window inside the probation period is not named in NAB and so never counted
            total -= cost["fnWeight"] if scored[window == k].any() else 0.0
    return FileScore(
        name=file.name,
        score=total,
        tp=int((hit & inside).sum()),
        tn=int((~hit & ~inside & scored).sum()),
        fp=int((hit & ~inside).sum()),
        fn=int((~hit & inside & scored).sum()),
        windows=len(file.windows),
        detected_windows=detected,
    )


def optimise_threshold(
    files: Sequence[Labelled], anomaly: Sequence[Floats], cost: dict[str, float]
) -> tuple[float, float]:
    """The one threshold for the whole corpus that maximises the summed raw score (`nab/optimizer.py`), and that
    score. Every distinct anomaly score is a candidate (plus 1.1, which detects nothing); ties in the total go
    to the highest threshold, as NAB's stable sort does.

    Done on whole columns: rows sorted by anomaly score (descending); a false positive adds its sweep score; a
    window's contribution is -fnWeight until its first detection and then the best (earliest) sweep score so
    far, so each row adds (running max of its window) - (the window's previous running max).
    """
    frames = []
    for w_offset, (file, scores) in enumerate(zip(files, anomaly, strict=True)):
        sweep, window, scored = sweep_scores(file, cost)
        frames.append(
            pl.DataFrame(
                {
                    "anomaly": scores.astype(np.float64),
                    "sweep": sweep,
                    "window": np.where(window >= 0, window + 1_000 * w_offset, -1),
                    "scored": scored,
                }
            )
        )
    rows = pl.concat(frames).filter("scored").sort("anomaly", descending=True, maintain_order=True)
    n_windows = rows.filter(pl.col("window") >= 0)["window"].n_unique()
    in_window = pl.col("window") >= 0
    previous = pl.col("best").shift(1, fill_value=-cost["fnWeight"]).over("window")
    totals = (
        rows.with_columns(best=pl.col("sweep").cum_max().over("window"))
        .with_columns(delta=pl.when(in_window).then(pl.col("best") - previous).otherwise(pl.col("sweep")))
        .with_columns(total=pl.col("delta").cum_sum() - n_windows * cost["fnWeight"])
        .group_by("anomaly", maintain_order=True)
        .agg(pl.col("total").last())
    )
    candidates = [(1.1, -n_windows * cost["fnWeight"]), *zip(totals["anomaly"], totals["total"], strict=True)]
    threshold, total = max(candidates, key=lambda c: c[1])  # max keeps the first (highest) of equal totals
    return float(threshold), float(total)


def normalised(raw: float, n_windows: int, cost: dict[str, float]) -> float:
    """`Runner.normalize`: 100 * (raw - null) / (perfect - null); the null detector scores -fnWeight per window
    and the perfect detector (each window's first row) tpWeight per window."""
    null, perfect = -n_windows * cost["fnWeight"], n_windows * cost["tpWeight"]
    return 100.0 * (raw - null) / (perfect - null)


# --- the NAB corpus ----------------------------------------------------------------------------------------------


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Corpus:
    files: list[Labelled]
    values: list[pl.DataFrame]  # timestamp, value
    profiles: dict[str, dict[str, float]]
    data_dir: Path
    shapes: dict[str, list[str]] = field(default_factory=dict)  # synthetic corpora: each window's planted shape

    @property
    def windows(self) -> int:
        return sum(len(f.windows) for f in self.files)


def load_corpus(data: Path, only: Sequence[str] | None = None) -> Corpus:
    """The NAB files under `data/data`, their windows and the cost matrices of the three profiles."""
    if not (data / "labels" / "combined_windows.json").is_file():
        raise SystemExit(f"NAB data not found at {data} (expected labels/combined_windows.json); use --data PATH.")
    limits = json.loads((data / "labels" / "combined_windows.json").read_text())
    profiles = {k: v["CostMatrix"] for k, v in json.loads((data / "config" / "profiles.json").read_text()).items()}
    files, values = [], []
    for path in sorted((data / "data").glob("*/*.csv")):
        name = path.relative_to(data / "data").as_posix()
        if only is not None and name not in only:
            continue
        frame = pl.read_csv(path, try_parse_dates=False).with_columns(
            pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S")
        )
        stamps = frame["timestamp"].to_list()
        files.append(Labelled(name, stamps, window_indices(name, stamps, limits[name])))
        values.append(frame)
    return Corpus(files, values, profiles, data)


def published(data: Path, files: Sequence[str]) -> pl.DataFrame:
    """Each published detector's normalised score per profile on these files (per-file raw scores summed)."""
    scores = pl.read_csv(data / "results" / "all_detectors_per_file_scores.csv").filter(pl.col("File").is_in(files))
    return scores.group_by("Detector", "Profile").agg(pl.col("Score").sum().alias("raw"), pl.len().alias("files"))


# --- validation of the scorer ------------------------------------------------------------------------------------


def random_detector(rows: int) -> Floats:
    """NAB's random detector: `random.seed(42)` at the start of each file, `random.uniform(0, 1)` per row."""
    rng = random.Random(42)
    return np.array([rng.uniform(0, 1) for _ in range(rows)])


def legacy_probation_length(rows: int) -> float:
    """The probation of the NAB version that produced the published random-detector rows: 15 %, with no cap."""
    return math.floor(PROBATION_PERCENT * rows)


def validate_scorer(corpus: Corpus) -> dict[str, Any]:
    """Rescore NAB's random detector at its published threshold and compare with the published per-file scores
    (score and TP/TN/FP/FN counts), under v1.1's probation rule and under the uncapped rule of older versions;
    and score the null detector (it must normalise to 0)."""
    table = pl.read_csv(corpus.data_dir / "results" / "all_detectors_per_file_scores.csv")
    out: dict[str, Any] = {}
    for profile in PROFILES:
        cost = corpus.profiles[profile]
        ref = table.filter(pl.col("Detector") == "random", pl.col("Profile") == profile)
        by_file = {r["File"]: r for r in ref.iter_rows(named=True)}
        exact: dict[str, list[str]] = {"v1.1": [], "uncapped": []}
        worst: dict[str, float] = {}
        for file in corpus.files:
            if file.name not in by_file:
                continue
            row = by_file[file.name]
            scores = random_detector(file.rows)
            diffs = []
            for rule, probation in (("v1.1", probation_length), ("uncapped", legacy_probation_length)):
                got = score_file(file, scores, row["Threshold"], cost, probation)
                same = (got.tp, got.tn, got.fp, got.fn) == (row["TP"], row["TN"], row["FP"], row["FN"])
                if same and abs(got.score - row["Score"]) < SCORE_TOLERANCE:
                    exact[rule].append(file.name)
                diffs.append(abs(got.score - row["Score"]))
            worst[file.name] = min(diffs)
        reproduced = set(exact["v1.1"]) | set(exact["uncapped"])
        null = sum(score_file(f, np.zeros(f.rows), 1.1, cost).score for f in corpus.files)
        out[profile] = {
            "random_files": len(by_file.keys() & {f.name for f in corpus.files}),
            "reproduced_exactly": len(reproduced),
            "reproduced_v1_1_rule": len(exact["v1.1"]),
            "max_abs_diff_reproduced": max((worst[k] for k in reproduced), default=None),
            "not_reproduced": {k: round(v, 4) for k, v in worst.items() if k not in reproduced},
            "null_normalised": normalised(null, corpus.windows, cost),
        }
    return out


# --- a small seeded synthetic corpus, NAB-like, to choose the settings on ---------------------------------------------


# a synthetic series: values, timestamps, the rows its anomalies are labelled at, and their shapes
Planted = tuple[Floats, npt.NDArray[np.datetime64], list[int], list[str]]


def _nab_windows(rows: int, starts: Sequence[int]) -> list[tuple[int, int]]:
    """NAB's window rule: 10 % of the file's rows shared between its anomalies, each window centred on one."""
    if not starts:
        return []
    half = int(0.1 * rows / len(starts)) // 2
    return [(max(0, s - half), min(rows - 1, s + half)) for s in sorted(starts)]


def _one_series(kind: str, rng: np.random.Generator) -> Planted:
    """One synthetic series of a kind (cost-like hourly, 5-minute metric, flat, sparse, half-hourly seasonal), its
    timestamps, the rows where its planted anomalies start (after NAB's 15 % probation) and their shapes."""
    step = {"cost": 60, "metric": 5, "flat": 5, "sparse": 5, "taxi": 30}[kind]
    rows = int(rng.integers(1500, 6000))
    stamps = np.datetime64("2024-03-01T00:00") + np.arange(rows) * np.timedelta64(step, "m")
    minutes = np.arange(rows) * step
    day = 2 * np.pi * (minutes % 1440) / 1440
    week = (minutes // 1440) % 7
    if kind in ("cost", "taxi"):
        amp = rng.uniform(0.3, 0.8)
        value = 100 * (1 + amp * np.sin(day - 2)) * np.where(week >= 5, rng.uniform(0.4, 0.9), 1.0)
        value = value * np.exp(rng.normal(0, rng.uniform(0.05, 0.25), rows))
    elif kind == "metric":
        noise = np.zeros(rows)
        shocks = rng.standard_t(2.5, rows) * rng.uniform(0.5, 2)
        for i in range(1, rows):  # an AR(1) process: sequential by nature, fine in a benchmark generator
            noise[i] = 0.9 * noise[i - 1] + shocks[i]
        value = 40 + 3 * np.sin(day) + noise
    elif kind == "flat":
        value = np.round(2 + rng.normal(0, 0.02, rows), 2)
        benign = rng.random(rows) < 0.002
        value[benign] += rng.uniform(0.5, 3, benign.sum())
    else:  # sparse
        value = np.where(rng.random(rows) < 0.05, rng.exponential(10, rows), 0.0)
    scale = float(np.median(np.abs(value - np.median(value)))) * 1.4826 or float(np.std(value)) or 1.0
    # what real operational series have and labels do not: short benign bursts, a slow wander of the level,
    # and now and then a small unlabelled step. NAB's labels were drawn by people looking at the whole file, so
    # what is labelled stands out and benign bursts are smaller than the labelled spikes (2-4 x scale; they
    # were 3-8 x until the series model, which made many benign bursts larger than the labelled ones)
    bursts = rng.random(rows) < rng.uniform(0.0, 0.004)
    value[bursts] += rng.choice([-1, 1], bursts.sum()) * rng.uniform(2, 4, bursts.sum()) * scale
    value += np.cumsum(rng.normal(0, rng.uniform(0, 0.05) * scale, rows))
    for step_at in rng.integers(0, rows, int(rng.integers(0, 3))):
        value[step_at:] += rng.choice([-1, 1]) * rng.uniform(1, 2.5) * scale
    # 1-4 anomalies a file (NAB: 63 windows in 30 files, one file without; 0-3 here until the series model, which
    # left a third of the files without a window and made the corpus far harsher on false positives than NAB)
    n_anomalies = int(rng.integers(1, 5))
    probation = int(0.15 * rows) + 100
    starts = sorted(rng.choice(np.arange(probation, rows - 50), size=n_anomalies, replace=False).tolist())
    starts = [s for i, s in enumerate(starts) if i == 0 or s - starts[i - 1] > rows // 8]
    scale = float(np.median(np.abs(value - np.median(value)))) * 1.4826 or float(np.std(value)) or 1.0
    shapes = []
    for s in starts:
        shape = str(rng.choice(["spike", "shift", "drop", "burst", "ramp"]))
        shapes.append(shape)
        length = int(rng.integers(1, 6)) if shape == "spike" else int(rng.integers(30, 300))
        end = min(rows, s + length)
        if shape == "spike":
            value[s:end] += rng.uniform(4, 12) * scale + (rng.uniform(2, 10) - 1) * abs(np.median(value))
        elif shape == "shift":
            value[s:] += rng.choice([-1, 1]) * rng.uniform(3, 8) * scale + 0.5 * abs(np.median(value))
        elif shape == "drop":
            value[s:end] *= rng.uniform(0.0, 0.4)
        elif shape == "burst":
            value[s:end] += rng.normal(0, rng.uniform(3, 6) * scale, end - s)
        else:
            value[s:end] += np.linspace(0, rng.uniform(5, 10) * scale, end - s)
            value[end:] += rng.uniform(5, 10) * scale
    return value, stamps, starts, shapes


# Kinds added for the series model (issue 4, second round): what operational metrics do and the first five kinds
# lack. Written from the NAB paper's description of its real series (CPU and network metrics, machine
# temperatures, ad cost-per-click, taxi demand), not from NAB's data or results.
OPERATIONAL_KINDS = ("quantised", "periodic", "temperature", "hourly_ad", "seasonal")


def _ar1(phi: float, shocks: Floats) -> Floats:
    """An AR(1) process driven by `shocks` (the recurrence as a linear filter)."""
    from scipy.signal import lfilter

    return np.asarray(lfilter([1.0], [1.0, -phi], shocks), dtype=np.float64)


def _pattern(phase: Floats, pattern: str) -> Floats:
    """A repeating pattern at `phase` in [0, 1): square, sawtooth, pulse or sine, in 0..1."""
    if pattern == "square":
        return np.where(phase < 0.5, 1.0, 0.0)
    if pattern == "saw":
        return phase
    if pattern == "pulse":
        return np.where(phase < 0.15, 1.0, 0.0)
    return 0.5 + 0.5 * np.sin(2 * np.pi * phase)


def _operational_series(kind: str, rng: np.random.Generator) -> Planted:
    """One synthetic operational series of a kind, its timestamps, the rows its anomalies are labelled at and their
    shapes:
    - `quantised`: a CPU-like percentage on a coarse grid, AR noise, a benign periodic job (every 1, 6 or 24
      hours), benign regime changes; anomalies: a shift, a variance change, a spike, a flat line, a drop;
    - `periodic`: a square, sawtooth, pulse or sine pattern of period 20-300 rows with noise; anomalies: a
      change of period, of amplitude, a flat line, a skipped half period, a spike;
    - `temperature`: a slow mean-reverting level with a small daily cycle; anomalies: a drift ending in a
      crash (labelled half way), a shutdown (near zero for a while), a spike;
    - `hourly_ad`: hourly, skewed positive values (ad cost-per-click), heavy multiplicative noise, a daily cycle
      and missing hours; anomalies: a spike, a drop, a shift;
    - `seasonal`: half-hourly demand with daily and weekly cycles and little noise; anomalies: a holiday (a day
      lower and reshaped), an event (a few hours higher), a day whose profile comes hours late, a drop.
    A loop over the (few) planted anomalies, never over rows."""
    step = {"quantised": 5, "periodic": 5, "temperature": 5, "hourly_ad": 60, "seasonal": 30}[kind]
    rows = int(rng.integers(1200, 1800)) if kind == "hourly_ad" else int(rng.integers(2500, 8000))
    minutes = np.arange(rows) * step
    if kind == "hourly_ad":  # missing hours: the rows are not evenly spaced
        minutes = np.cumsum(np.where(rng.random(rows) < 0.03, 60 * rng.integers(2, 12, rows), 60)) - 60
    stamps = np.datetime64("2024-03-01T00:00") + minutes * np.timedelta64(1, "m")
    day = 2 * np.pi * (minutes % 1440) / 1440
    week = (minutes // 1440) % 7
    period, amp, noise, pattern, grid = 1, 1.0, 0.0, "sine", 0.0
    if kind == "quantised":
        base = rng.uniform(2, 60)
        value = base + _ar1(rng.uniform(0.3, 0.95), rng.normal(0, rng.uniform(0.02, 0.1) * base, rows))
        job_every = int(rng.choice([12, 72, 288]))
        value += ((np.arange(rows) % job_every) < int(rng.integers(1, 4))) * rng.uniform(0, 1.5) * base
        for at in rng.integers(0, rows, int(rng.integers(0, 3))):  # benign regime changes
            value[at:] *= rng.uniform(0.8, 1.25)
        grid = float(rng.choice([0.1, 0.5, 1.0, 2.0]))
    elif kind == "periodic":
        period = int(rng.integers(20, 300))
        pattern = str(rng.choice(["square", "saw", "sine", "pulse"]))
        amp = rng.uniform(5, 50)
        value = 20 + amp * _pattern((np.arange(rows) / period) % 1.0, pattern)
        noise = rng.uniform(0.03, 0.15)
        value += rng.normal(0, noise * amp, rows)
    elif kind == "temperature":
        value = (
            80 + 2 * np.sin(day) + _ar1(0.995, rng.normal(0, 0.3, rows)) + rng.normal(0, rng.uniform(0.1, 0.5), rows)
        )
    elif kind == "hourly_ad":
        value = rng.uniform(0.2, 3) * (1 + 0.3 * np.sin(day - 1)) * np.exp(rng.normal(0, rng.uniform(0.1, 0.4), rows))
    else:  # seasonal
        profile = 1 + rng.uniform(0.4, 0.9) * np.sin(day - 2) + 0.2 * np.sin(2 * day)
        value = 1000 * profile * np.where(week >= 5, rng.uniform(0.6, 0.9), 1.0) * np.exp(rng.normal(0, 0.04, rows))
    # anomalies and benign bursts are sized against the noise (the row-to-row changes), or for series without a
    # pattern against half their spread (an AR process wanders further than one row moves); labelled anomalies
    # stand out (people labelled NAB looking at the whole file), benign bursts stay smaller
    scale = max(
        1.4826 * float(np.median(np.abs(np.diff(value)))) / math.sqrt(2),
        0.0 if kind in ("periodic", "seasonal") else 0.5 * 1.4826 * float(np.median(np.abs(value - np.median(value)))),
        0.01 * float(np.median(value)),
        grid,
    )
    bursts = rng.random(rows) < rng.uniform(0.0, 0.003)  # benign, unlabelled
    value[bursts] += rng.choice([-1, 1], bursts.sum()) * rng.uniform(2, 4, bursts.sum()) * scale
    probation = int(0.15 * rows) + 100
    starts = sorted(rng.choice(np.arange(probation, rows - 100), size=int(rng.integers(1, 5)), replace=False).tolist())
    starts = [s for i, s in enumerate(starts) if i == 0 or s - starts[i - 1] > rows // 8]
    shapes = {
        "quantised": ["shift", "variance", "spike", "flat", "drop"],
        "periodic": ["period", "amplitude", "flat", "skip", "spike"],
        "temperature": ["drift_crash", "shutdown", "spike"],
        "hourly_ad": ["spike", "drop", "shift"],
        "seasonal": ["holiday", "event", "profile_shift", "drop"],
    }[kind]
    labels, planted = [], []
    for s in starts:
        shape = str(rng.choice(shapes))
        end = min(rows, s + int(rng.integers(50, 400)))
        label = s
        if shape == "spike":
            end = min(rows, s + int(rng.integers(1, 4)))
            value[s:end] += rng.choice([-1, 1]) * rng.uniform(5, 12) * scale
        elif shape == "shift":
            value[s:] += rng.choice([-1, 1]) * rng.uniform(3, 6) * scale
        elif shape == "drop":
            value[s:end] = value[s:end] * rng.uniform(0.0, 0.3)
        elif shape == "variance":
            value[s:end] += rng.normal(0, rng.uniform(3, 6) * scale, end - s)
        elif shape == "flat":
            value[s:end] = value[s]
        elif shape == "period":
            factor = rng.uniform(0.4, 0.75) if rng.random() < 0.5 else rng.uniform(1.4, 2.5)
            phase = (s / period + np.arange(end - s) / (period * factor)) % 1.0
            value[s:end] = 20 + amp * _pattern(phase, pattern) + rng.normal(0, noise * amp, end - s)
        elif shape == "amplitude":
            centre = float(np.mean(value[:s]))
            value[s:end] = centre + (value[s:end] - centre) * float(rng.choice([0.3, 2.0, 3.0]))
        elif shape == "skip":
            half = max(1, period // 2)
            value[s : rows - half] = value[s + half : rows].copy()
        elif shape == "drift_crash":
            crash = min(rows - 1, s + int(rng.integers(50, 400)))
            value[s:crash] -= np.linspace(0, rng.uniform(3, 8) * scale, crash - s)
            stop = min(rows, crash + int(rng.integers(50, 200)))
            value[crash:stop] -= rng.uniform(10, 20) * scale
            label = (s + crash) // 2
        elif shape == "shutdown":
            value[s:end] = rng.uniform(0, 0.1) * value[s:end]
        elif shape == "holiday":
            end = min(rows, s + 48)
            value[s:end] = value[s:end] * rng.uniform(0.4, 0.7) * (1 + 0.2 * np.sin(day[s:end]))
        elif shape == "event":
            end = min(rows, s + int(rng.integers(4, 12)))
            value[s:end] *= rng.uniform(1.5, 2.5)
        else:  # profile_shift: a day of the profile 2-4 hours late
            end = min(rows, s + 48)
            lag = int(rng.integers(4, 9))
            value[s:end] = value[s - lag : end - lag].copy()
        labels.append(label)
        planted.append(shape)
    if grid:
        value = np.round(value / grid) * grid
    return value, stamps, labels, planted


def synthetic_corpus(seed: int = 7, per_kind: int = 6) -> Corpus:
    """`per_kind` seeded series of each kind, labelled with NAB's window rule; the cost matrices are NAB's."""
    rng = np.random.default_rng(seed)
    files, values, planted = [], [], {}
    for kind in ("cost", "metric", "flat", "sparse", "taxi", *OPERATIONAL_KINDS):
        for k in range(per_kind):
            make = _operational_series if kind in OPERATIONAL_KINDS else _one_series
            value, stamps, starts, shapes = make(kind, rng)
            frame = pl.DataFrame({"timestamp": stamps.astype("datetime64[us]"), "value": value})
            files.append(
                Labelled(f"synthetic/{kind}_{k}.csv", frame["timestamp"].to_list(), _nab_windows(len(frame), starts))
            )
            values.append(frame)
            planted[files[-1].name] = shapes
    profiles = {
        "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
        "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
        "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
    }
    return Corpus(files, values, profiles, Path("synthetic"), planted)


# --- scoring a detector over a corpus ----------------------------------------------------------------------------


def detect(corpus: Corpus, config: Any) -> list[Floats]:
    """The online detector of `finops detect series` over every file of a corpus (its per-row scores)."""
    from finops.detect.spikes import score_series

    return [
        score_series(v.lazy(), time="timestamp", value="value", config=config).collect()["score"].to_numpy()
        for v in corpus.values
    ]


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    score: float
    files: list[FileScore] = field(default_factory=list)


def evaluate(corpus: Corpus, scores: Sequence[Floats], profiles: Sequence[str] = PROFILES) -> list[ProfileResult]:
    """Per profile: the corpus-wide optimal threshold, the raw score, the normalised score and per-file scores."""
    out = []
    for profile in profiles:
        cost = corpus.profiles[profile]
        threshold, _ = optimise_threshold(corpus.files, scores, cost)
        per_file = [score_file(f, s, threshold, cost) for f, s in zip(corpus.files, scores, strict=True)]
        raw = sum(p.score for p in per_file)
        out.append(ProfileResult(profile, threshold, raw, normalised(raw, corpus.windows, cost), per_file))
    return out


# the short grid `tune` walks, one setting at a time (coordinate ascent, two passes), from `TUNING_START`
TUNING_GRID: dict[str, Sequence[Any]] = {
    "level_rows": (3, 6, 12, 24),
    "scale_rows": (96, 168, 336, 672),
    "sustain_rows": (1, 2, 3, 5),
    "memory_rows": (48, 168, 504, 1008),
    "z_threshold": (2.0, 3.0, 4.0, 6.0),
    "scale_floor_std": (0.0, 0.25, 0.5, 1.0),
    "scale_floor_rel": (0.0, 0.02, 0.05, 0.1),
    "accuracy_rows": (12, 48, 168),
    "novelty_margin": (0.0, 0.25, 0.5, 1.0),
    "memory_quantile": (0.9, 0.95, 0.99, 1.0),
}
# where the search starts: the settings before it (SpikeConfig's defaults of the first detector), so that
# `--tune` reproduces the defaults it chose. Coordinate ascent is path-dependent: started again from its own
# pick it climbs further on the synthetic corpus (57.5 -> 60.5: sustain_rows 3, scale_floor_std 1.0) while
# the NAB score falls (52.2 -> 46.8); the defaults are the first pick (see bench/README.md).
TUNING_START: dict[str, Any] = {
    "level_rows": 6,
    "scale_rows": 336,
    "sustain_rows": 2,
    "memory_rows": 168,
    "z_threshold": 4.0,
    "scale_floor_std": 0.5,
    "scale_floor_rel": 0.0,
    "accuracy_rows": 12,
    "novelty_margin": 0.0,
    "memory_quantile": 1.0,
}


def tune(corpus: Corpus, passes: int = 2, log: Callable[[str], None] = print) -> tuple[dict[str, Any], float]:
    """Coordinate ascent over `TUNING_GRID` from `TUNING_START` on the standard-profile score of a (synthetic)
    corpus; returns the settings (all of the grid's) and their score."""
    from finops.detect.spikes import SpikeConfig

    def standard(settings: dict[str, Any]) -> float:
        config = SpikeConfig(**settings)
        return evaluate(corpus, detect(corpus, config), ("standard",))[0].score

    chosen: dict[str, Any] = dict(TUNING_START)
    best = standard(chosen)
    log(f"  start: {best:.1f}")
    for _ in range(passes):
        for name, values in TUNING_GRID.items():
            for value in values:
                trial = {**chosen, name: value}
                score = standard(trial)
                if score > best + 1e-9:
                    best, chosen = score, trial
                    log(f"  {name}={value}: {best:.1f}")
    return chosen, best


# --- the benchmark -----------------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    import duckdb

    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "load_avg_1m": round(load[0], 2),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "numpy": np.__version__,
        "duckdb": duckdb.__version__,
        "platform": platform.platform(),
    }


def _report(
    results: list[ProfileResult], reference: pl.DataFrame, corpus: Corpus, synthetic: list[ProfileResult]
) -> str:
    lines = ["| detector | standard | reward_low_FP_rate | reward_low_FN_rate |", "|---|---:|---:|---:|"]
    ours = {r.profile: r.score for r in results}
    lines.append("| **finops detect series** | " + " | ".join(f"**{ours[p]:.1f}**" for p in PROFILES) + " |")
    ref = {(r["Detector"], r["Profile"]): r for r in reference.iter_rows(named=True)}
    for detector, label in PUBLISHED_HEADLINE.items():
        cells = []
        for profile in PROFILES:
            row = ref.get((detector, profile))
            cost = corpus.profiles[profile]
            cells.append(f"{normalised(row['raw'], corpus.windows, cost):.1f}" if row else "-")
        note = " (its published per-file scores cover 21 of the 30 files)" if detector == "random" else ""
        lines.append(f"| {label}{note} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Thresholds (one per profile, for the whole corpus): "
        + ", ".join(f"{r.profile} {r.threshold:.4f}" for r in results)
    )
    lines.append("Synthetic tuning corpus, same scorer: " + ", ".join(f"{r.profile} {r.score:.1f}" for r in synthetic))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the NAB folder (data/, labels/, ...)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="where results are written")
    parser.add_argument("--tune", action="store_true", help="re-run the synthetic tuning and use what it picks")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic tuning corpus")
    args = parser.parse_args(argv)
    from finops.detect.spikes import SpikeConfig

    began = time.perf_counter()
    machine = _machine()
    synthetic = synthetic_corpus(seed=args.seed, per_kind=12)
    settings: dict[str, Any] = {}
    if args.tune:
        print("tuning on the synthetic corpus (standard profile):")
        settings, _ = tune(synthetic)
    config = SpikeConfig(**settings)
    synthetic_results = evaluate(synthetic, detect(synthetic, config))

    corpus = load_corpus(args.data)
    detect_began = time.perf_counter()
    scores = detect(corpus, config)
    detect_s = time.perf_counter() - detect_began
    results = evaluate(corpus, scores)
    reference = published(args.data, [f.name for f in corpus.files])
    check = validate_scorer(corpus)
    elapsed = time.perf_counter() - began

    table = _report(results, reference, corpus, synthetic_results)
    print(f"NAB v1.1, {len(corpus.files)} files, {corpus.windows} windows, {sum(f.rows for f in corpus.files):,} rows")
    print(table)
    print(f"\nscorer check (NAB's random detector at its published threshold): {json.dumps(check)}")
    print(f"detection {detect_s:.1f} s; whole run {elapsed:.1f} s; machine {json.dumps(machine)}")
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": config.model_dump(mode="json"),
        "profiles": {r.profile: {"score": r.score, "threshold": r.threshold, "raw": r.raw} for r in results},
        "per_file_standard": [vars(f) for f in results[0].files],
        "synthetic": {r.profile: r.score for r in synthetic_results},
        "scorer_check": check,
        "detect_seconds": detect_s,
        "seconds": elapsed,
        "machine": machine,
    }
    (args.out / "nab-results.json").write_text(json.dumps(payload, indent=2, default=str))
    (args.out / "nab-results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
