"""Retry storms: a team/feature's or a provider/model's share of retried calls jumping above its own baseline.

`storms(numbered, reads, config)` finds them in the attempts `finops.detect.retries.number_attempts`
numbered (the lines of every trace holding a failed attempt) and the line counts a `LineSource` gives;
`finops.detect.retries` defines the terms (logical request, answer, wasted dollars) and `RetryConfig`.

One incident is one finding. A brown-out seen in a feature's series is seen again in its model's series
(and in the `__unattributed__` bucket when some of its calls carry no team): windows of different series
that share retried requests are one incident, reported for the team/feature that holds most of them when
one holds at least `storm_model_max_feature_share`, else for the provider/model (a provider brown-out across
features). `details.scopes` lists every series the incident was seen in.

The finding's figures count the logical requests that *started* in the incident's span (from the first
attempt of its first retried request to that of its last one, the edges set where the series' retried and
ordinary requests make a storm most likely: `_spans`) in the series it is reported for: amplification =
their attempts / their number, wasted dollars = the cost of their attempts other than the answer, the error
mix of their failed attempts. So the window's edges add no ordinary calls, and a retry that lands after the
span still counts for the request it belongs to.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from finops.detect.findings import FINDING_SCHEMA, evidence, unpriced_note
from finops.detect.source import LineSource

if TYPE_CHECKING:
    from finops.detect.retries import RetryConfig

__all__ = ["ERROR_CLASSES", "SERIES", "storms"]

ERROR_CLASSES = ("429", "5xx", "timeout", "other")
# storm series: (scope, detector, the columns that name one series)
SERIES = (
    ("feature", "retries.storm.feature", ("team", "feature")),
    ("model", "retries.storm.model", ("provider", "model")),
)
_NAMES = ("team", "feature", "provider", "model")
_MONEY = pl.Decimal(38, 12)
_EXTEND_S = 3_600  # an incident extends through elevated windows at most this far from a flagged one
_EXTEND = pl.duration(seconds=_EXTEND_S)
_HISTORY = ("hist_calls", "hist_retries", "hist_q", "hist_deep")
_DEEP = 0.25  # deep retries' prior and floor, relative to all retries': about 1 retried call in 5 is retried again


def storms(numbered: pl.DataFrame, reads: LineSource, config: RetryConfig) -> pl.DataFrame:
    """`retry_storm` findings (`FINDING_SCHEMA` and `_chain_ids`, every chain id of the incident).

    Order of operations, per series (team/feature and provider/model), at two scales: `storm_window_s`
    windows and, for team/features when `storm_hourly`, whole hours (for features with few calls per window):
      1. from the numbered lines: retries R (attempts after the first), retried logical requests Q, the
         requests retried twice or more D; windows with Q >= `storm_min_retried_requests` are candidates;
      2. attempts A of the candidate windows (`LineSource.line_counts`); logical requests L = A - R;
         amplification = (L + the retries of the requests that started in the window) / L;
      3. baseline per series and UTC day (`_baseline`): over the `storm_baseline_days` before the window's
         day, the share of calls retried q0, of calls retried twice or more d0, and the amplification;
      4. a window is elevated when Q/L >= `storm_share_jump` x q0, amplification >= baseline +
         `storm_min_amplification_increase` and the Poisson tail below is at most `storm_extend_max_p_value`;
         it is flagged when, besides, Q >= `storm_min_retried_requests`
         and the Poisson tail P(X >= Q | L x q0), or P(X >= D | L x d0), is at most `storm_max_p_value`
         (and, for a provider/model, no team/feature holds more than `storm_model_max_feature_share` of its
         retried requests: else it is that feature's storm);
      5. elevated windows at most `storm_merge_gap_s` apart form runs; a run with a flagged window is an
         incident of its series (reaching over the storm's quieter first and last minutes, up to an hour
         from a flagged window); an hourly incident that overlaps a finer one of the same series is dropped;
      6. incidents of different series that share at least `storm_merge_min_shared` of the smaller one's
         retried requests are one incident (`_merge`), reported for one team/feature or provider/model;
      7. its figures over the requests that started in its span (`_spans`, `_figures`).
    """
    if numbered.is_empty():
        return _empty()
    retried = (
        numbered.filter((pl.col("_pos") > 1) | ~pl.col("_is_answer"))  # retries and failures: what storms count
        .sort("ts", "request_id")
        .with_columns(_retry=pl.col("_pos") > 1, _day=(pl.col("ts").dt.epoch("s") // 86_400).cast(pl.Int32))
    )
    window_s = config.storm_window_s
    rollups = reads.line_counts(window_s, [list(names) for _, _, names in SERIES])
    found = []
    for (scope, detector, names), rollup in zip(SERIES, rollups, strict=True):
        series = list(names)
        counts = rollup.rename({"lines": "attempts"})
        daily = counts.group_by(*series, _day=(pl.col("_w") * window_s // 86_400).cast(pl.Int32)).agg(
            lines=pl.col("attempts").sum()
        )
        baseline = _baseline(retried, daily, series, config)
        fine = _scale(retried, counts, series, baseline, (scope, detector), window_s, config)
        found.append(fine)
        if config.storm_hourly and window_s < 3_600 and scope == "feature":
            hours = (
                counts.group_by(*series, _w=pl.col("_w") * window_s // 3_600).agg(pl.col("attempts").sum())
                if 3_600 % window_s == 0
                else reads.line_counts(3_600, [series])[0].rename({"lines": "attempts"})
            )
            coarse = _scale(retried, hours, series, baseline, (scope, f"{detector}.hourly"), 3_600, config)
            overlap = (pl.col("_from") < pl.col("_to_right")) & (pl.col("_from_right") < pl.col("_to"))
            indexed = coarse.with_row_index("_c")
            covered = indexed.join(fine.select(*series, "_from", "_to"), on=series, nulls_equal=True).filter(overlap)
            found.append(indexed.join(covered.select("_c"), on="_c", how="anti").drop("_c"))
    incidents = pl.concat(found, how="vertical").drop("_m").with_row_index("_m")
    if incidents.is_empty():
        return _empty()
    requests = _requests(numbered)
    return _figures(_merge(incidents, requests, config), requests, numbered, reads)


def _scale(
    retried: pl.DataFrame,
    counts: pl.DataFrame,
    series: list[str],
    baseline: pl.DataFrame,
    detector: tuple[str, str],
    window_s: int,
    config: RetryConfig,
) -> pl.DataFrame:
    """Steps 1-5 of `storms` at one window size, over `counts` (attempts per series and window `_w`).
    Windows are looked at only where they have at least `storm_min_retried_requests` retried requests,
    and in the hour around them (for the extension)."""
    bucket = (pl.col("ts").dt.epoch("s") // window_s).alias("_w")
    started = (pl.col("ts").min().over("_req").dt.epoch("s") // window_s).alias("_sw")
    cells = _retry_counts(retried.with_columns(bucket, started), series, model=detector[0] == "model")
    strong = cells.filter(pl.col("retried_requests") >= config.storm_min_retried_requests)
    if strong.is_empty():
        return _no_incidents(series)
    reach = -(-_EXTEND_S // window_s)
    near = strong.select(*series, _w=pl.col("_w") + pl.int_ranges(-reach, reach + 1)).explode("_w").unique()
    windows = (
        cells.join(near, on=[*series, "_w"], how="semi", nulls_equal=True)
        .join(counts.select(*series, "_w", "attempts"), on=[*series, "_w"], how="inner", nulls_equal=True)
        .with_columns(_day=(pl.col("_w") * window_s // 86_400).cast(pl.Int32))
        .join(baseline, on=[*series, "_day"], how="left", nulls_equal=True)
    )
    return _incidents(_flag_windows(windows, config), detector, series, window_s, config)


def _retry_counts(retried: pl.DataFrame, series: list[str], *, model: bool) -> pl.DataFrame:
    """Step 1 of `storms`, per series and window: retries R by the window of the attempt (`_w`), so that
    L = A - R counts the requests that started in the window; retried requests Q and D, and their ids, by
    the window their request started in (`_sw`), so that a storm's late retries (a timeout can take ten
    minutes) do not make the quiet windows after it look retried. For provider/model series also
    `top_share`, the largest share of the retried requests that one team/feature holds."""
    retry = pl.col("_retry")
    keys = [*series, "_w"]
    by_attempt = retried.group_by(keys).agg(retries=retry.sum().cast(pl.Int64))
    by_start = (
        retried.filter(retry)
        .drop("_w")
        .rename({"_sw": "_w"})
        .group_by(keys)
        .agg(
            retried_requests=pl.col("_req").n_unique().cast(pl.Int64),
            started_retries=pl.len().cast(pl.Int64),
            deep_requests=pl.col("_req").filter(pl.col("_size") >= 3).n_unique().cast(pl.Int64),
            requests=pl.col("_req").unique(),
        )
    )
    cells = by_attempt.join(by_start, on=keys, how="full", coalesce=True, nulls_equal=True).with_columns(
        pl.col("retries", "retried_requests", "started_retries", "deep_requests").fill_null(0),
        pl.col("requests").fill_null(pl.lit([], pl.List(pl.UInt32))),
    )
    if not model:
        return cells.with_columns(top_share=pl.lit(0.0))
    per_feature = (
        retried.filter(retry)
        .drop("_w")
        .rename({"_sw": "_w"})
        .group_by(*series, "_w", "team", "feature")
        .agg(n=pl.col("_req").n_unique())
        .group_by(*series, "_w")
        .agg(top_share=pl.col("n").max() / pl.col("n").sum())
    )
    return cells.join(per_feature, on=[*series, "_w"], how="left", nulls_equal=True).with_columns(
        pl.col("top_share").fill_null(0.0)
    )


def _baseline(retried: pl.DataFrame, daily: pl.DataFrame, series: list[str], config: RetryConfig) -> pl.DataFrame:
    """Step 3 of `storms`: per series and UTC day (`_day`), `base_share`, `base_extra` and `base_deep`, from
    `daily` (attempt-level lines per series and day) and the retries of the days before."""
    retries = retried.group_by(*series, "_day").agg(
        hist_retries=pl.col("_retry").sum().cast(pl.Int64),
        hist_q=pl.col("_req").filter(pl.col("_retry")).n_unique().cast(pl.Int64),
        hist_deep=pl.col("_req").filter(pl.col("_retry") & (pl.col("_size") >= 3)).n_unique().cast(pl.Int64),
    )
    trailing = f"{round(config.storm_baseline_days * 86_400)}s"
    days = (
        daily.join(retries, on=[*series, "_day"], how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("lines", *_HISTORY[1:]).fill_null(0))
        .with_columns(
            hist_calls=(pl.col("lines") - pl.col("hist_retries")).clip(lower_bound=0),
            _t=pl.from_epoch(pl.col("_day").cast(pl.Int64) * 86_400, time_unit="s"),
        )
        .sort(*series, "_day", nulls_last=True)
    )
    summed = {c: pl.col(c).rolling_sum_by("_t", trailing, closed="left").over(series) for c in _HISTORY}
    floor = config.storm_min_baseline_share
    return days.with_columns(**summed).select(
        *series,
        "_day",
        base_share=_shrunk(pl.col("hist_q"), pl.col("hist_calls"), config).clip(lower_bound=floor),
        base_extra=_shrunk(pl.col("hist_retries"), pl.col("hist_calls"), config).clip(lower_bound=floor),
        base_deep=_shrunk(pl.col("hist_deep"), pl.col("hist_calls"), config, _DEEP).clip(lower_bound=floor * _DEEP),
    )


def _flag_windows(windows: pl.DataFrame, config: RetryConfig) -> pl.DataFrame:
    """Steps 2 and 4 of `storms`: calls and amplification of each window; `_strong` when it passes every
    test, else kept as elevated when its share and amplification alone do (it may extend an incident)."""
    q, calls = pl.col("retried_requests"), pl.col("calls")
    prior = max(config.storm_prior_share, config.storm_min_baseline_share)  # a day the rollup does not know
    tail = pl.min_horizontal(
        _log_poisson_tail(q, calls * pl.col("base_share")),
        _log_poisson_tail(pl.col("deep_requests"), calls * pl.col("base_deep")),
    )
    elevated = (
        (q / calls >= config.storm_share_jump * pl.col("base_share"))
        & (pl.col("amplification") >= 1 + pl.col("base_extra") + config.storm_min_amplification_increase)
        & (tail <= math.log(config.storm_extend_max_p_value))  # one ordinary retry among few calls is no storm
    )
    significant = tail <= math.log(config.storm_max_p_value)
    strong = (
        (q >= config.storm_min_retried_requests)
        & significant
        & (pl.col("top_share") <= config.storm_model_max_feature_share)
    )
    return (
        windows.with_columns(
            calls=(pl.col("attempts") - pl.col("retries")).clip(lower_bound=1),
            base_share=pl.col("base_share").fill_null(prior),
            base_extra=pl.col("base_extra").fill_null(prior),
            base_deep=pl.col("base_deep").fill_null(prior * _DEEP),
        )
        .with_columns(amplification=(calls + pl.col("started_retries")) / calls)
        .filter(elevated & (q >= 1))
        .with_columns(_strong=strong)
    )


def _shrunk(events: pl.Expr, calls: pl.Expr, config: RetryConfig, scale: float = 1.0) -> pl.Expr:
    """events / calls, shrunk toward `scale` x `storm_prior_share` with `storm_prior_calls` pseudo-calls."""
    prior = float(config.storm_prior_calls)
    share = scale * config.storm_prior_share
    return (events.fill_null(0) + share * prior) / (calls.fill_null(0) + prior).clip(lower_bound=1)


def _log_poisson_tail(k: pl.Expr, lam: pl.Expr) -> pl.Expr:
    """log P(X >= k) for X ~ Poisson(lam), bounded above by P(X = k) / (1 - lam / (k + 1)) when k > lam
    (log k! by Stirling's series, within 0.003 from k = 1); 0 (p = 1) when k <= lam."""
    kf = k.cast(pl.Float64)
    log_factorial = kf * kf.log() - kf + 0.5 * (2 * math.pi * kf).log() + 1 / (12 * kf)
    log_term = kf * lam.log() - lam - log_factorial - (1 - lam / (kf + 1)).log()
    return pl.when((kf > lam) & (kf >= 1)).then(log_term).otherwise(0.0)


def _incidents(
    flagged: pl.DataFrame, detector: tuple[str, str], series: list[str], window_s: int, config: RetryConfig
) -> pl.DataFrame:
    """Step 5 of `storms`: one row per incident of a series: its windows (`_from`, `_to` in epoch seconds,
    `windows`), its retried requests (`_requests`) and baseline sums (`_calls`, `_base_retries`,
    `_base_extra`, `_base_deep`)."""
    if flagged.is_empty():
        return _no_incidents(series)
    step = 1 + config.storm_merge_gap_s // window_s  # window numbers at most this far apart merge
    same_series = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift()) for c in series)
    new = ~same_series | (pl.col("_w") - pl.col("_w").shift() > step).fill_null(True)
    return (
        flagged.sort(*series, "_w", nulls_last=True)
        .with_columns(_incident=new.cum_sum())
        .group_by("_incident")
        .agg(
            *(pl.col(c).first() for c in series),
            _from=pl.col("_w").min() * window_s,
            _to=(pl.col("_w").max() + 1) * window_s,
            windows=pl.len().cast(pl.Int64),
            _strong=pl.col("_strong").any(),
            _requests=pl.col("requests").explode().unique(),
            _calls=pl.col("calls").sum().cast(pl.Float64),
            _base_retries=(pl.col("calls") * pl.col("base_share")).sum(),
            _base_extra=(pl.col("calls") * pl.col("base_extra")).sum(),
            _base_deep=(pl.col("calls") * pl.col("base_deep")).sum(),
        )
        .filter("_strong")
        .select(_incident_columns(series, detector, window_s))
    )


def _incident_columns(series: list[str], detector: tuple[str, str], window_s: int) -> list[pl.Expr]:
    names = [pl.col(c) if c in series else pl.lit(None, pl.String).alias(c) for c in _NAMES]
    return [
        pl.lit(0, pl.UInt32).alias("_m"),  # numbered once every scale's incidents are together
        pl.lit(detector[0]).alias("scope"),
        pl.lit(detector[1]).alias("detector"),
        *names,
        pl.col("_from").cast(pl.Int64),
        pl.col("_to").cast(pl.Int64),
        pl.lit(window_s, pl.Int64).alias("window_s"),
        pl.col("windows").cast(pl.Int64),
        pl.col("_requests").cast(pl.List(pl.UInt32)),
        *(pl.col(c).cast(pl.Float64) for c in ("_calls", "_base_retries", "_base_extra", "_base_deep")),
    ]


def _no_incidents(series: list[str]) -> pl.DataFrame:
    frame = pl.DataFrame(
        schema={
            **dict.fromkeys(series, pl.String),
            **dict.fromkeys(("_from", "_to", "windows"), pl.Int64),
            "_requests": pl.List(pl.UInt32),
            **dict.fromkeys(("_calls", "_base_retries", "_base_extra", "_base_deep"), pl.Float64),
        }
    )
    return frame.select(_incident_columns(series, ("", ""), 0))


def _requests(numbered: pl.DataFrame) -> pl.DataFrame:
    """One row per logical request: its first attempt (`_start` and names), `_size`, the end of its last
    attempt, its wasted dollars and failed attempts by class, its chain id."""
    failed = ~pl.col("_is_answer")
    return numbered.group_by("_req").agg(
        _start=pl.col("ts").first(),
        **{c: pl.col(c).first() for c in _NAMES},
        _size=pl.len().cast(pl.Int64),
        _end=pl.col("_end").max(),
        wasted_usd=pl.col("cost_usd").filter(failed).sum(),
        _unpriced_wasted=pl.col("cost_usd").filter(failed).is_null().sum().cast(pl.Int64),
        _priced_wasted=pl.col("cost_usd").filter(failed).is_not_null().sum().cast(pl.Int64),
        **{f"n_{e}": (pl.col("_error") == e).sum().cast(pl.Int64) for e in ERROR_CLASSES},
        _chain_id=pl.col("_chain_id").first(),
    )


def _merge(incidents: pl.DataFrame, requests: pl.DataFrame, config: RetryConfig) -> pl.DataFrame:
    """Step 6 of `storms`: `_component` (the incident it belongs to), `_named` (the series it is reported
    for) and `_counted` (a series whose requests its figures count) for each series incident `_m`.

    Two series incidents are joined when they share at least `storm_merge_min_shared` of the smaller one's
    retried requests; joined incidents form components (a handful: loops run over them, never over rows).
    A component is reported for a team/feature when the one holding most of its retried requests holds at
    least `storm_model_max_feature_share` of them and has an incident in it, else for the provider/model
    incident with the most retried requests; its figures count every incident of the reported scope."""
    members = incidents.select("_m", "_requests").explode("_requests").rename({"_requests": "_req"}).drop_nulls()
    sizes = incidents.select("_m", _n=pl.col("_requests").list.len())
    pairs = (
        members.join(members, on="_req", suffix="_b")
        .filter(pl.col("_m") < pl.col("_m_b"))
        .group_by("_m", "_m_b")
        .agg(shared=pl.len())
        .join(sizes, on="_m")
        .join(sizes.rename({"_m": "_m_b", "_n": "_n_b"}), on="_m_b")
        .filter(pl.col("shared") >= config.storm_merge_min_shared * pl.min_horizontal("_n", "_n_b"))
    )
    component = incidents.select("_m", _component=pl.col("_m"))
    edges = pl.concat([pairs.select("_m", _other="_m_b"), pairs.select(_m="_m_b", _other="_m")])
    for _ in range(incidents.height):  # label propagation: each incident takes the smallest label it touches
        lowest = (
            edges.join(component.rename({"_m": "_other", "_component": "_label"}), on="_other")
            .group_by("_m")
            .agg(pl.col("_label").min())
        )
        updated = component.join(lowest, on="_m", how="left").select(
            "_m", _component=pl.min_horizontal("_component", pl.col("_label").fill_null(pl.col("_component")))
        )
        if updated.sort("_m").equals(component.sort("_m")):
            break
        component = updated
    tagged = incidents.join(component, on="_m")
    held = (
        tagged.select("_component", "_requests")
        .explode("_requests")
        .drop_nulls()
        .unique()
        .join(requests.select(_requests="_req", _team="team", _feature="feature"), on="_requests")
        .group_by("_component", "_team", "_feature")
        .agg(n=pl.len())
        .with_columns(top_share=pl.col("n") / pl.col("n").sum().over("_component"))
        .sort("_component", "n", "_team", "_feature", descending=[False, True, False, False])
        .group_by("_component", maintain_order=True)
        .first()
    )
    by_feature = (
        tagged.filter(pl.col("scope") == "feature")
        .join(held, on="_component")
        .filter(
            (pl.col("top_share") >= config.storm_model_max_feature_share)
            & pl.col("team").eq_missing(pl.col("_team"))
            & pl.col("feature").eq_missing(pl.col("_feature"))
        )
        .select("_component", _scope=pl.lit("feature"))
        .unique()
    )
    has_model = tagged.filter(pl.col("scope") == "model").select("_component", _has_model=pl.lit(True)).unique()
    size = pl.col("_requests").list.len()
    return (
        tagged.join(by_feature, on="_component", how="left")
        .join(has_model, on="_component", how="left")
        .join(held.select("_component", "top_share"), on="_component", how="left")
        .with_columns(
            _scope=pl.coalesce("_scope", pl.when(pl.col("_has_model")).then(pl.lit("model")), pl.lit("feature"))
        )
        .with_columns(_counted=pl.col("scope") == pl.col("_scope"), _size=size)
        .sort("_component", "_counted", "_size", "_m", descending=[False, True, True, False])
        .with_columns(_named=pl.int_range(pl.len()).over("_component") == 0)
        .drop("_scope", "_has_model", "_size")
    )


def _figures(merged: pl.DataFrame, requests: pl.DataFrame, numbered: pl.DataFrame, reads: LineSource) -> pl.DataFrame:
    """Step 7 of `storms`: the findings, one per component of `merged`.

    For each counted series incident, its span (`_spans`) runs from the first attempt of its first retried
    request to that of its last one; the requests that started in the span in its series are its requests:
    L of them (`_started_in`; only the retried ones for a counted series other than the named one), A = L +
    their retries. A component sums its counted incidents; it is named after its `_named` one."""
    counted = merged.filter("_counted")
    counted = counted.join(_spans(counted, requests, numbered, reads), on="_m")
    inside = (pl.col("ts") >= pl.col("_span_start")) & (pl.col("ts") <= pl.col("_span_end"))
    retried = pl.col("_size") >= 2
    parts = []
    for scope, _, names in SERIES:
        keys = list(names)
        part = counted.filter(pl.col("scope") == scope)
        if part.is_empty():
            continue
        spans = part.select(pl.col("_m").cast(pl.Int64).alias("_span"), *keys, _start="_span_start", _end="_span_end")
        in_span = _started_in(keys, spans, numbered, reads).select(
            _m=pl.col("_span").cast(pl.UInt32), _in_span="started"
        )
        where = part.select("_m", *keys, "_span_start", "_span_end")
        started = (
            where.join(requests.rename({"_start": "ts"}), on=keys, nulls_equal=True)
            .filter(inside)
            .sort("_m", "ts", "_req")
            .group_by("_m", maintain_order=True)
            .agg(
                retried_requests=retried.sum().cast(pl.Int64),
                retries=(pl.col("_size") - 1).sum().cast(pl.Int64),
                wasted_usd=pl.col("wasted_usd").sum(),
                _unpriced_wasted=pl.col("_unpriced_wasted").sum(),
                _priced_wasted=pl.col("_priced_wasted").sum(),
                **{f"n_{e}": pl.col(f"n_{e}").sum() for e in ERROR_CLASSES},
                _end=pl.col("_end").filter(retried).max(),
                _chain_ids=pl.col("_chain_id").filter(retried).unique(maintain_order=True),
            )
        )
        parts.append(
            part.join(in_span, on="_m")
            .join(started, on="_m")
            # the named series counts every request of its span; another series of the same scope (the
            # `__unattributed__` bucket of the feature's untagged calls) only its retried ones: its other
            # requests are other features' ordinary calls
            .with_columns(
                logical_requests=pl.when("_named").then(pl.col("_in_span")).otherwise(pl.col("retried_requests"))
            )
            .with_columns(attempts=pl.col("logical_requests") + pl.col("retries"))
        )
    figures = pl.concat(parts, how="diagonal_relaxed")
    calls = pl.col("logical_requests").cast(pl.Float64)
    sums = (
        "attempts",
        "logical_requests",
        "retries",
        "retried_requests",
        "windows",
        *(f"n_{e}" for e in ERROR_CLASSES),
    )
    named = merged.filter("_named").select("_component", "detector", *_NAMES, "window_s")
    scopes = (
        merged.sort("_component", "_m")
        .group_by("_component", maintain_order=True)
        .agg(
            scopes=pl.struct(
                subject=_subject(pl.col("scope")),
                detector="detector",
                retried_requests=pl.col("_requests").list.len().cast(pl.Int64),
            ),
            top_share=pl.col("top_share").first(),
        )
    )
    incidents = (
        figures.with_columns(
            _w_share=calls * pl.col("_base_retries") / pl.col("_calls"),
            _w_extra=calls * pl.col("_base_extra") / pl.col("_calls"),
        )
        .group_by("_component")
        .agg(
            *(pl.col(c).sum() for c in sums),
            pl.col("wasted_usd").sum(),
            pl.col("_unpriced_wasted").sum(),
            pl.col("_priced_wasted").sum(),
            pl.col("_w_share").sum(),
            pl.col("_w_extra").sum(),
            window_start=pl.col("_span_start").min(),
            window_end=pl.max_horizontal(pl.col("_end").max(), pl.col("_span_end").max()),
            _chain_ids=pl.col("_chain_ids").explode().unique(maintain_order=True),
        )
        .join(named, on="_component")
        .join(scopes, on="_component")
        .sort("window_start", "_component")
    )
    return _findings(incidents)


def _started_in(keys: list[str], spans: pl.DataFrame, numbered: pl.DataFrame, reads: LineSource) -> pl.DataFrame:
    """The logical requests that started in each span (`_span`: the series named by `keys`, from `_start` to
    `_end`, both included), as `started`: its attempt-level lines (`LineSource.span_counts`) less the later
    attempts among them (every later attempt is in `numbered`)."""
    later = (
        spans.join(numbered.filter(pl.col("_pos") > 1).select(*keys, "ts"), on=keys, nulls_equal=True)
        .filter(pl.col("ts").is_between(pl.col("_start"), pl.col("_end")))
        .group_by("_span")
        .agg(_later=pl.len().cast(pl.Int64))
    )
    return (
        reads.span_counts(keys, spans)
        .join(later, on="_span", how="left")
        .select("_span", started=pl.col("lines") - pl.col("_later").fill_null(0))
    )


_SHARE_FLOOR = 1e-4  # the baseline shares of requests retried once and twice or more, at least
_ONE_US = pl.duration(microseconds=1)


def _spans(counted: pl.DataFrame, requests: pl.DataFrame, numbered: pl.DataFrame, reads: LineSource) -> pl.DataFrame:
    """Each counted incident's span (`_m`, `_span_start`, `_span_end`): the run of its series' retried
    requests, by their first attempts, most likely to be the storm rather than the series' ordinary traffic.

    Candidates are the moments the series' retried requests started (k requests that start at one moment, an
    agent's parallel calls, are one candidate of k), from an hour before the incident's first to an hour after
    its last. Between two consecutive candidates lie o ordinary requests (their lines, less the later attempts
    among them, less the first candidate's own k: `_started_in`). A run's requests fall in three classes,
    retried once, retried twice or more, and ordinary; the span is the run through the incident's middle
    retried request whose counts are least likely under the baseline's shares of the three (`_best_run`).

    So an ordinary retry beside a storm, with ordinary calls between, is not its edge (bench seed 9: a
    background retry 73 s after a 6-request storm, 5 ordinary calls between, read 2.9x for 4.3x; seed 22: a
    busy agent feature's storm of parallel calls started a minute early at two ordinary retries, 4.1x for 4.9x;
    seed 39: a quiet feature's storm started at a request retried once, one ordinary call before its first
    call, where every storm call was retried two to five times, 4.15x for 4.64x), and the storm's last
    requests, alone in a window too quiet to be elevated, with no ordinary call before them, are its own (seed
    19: the last of 18 requests, a 10-minute timeout, with a quarter of the wasted dollars)."""
    members = (
        counted.select("_m", "_requests")
        .explode("_requests")
        .join(requests.select(_requests="_req", _first="_start"), on="_requests")
        .group_by("_m")
        .agg(_lo=pl.col("_first").min(), _hi=pl.col("_first").max(), _mid=pl.col("_first").sort().get(pl.len() // 2))
    )
    calls = pl.col("_calls")
    p0_deep = (pl.col("_base_deep") / calls).clip(_SHARE_FLOOR, 0.25)
    p0_once = ((pl.col("_base_retries") - pl.col("_base_deep")) / calls).clip(_SHARE_FLOOR, 0.25)
    rates = counted.select("_m", "scope", *_NAMES, _p0_once=p0_once, _p0_deep=p0_deep).join(members, on="_m")
    retried = requests.filter(pl.col("_size") >= 2).select(*_NAMES, "_size", _first="_start")
    spans = []
    for scope, _, names in SERIES:
        keys = list(names)
        # an incident reaches at most halfway to the next incident of its series: two runs never share a
        # request (else both could run over each other and become one span reported twice)
        previous_hi = pl.col("_hi").shift(1).over(keys)
        next_lo = pl.col("_lo").shift(-1).over(keys)
        reach = (
            rates.filter(pl.col("scope") == scope)
            .drop(*(c for c in _NAMES if c not in keys))
            .sort(*keys, "_lo", "_m", nulls_last=True)
            .with_columns(
                _from=pl.max_horizontal(pl.col("_lo") - _EXTEND, previous_hi + (pl.col("_lo") - previous_hi) / 2),
                _until=pl.min_horizontal(pl.col("_hi") + _EXTEND, pl.col("_hi") + (next_lo - pl.col("_hi")) / 2),
            )
        )
        within = pl.col("_first").is_between(pl.col("_from"), pl.col("_until"))
        # retried requests that start at the same moment (an agent's parallel calls) are one candidate of `_k`
        candidates = (
            reach.join(retried.select(*keys, "_first", "_size"), on=keys, nulls_equal=True)
            .filter(within)
            .group_by(pl.exclude("_first", "_size"), "_first")
            .agg(_k=pl.len(), _k_deep=(pl.col("_size") >= 3).sum())
            .sort("_m", "_first")
            .with_columns(_next=pl.col("_first").shift(-1).over("_m"))
            .with_row_index("_span")
            .with_columns(pl.col("_span").cast(pl.Int64))
        )
        if candidates.is_empty():
            continue
        segments = candidates.filter(pl.col("_next").is_not_null()).select(
            "_span", *keys, _start="_first", _end=pl.col("_next") - _ONE_US
        )
        # the requests that started between two candidates, but the first candidate's own
        scored = (
            candidates.join(_started_in(keys, segments, numbered, reads), on="_span", how="left")
            .with_columns(
                _ordinary_requests=(pl.col("started").fill_null(0) - pl.col("_k")).clip(lower_bound=0),
                _left=pl.col("_first") <= pl.col("_mid"),
                _right=pl.col("_first") >= pl.col("_mid"),
            )
            .select("_m", "_first", "_k", "_k_deep", "_ordinary_requests", "_left", "_right")
        )
        spans.append(_best_run(scored, reach.select("_m", "_p0_once", "_p0_deep")))
    return (
        pl.concat(spans)
        if spans
        else pl.DataFrame(
            schema={"_m": pl.UInt32, "_span_start": pl.Datetime("us", "UTC"), "_span_end": pl.Datetime("us", "UTC")}
        )
    )


def _best_run(scored: pl.DataFrame, baseline: pl.DataFrame) -> pl.DataFrame:
    """Per incident (`_m`), the run of candidates (`_first`) through its middle whose requests are least like
    the series' baseline (`_p0_once`, `_p0_deep`): `_span_start`, `_span_end`.

    A run's requests are its retried ones (retried once, or twice or more) and the ordinary ones between
    them; its score is the log-likelihood ratio of their three counts n under the run's own shares (n / N)
    against the baseline's shares p0: the sum of n log(n / (N p0)) (Kulldorff's scan statistic). Every run
    from a candidate left of the middle to one right of it is scored; of equal scores the shortest wins."""
    by = pl.col("_m")
    once = pl.col("_k") - pl.col("_k_deep")
    counts = ("_once", "_deep", "_ordinary")
    cumulative = scored.with_columns(  # counts before each candidate (`_b*`) and up to it (`_c*`)
        _c_once=once.cum_sum().over(by),
        _c_deep=pl.col("_k_deep").cum_sum().over(by),
        _b_once=(once.cum_sum() - once).over(by),
        _b_deep=(pl.col("_k_deep").cum_sum() - pl.col("_k_deep")).over(by),
        _b_ordinary=(pl.col("_ordinary_requests").cum_sum() - pl.col("_ordinary_requests")).over(by),
    )
    lefts = cumulative.filter("_left").select("_m", _start="_first", _lb_once="_b_once", _lb_deep="_b_deep",
                                              _lb_ordinary="_b_ordinary")  # fmt: skip
    rights = cumulative.filter("_right").select("_m", _end="_first", _rc_once="_c_once", _rc_deep="_c_deep",
                                                _rb_ordinary="_b_ordinary")  # fmt: skip
    runs = (
        lefts.join(rights, on="_m")
        .join(baseline, on="_m")
        .with_columns(
            _once=pl.col("_rc_once") - pl.col("_lb_once"),
            _deep=pl.col("_rc_deep") - pl.col("_lb_deep"),
            # the ordinary requests between the run's candidates: not those after its last one
            _ordinary=pl.col("_rb_ordinary") - pl.col("_lb_ordinary"),
            _p0_ordinary=1 - pl.col("_p0_once") - pl.col("_p0_deep"),
        )
        .with_columns(_total=pl.sum_horizontal(counts))
    )

    def term(n: str) -> pl.Expr:
        count = pl.col(n).cast(pl.Float64)
        return pl.when(count > 0).then(count * (count / (pl.col("_total") * pl.col(f"_p0{n}"))).log()).otherwise(0.0)

    return (
        runs.with_columns(_score=pl.sum_horizontal(term(n) for n in counts), _length=pl.col("_end") - pl.col("_start"))
        .sort("_m", "_score", "_length", descending=[False, True, False])
        .group_by("_m", maintain_order=True)
        .first()
        .select("_m", _span_start="_start", _span_end="_end")
    )


def _subject(scope: pl.Expr) -> pl.Expr:
    feature = pl.format("team={}/feature={}", pl.col("team").fill_null(""), pl.col("feature").fill_null(""))
    model = pl.format("provider={}/model={}", pl.col("provider").fill_null(""), pl.col("model").fill_null(""))
    return pl.when(scope == "feature").then(feature).otherwise(model)


def _findings(incidents: pl.DataFrame) -> pl.DataFrame:
    """`FINDING_SCHEMA` rows (and `_chain_ids`) of the merged incidents."""
    calls = pl.col("logical_requests").cast(pl.Float64).clip(lower_bound=1.0)
    base_share = pl.col("_w_share") / calls
    share = pl.col("retried_requests") / calls
    baseline_amplification = 1 + pl.col("_w_extra") / calls
    # an unpriced attempt's cost is unknown, never 0: no priced wasted attempt, no known waste
    wasted = pl.when((pl.col("_priced_wasted") > 0) | (pl.col("_unpriced_wasted") == 0)).then(pl.col("wasted_usd"))
    incidents = incidents.with_columns(wasted_usd=wasted, unpriced_wasted_attempts=pl.col("_unpriced_wasted"))
    details = pl.struct(
        "attempts",
        "windows",
        "logical_requests",
        "retries",
        "retried_requests",
        retried_share=share,
        baseline_retried_share=base_share,
        amplification=pl.col("attempts") / calls,
        baseline_amplification=baseline_amplification,
        error_mix=pl.struct([pl.col(f"n_{e}").alias(e) for e in ERROR_CLASSES]),
        wasted_usd=pl.col("wasted_usd").cast(_MONEY).cast(pl.String),
        unpriced_wasted_attempts=pl.col("unpriced_wasted_attempts"),
        note=unpriced_note(pl.col("unpriced_wasted_attempts"), pl.col("wasted_usd")),
        window_s=pl.col("window_s"),
        scopes=pl.col("scopes"),
        top_feature_share=pl.col("top_share"),
    )
    return incidents.select(
        kind=pl.lit("retry_storm"),
        detector="detector",
        **{c: pl.col(c) for c in _NAMES},
        subject=_subject(pl.when(pl.col("team").is_not_null()).then(pl.lit("feature")).otherwise(pl.lit("model"))),
        window_start="window_start",
        window_end="window_end",
        trace_id=pl.lit(None, pl.String),
        request_id=pl.lit(None, pl.String),
        metric=pl.lit("amplification"),
        observed=pl.col("attempts") / calls,
        expected=baseline_amplification,
        excess_cost_usd=pl.col("wasted_usd").cast(_MONEY),
        score=(1 - base_share / share).clip(0.0, 1.0),
        evidence=evidence(pl.col("_chain_ids")),
        details=details.struct.json_encode(),
        _chain_ids="_chain_ids",
    )


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={**FINDING_SCHEMA, "_chain_ids": pl.List(pl.String)})
