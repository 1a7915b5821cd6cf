"""The shape of recent values: a conformal k-nearest-neighbour score for `finops detect series`.

A row is unusual when the last `window` values, as one point in `window` dimensions, sit far from the same
windows seen before it. This is KNN-CAD (Burnaev and Ishimtsev, "Conformalized density- and distance-based
anomaly detection in time-series data", 2016; the `knncad` detector of the Numenta Anomaly Benchmark), with
Euclidean distances and a training set that grows with the series, so each row is judged by earlier rows
only and appending rows never changes an earlier score.

Order of operations, for each row t:
  1. training rows h(t) = `train_share` x t, at least `neighbours` + 1 and at most `train_max_rows`: the windows
     ending at t-1, ..., t-h(t) are its past;
  2. non-conformity a(t): the sum of the distances from the window ending at t to its `neighbours` nearest
     windows among those (the windows overlap, as in KNN-CAD);
  3. p(t): the share of a(t-1), ..., a(t-h(t)) below a(t); a row is calibrated once at least `min_calibration`
     of them exist (an alarm at p >= 0.9965 among 30 earlier scores would be one row in 30 by chance alone);
     before that p(t) is 0 and the caller judges the row otherwise;
  4. an alarm is a row with p(t) >= `alarm_p`; the `max(window, silence_share x h(t))` rows after an alarm score
     0 (a change stays in the window for `window` rows, and KNN-CAD's silence is a fifth of its training set).

How it stays column-at-a-time: the squared distance between the windows ending at t and at t-d is a rolling
sum over `window` rows of (x[t] - x[t-d])^2, one vector operation per lag d for every row at once; rows go in
blocks so that the lags x rows matrix stays small. The only Python loops run over lags, blocks and alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ShapeScores", "ShapeSettings", "knn_conformal"]

Floats = npt.NDArray[np.float64]
_BLOCK = 4096  # rows scored at once: a (lags x rows) float matrix of 750 x 4096 is 25 MB


@dataclass(frozen=True)
class ShapeSettings:
    window: int = 19
    neighbours: int = 27
    train_share: float = 0.25
    train_max_rows: int = 750
    silence_share: float = 0.2
    alarm_p: float = 0.9965
    min_calibration: int = 100
    min_history_rows: int = 1


@dataclass(frozen=True)
class ShapeScores:
    p: Floats  # per row: the conformal p-value (0..1), 0 where not calibrated or silenced
    calibrated: npt.NDArray[np.bool_]  # per row: at least `min_calibration` earlier non-conformities to rank among
    silenced: npt.NDArray[np.bool_]  # per row: within the silence after an alarm


def knn_conformal(
    values: npt.ArrayLike, settings: ShapeSettings | None = None, eligible: npt.ArrayLike | None = None
) -> ShapeScores:
    """Per row, the conformal p-value of the window of values ending there (see the module docstring). Rows not
    `eligible` (watched one way, a departure the other way) score 0 and their alarms silence nothing."""
    s = settings or ShapeSettings()
    x = np.asarray(values, dtype=np.float64)
    n, w, k = len(x), s.window, s.neighbours
    if n == 0:
        return ShapeScores(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    rows = np.arange(n)
    train = np.clip((s.train_share * rows).astype(np.int64), k + 1, s.train_max_rows)
    # every block's arithmetic depends on the fixed settings and the rows up to it only (not on how many rows
    # follow): the same row scores bit for bit the same in any longer file
    lags = s.train_max_rows
    alpha = np.full(n, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond ~1e154: their distances are inf, no judgement
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            alpha[start:stop] = _nonconformity(x, start, stop, lags, train[start:stop], w, k)
    p, count = _p_values(alpha, train, lags)
    calibrated = (count >= max(k, s.min_calibration)) & (rows >= s.min_history_rows)
    allowed = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    silenced = _silenced(np.where(calibrated & allowed, p, 0.0), train, s)
    return ShapeScores(np.where(calibrated & allowed & ~silenced, p, 0.0), calibrated, silenced)


def _nonconformity(x: Floats, start: int, stop: int, lags: int, train: npt.NDArray[np.int64], w: int, k: int) -> Floats:
    """a(t) for rows start..stop-1: the sum of the distances to the k nearest earlier windows (NaN: too few)."""
    lo = max(0, start - lags - w + 1)
    seg = x[lo:stop]
    t = np.arange(start, stop)
    dist = np.full((lags, stop - start), np.inf)
    for d in range(1, lags + 1):
        if d > stop - w:  # no window of the block has a window d rows before it
            break
        sq = np.zeros(len(seg))
        sq[d:] = (seg[d:] - seg[:-d]) ** 2
        csum = np.concatenate([[0.0], np.cumsum(sq)])
        local = t - lo  # the window ending at t covers local rows t-w+1 .. t
        ok = (t - d - w + 1 >= 0) & (d <= train)  # both windows exist, and lag d is in t's training set
        ends = local[ok]
        dist[d - 1, ok] = np.maximum(csum[ends + 1] - csum[ends + 1 - w], 0.0)
    # one row per scored row for the partition: along contiguous memory it is several times faster
    nearest = np.partition(np.ascontiguousarray(dist.T), k - 1, axis=1)[:, :k]
    total = np.sqrt(np.sort(nearest, axis=1)).sum(axis=1)  # summed in one order whatever the partition left
    return np.where(np.isfinite(total), total, np.nan)


def _p_values(alpha: Floats, train: npt.NDArray[np.int64], lags: int) -> tuple[Floats, npt.NDArray[np.int64]]:
    """p(t): the share of the previous train(t) non-conformities below a(t) (0 with none), and how many there are."""
    n = len(alpha)
    padded = np.concatenate([np.full(lags, np.nan), alpha])
    age = lags - np.arange(lags)  # column j of a row's past holds a(t - age[j])
    p, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        t = np.arange(start, stop)
        past = np.lib.stride_tricks.sliding_window_view(padded, lags)[t]  # a(t-lags) .. a(t-1)
        valid = np.isfinite(past) & (age[None, :] <= train[t, None])
        count = valid.sum(axis=1)
        below = ((past < alpha[t, None]) & valid).sum(axis=1)
        p[t] = np.where((count > 0) & np.isfinite(alpha[t]), below / np.maximum(count, 1), 0.0)
        counts[t] = np.where(np.isfinite(alpha[t]), count, 0)
    return p, counts


def _silenced(p: Floats, train: npt.NDArray[np.int64], s: ShapeSettings) -> npt.NDArray[np.bool_]:
    """The rows after each alarm (p >= alarm_p), max(window, silence_share x training rows) of them; the loop runs
    over alarms (an alarm inside a silence is no alarm), not rows."""
    alarms = np.flatnonzero(p >= s.alarm_p)
    keep = np.ones(len(p), dtype=bool)
    i = 0
    while i < len(alarms):
        at = int(alarms[i])
        quiet = max(s.window, int(train[at] * s.silence_share))
        keep[at + 1 : at + 1 + quiet] = False
        i = int(np.searchsorted(alarms, at + quiet + 1))
    return ~keep
