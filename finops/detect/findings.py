"""The one shape every detector returns (`FINDING_SCHEMA`), incident merging, stable ids and severity.

A detector returns rows of `FINDING_SCHEMA` (one per problem window); `merge_windows` folds consecutive
windows of the same problem into one incident; `finalise` gives each incident a stable `finding_id` (the
same incident keeps its id when `finops run` runs again or new data extends it) and a severity graded by
the dollars at stake. `evidence` is a JSON object `{"ids": [...], "count": n}`: the trace or request ids
involved (at most 200 listed) and how many there were.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import polars as pl

__all__ = [
    "EVIDENCE_IDS",
    "FINDING_COLUMNS",
    "FINDING_KINDS",
    "FINDING_SCHEMA",
    "SEVERITIES",
    "evidence",
    "finalise",
    "fold_outliers",
    "merge_windows",
    "severity",
]

# every kind a detector writes (the README's table of findings)
FINDING_KINDS = (
    "retry_chain",
    "retry_storm",
    "cost_spike",
    "level_shift",
    "outlier_request",
    "runaway_session",
    "insufficient_history",
)
SEVERITIES = ("critical", "high", "medium", "low")

EVIDENCE_IDS = 200
FINDING_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "detector": pl.String(),
    "team": pl.String(),
    "feature": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "subject": pl.String(),
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "trace_id": pl.String(),
    "request_id": pl.String(),
    "metric": pl.String(),
    "observed": pl.Float64(),
    "expected": pl.Float64(),
    "excess_cost_usd": pl.Decimal(38, 12),
    "score": pl.Float64(),
    "evidence": pl.String(),  # JSON object text
    "details": pl.String(),  # JSON object text
}
FINDING_COLUMNS = ("finding_id", *FINDING_SCHEMA, "severity")

# severity by excess dollars: (minimum excess USD, severity), highest first
_SEVERITY = ((Decimal(1000), "critical"), (Decimal(100), "high"), (Decimal(10), "medium"))
_EVIDENCE = pl.Struct({"ids": pl.List(pl.String()), "count": pl.Int64()})


def evidence(ids: pl.Expr) -> pl.Expr:
    """The evidence JSON of a list-of-ids expression (the first 200 ids, and the count of all of them)."""
    return pl.struct(ids=ids.list.head(EVIDENCE_IDS), count=ids.list.len().cast(pl.Int64)).struct.json_encode()


def severity(excess: pl.Expr, score: pl.Expr) -> pl.Expr:
    """critical from $1,000 of excess, high from $100, medium from $10 or a score of at least 0.99, else low."""
    expr = pl.when(score >= 0.99).then(pl.lit("medium")).otherwise(pl.lit("low"))
    for floor, name in reversed(_SEVERITY):
        expr = pl.when(excess >= pl.lit(floor, pl.Decimal(38, 12))).then(pl.lit(name)).otherwise(expr)
    return expr


def merge_windows(frame: pl.LazyFrame, *, by: list[str], gap: timedelta) -> pl.LazyFrame:
    """Merge windows of one subject that overlap or are at most `gap` apart into one incident row.

    Per incident: the first window_start, the last window_end, observed / expected / excess summed, the
    highest score, the evidence ids concatenated (unique, in order) with their counts summed; other
    columns keep the first window's value.
    """
    ordered = frame.sort([*by, "window_start"])
    previous_end = pl.col("window_end").cum_max().shift(1).over(by)
    new_incident = (pl.col("window_start") > previous_end + pl.lit(gap)).fill_null(True)
    decoded = pl.col("evidence").str.json_decode(_EVIDENCE)
    summed = ("observed", "expected", "excess_cost_usd")
    return (
        ordered.with_columns(_incident=new_incident.cast(pl.Int32).cum_sum().over(by), _ev=decoded)
        .group_by([*by, "_incident"], maintain_order=True)
        .agg(
            pl.col("window_start").min(),
            pl.col("window_end").max(),
            *(pl.col(c).sum() for c in summed),
            pl.col("score").max(),
            pl.col("_ev").struct.field("ids").explode().unique(maintain_order=True).alias("_ids"),
            pl.col("_ev").struct.field("count").sum().alias("_count"),
            pl.exclude("window_start", "window_end", *summed, "score", "evidence", "_ev").first(),
        )
        .with_columns(
            evidence=pl.struct(ids=pl.col("_ids").list.head(EVIDENCE_IDS), count=pl.col("_count")).struct.json_encode()
        )
        .drop("_incident", "_ids", "_count")
        .select(list(FINDING_SCHEMA))
    )


# the findings an outlier request is part of when it lies wholly inside them (`fold_outliers`)
_CONTAINERS = ("cost_spike", "runaway_session")


def fold_outliers(findings: pl.LazyFrame) -> pl.LazyFrame:
    """Fold each `outlier_request` finding that is part of another finding into it, so no dollar counts twice.

    Part of: a `cost_spike` of its team whose feature and model are its own or any (NULL), whose window
    holds its window; or a `runaway_session` of its team and feature whose evidence lists every request it
    names (and it names them all). The outlier finding is dropped; the finding it is part of gets
    `details.outlier_requests`: `{"count": n, "ids": [...]}`, the requests the outlier detector saw in it
    (its excess, which already counts their cost, is unchanged)."""
    rows = findings.with_row_index("_row")
    ids = pl.col("evidence").str.json_decode(_EVIDENCE).struct.field("ids")
    outliers = rows.filter(pl.col("kind") == "outlier_request").select(
        "_row", "team", "feature", "model", "window_start", "window_end", _ids=ids, _count=_evidence_count()
    )
    containers = rows.filter(pl.col("kind").is_in(_CONTAINERS)).select(
        pl.col("_row").alias("_into"), "kind", "team", "feature", "model", "window_start", "window_end", _ids=ids
    )
    in_spike = (
        outliers.join(containers.filter(pl.col("kind") == "cost_spike"), on="team", suffix="_c")
        .filter(
            pl.col("feature_c").is_null() | pl.col("feature").eq_missing(pl.col("feature_c")),
            pl.col("model_c").is_null() | pl.col("model").eq_missing(pl.col("model_c")),
            pl.col("window_start") >= pl.col("window_start_c"),
            pl.col("window_end") <= pl.col("window_end_c"),
        )
        .select("_row", "_into")
    )
    in_session = (
        outliers.filter(pl.col("_ids").list.len() == pl.col("_count"))
        .join(
            containers.filter(pl.col("kind") == "runaway_session"),
            on=["team", "feature"],
            nulls_equal=True,
            suffix="_c",
        )
        .filter(pl.col("_ids").list.set_difference("_ids_c").list.len() == 0)
        .select("_row", "_into")
    )
    folded = (
        pl.concat([in_spike, in_session])
        .sort("_row", "_into")
        .unique("_row", keep="first")
        .join(outliers.select("_row", "_ids"), on="_row")
    )
    gathered = folded.group_by("_into").agg(
        _folded=pl.col("_ids").list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)
    )
    note = pl.struct(
        count=pl.col("_folded").list.len().cast(pl.Int64), ids=pl.col("_folded").list.head(EVIDENCE_IDS)
    ).struct.json_encode()
    return (
        rows.join(folded.select("_row"), on="_row", how="anti")
        .join(gathered, left_on="_row", right_on="_into", how="left")
        .with_columns(
            details=pl.when(pl.col("_folded").is_null())
            .then(pl.col("details"))
            .otherwise(_with_field(pl.col("details"), "outlier_requests", note))
        )
        .sort("_row")
        .drop("_row", "_folded")
    )


def _evidence_count() -> pl.Expr:
    return pl.col("evidence").str.json_decode(_EVIDENCE).struct.field("count")


def _with_field(obj: pl.Expr, name: str, value: pl.Expr) -> pl.Expr:
    """The JSON object text `obj` (NULL: an empty object) with one more field `name` (a fixed key) whose
    value is the JSON text `value`."""
    body = obj.fill_null("{}").str.strip_chars().str.strip_suffix("}")
    separator = pl.when(body.str.strip_chars() == "{").then(pl.lit("")).otherwise(pl.lit(","))
    return pl.concat_str([body, separator, pl.lit(f'"{name}":'), value, pl.lit("}")])


def _stable_id(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def finalise(findings: pl.LazyFrame) -> pl.LazyFrame:
    """Stable ids and severity. The id hashes kind, detector, subject, trace/request and the incident start:
    reruns and later data that extends an incident keep it."""
    key = pl.concat_str(
        [
            pl.col("kind"),
            pl.col("detector"),
            pl.col("subject"),
            pl.col("trace_id").fill_null(""),
            pl.col("request_id").fill_null(""),
            pl.col("window_start").dt.strftime("%Y-%m-%dT%H:%M:%S"),
        ],
        separator="|",
    )
    return findings.with_columns(
        finding_id=pl.col("kind") + pl.lit("-") + key.map_elements(_stable_id, return_dtype=pl.String),
        severity=severity(pl.col("excess_cost_usd"), pl.col("score")),
    ).select(FINDING_COLUMNS)


def unpriced_note(unpriced: pl.Expr, wasted: pl.Expr) -> pl.Expr:
    """What the wasted dollars of a chain or storm with `unpriced` wasted attempts mean (NULL when every wasted
    attempt is priced): unknown when `wasted` is NULL, else a lower bound."""
    return (
        pl.when(unpriced == 0)
        .then(pl.lit(None, pl.String))
        .when(wasted.is_null())
        .then(pl.format("the wasted dollars are unknown: none of the {} wasted attempts has a known price", unpriced))
        .otherwise(
            pl.format(
                "the wasted dollars count only the priced attempts: {} wasted attempt(s) have no known price", unpriced
            )
        )
    )
