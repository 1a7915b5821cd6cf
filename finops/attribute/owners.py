"""Who owns a usage record: the team and feature it carries, else the user's ownership rules.

Order of operations (each of team and feature is decided on its own, first answer wins):
  1. the record's own `team` / `feature` (the gateway or app knew it);
  2. `api_key` rules: an exact key alias;
  3. `project` rules: an exact project (OpenAI project, Anthropic workspace);
  4. `tag` rules: `key=value` in the record's tags;
  5. `api_key_pattern` rules: a glob over the key alias (`svc-search-*`);
  6. `model_pattern` rules: a glob over the model name (`text-embedding-*`);
  7. otherwise `__unattributed__`.
Within one kind, rules apply in file order; a rule may carry validity dates (UTC, end exclusive).
The rules run on the distinct (key, project, tags, model, day) combinations, never per record, and
join back; `attribution` says which step set each of team and feature.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import date
from pathlib import Path

import polars as pl

from finops.csvfile import glob_mistake, read_csv
from finops.errors import InputError
from finops.schema import UNATTRIBUTED

__all__ = ["RULE_KINDS", "RULE_SCHEMA", "assign_owner", "owner_keys", "read_rules"]

RULE_KINDS = ("api_key", "project", "tag", "api_key_pattern", "model_pattern")
RULE_SCHEMA: dict[str, pl.DataType] = {
    "rule_kind": pl.String(),
    "match_value": pl.String(),
    "team": pl.String(),
    "feature": pl.String(),
    "valid_from": pl.Date(),
    "valid_to": pl.Date(),
    "source": pl.String(),
}
_TAG = re.compile(r"^(?P<key>[A-Za-z0-9_.-]+)=(?P<value>.+)$")
_COLUMNS = ("kind", "match", "team", "feature", "valid_from", "valid_to")


def read_rules(path: Path) -> pl.DataFrame:
    """Parse and check an owners CSV (`kind,match,team,feature,valid_from,valid_to[,note]`)."""
    header, records = read_csv(path, "the ownership rules")
    missing = [c for c in ("kind", "match") if c not in header]
    if missing:
        raise InputError(
            f"{path} line 1: the header lacks {', '.join(missing)}; expected columns "
            f"{', '.join(_COLUMNS)} (and optionally note)."
        )
    # a misspelt column would be read as empty: `feautre` gives every rule's records no feature
    if unknown := [c for c in header if c and c not in (*_COLUMNS, "note")]:
        raise InputError(
            f"{path} line 1: unknown column {unknown[0]!r}; expected columns {', '.join(_COLUMNS)} "
            "(and optionally note)."
        )
    rows = []
    for line, record in records:
        where = f"{path} line {line}"
        kind = (record.get("kind") or "").strip()
        match = (record.get("match") or "").strip()
        team = (record.get("team") or "").strip() or None
        feature = (record.get("feature") or "").strip() or None
        if kind not in RULE_KINDS:
            raise InputError(f"{where}: kind is '{kind}'; expected one of {', '.join(RULE_KINDS)}.")
        if not match:
            raise InputError(f"{where}: match is empty; expected the value the rule matches.")
        if kind == "tag" and not _TAG.match(match):
            raise InputError(
                f"{where}: match is '{match}'; a tag rule matches key=value (key: letters, digits, _.-; "
                "value: not empty)."
            )
        if kind.endswith("_pattern") and (problem := glob_mistake(match)):
            raise InputError(f"{where}: match is '{match}'; expected a glob that can match: {problem}.")
        if team is None and feature is None:
            raise InputError(f"{where}: the rule names neither a team nor a feature.")
        valid_from = _date(record, "valid_from", where)
        valid_to = _date(record, "valid_to", where)
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise InputError(f"{where}: valid_to {valid_to} is not after valid_from {valid_from}.")
        rows.append((kind, match, team, feature, valid_from, valid_to, f"{path.name} line {line}"))
    return pl.DataFrame(rows, schema=RULE_SCHEMA, orient="row")


def _date(record: dict[str, str | None], field: str, where: str) -> date | None:
    value = (record.get(field) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where}: {field} is '{value}'; expected a date like 2026-10-01.") from None


def assign_owner(usage: pl.LazyFrame, rules: pl.LazyFrame) -> pl.LazyFrame:
    """`usage` with `team` and `feature` filled (a sentinel when no rule applies) and `attribution`."""
    keys = ["team", "feature", "api_key", "project", "model", "tags", "charge_day"]
    usage = usage.with_columns(pl.col(keys[:-1]).cast(pl.String()))
    combos = usage.select(keys).unique().collect()
    decided = _decide(combos, rules.collect())
    return (
        usage.join(decided.lazy(), on=keys, how="left", nulls_equal=True)
        .with_columns(team=pl.col("_team"), feature=pl.col("_feature"))
        .drop("_team", "_feature")
    )


def owner_keys(rules: pl.DataFrame) -> list[str]:
    """The record columns `assign_owner` reads under these rules: two records equal in them get the same owner."""
    kinds = set(rules["rule_kind"].to_list())
    reads = {
        "api_key": {"api_key", "api_key_pattern"} & kinds,
        "project": {"project"} & kinds,
        "tags": {"tag"} & kinds,
        "model": {"model_pattern"} & kinds,
    }
    return ["team", "feature", "charge_day", *(column for column, by in reads.items() if by)]


def _valid(rules: pl.DataFrame, day: str = "charge_day") -> pl.Expr:
    return (pl.col("valid_from").is_null() | (pl.col(day) >= pl.col("valid_from"))) & (
        pl.col("valid_to").is_null() | (pl.col(day) < pl.col("valid_to"))
    )


def _decide(combos: pl.DataFrame, rules: pl.DataFrame) -> pl.DataFrame:
    """Team and feature of each distinct combination (small: combinations, not records)."""
    frame = combos.with_row_index("_combo")
    candidates = [
        frame.select("_combo", pl.col("team").alias("c_team"), pl.col("feature").alias("c_feature")).with_columns(
            step=pl.lit(0), _order=pl.lit(-1, pl.Int64), why=pl.lit("record")
        )
    ]
    rules = rules.with_row_index("_order")
    for step, kind in enumerate(RULE_KINDS, start=1):
        of_kind = rules.filter(pl.col("rule_kind") == kind)
        if of_kind.height == 0:
            continue
        # every matching rule of the kind, in file order: a rule naming only a team does not hide a later rule
        # of the same kind that names the feature (team and feature are decided separately)
        matched = _match(frame, of_kind, kind).filter(_valid(of_kind))
        candidates.append(
            matched.select(
                "_combo",
                pl.col("team").alias("c_team"),
                pl.col("feature").alias("c_feature"),
                step=pl.lit(step),
                _order=pl.col("_order").cast(pl.Int64),
                why=pl.lit(kind) + pl.lit(":") + pl.col("match_value"),
            )
        )
    options = pl.concat(candidates).sort("_combo", "step", "_order")
    team = (
        options.filter(pl.col("c_team").is_not_null())
        .unique("_combo", keep="first")
        .select("_combo", pl.col("c_team").alias("_team"), pl.col("why").alias("_team_why"))
    )
    feature = (
        options.filter(pl.col("c_feature").is_not_null())
        .unique("_combo", keep="first")
        .select("_combo", pl.col("c_feature").alias("_feature"), pl.col("why").alias("_feature_why"))
    )
    return (
        frame.join(team, on="_combo", how="left")
        .join(feature, on="_combo", how="left")
        .with_columns(
            attribution=pl.format(
                "team={}; feature={}", pl.col("_team_why").fill_null("none"), pl.col("_feature_why").fill_null("none")
            ),
            _team=pl.col("_team").fill_null(UNATTRIBUTED),
            _feature=pl.col("_feature").fill_null(UNATTRIBUTED),
        )
        .drop("_combo", "_team_why", "_feature_why")
    )


def _match(frame: pl.DataFrame, rules: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Pairs (combination, rule) where the rule matches; validity is checked by the caller."""
    if kind in ("api_key", "project"):
        return (
            frame.select("_combo", kind, "charge_day")
            .join(rules, left_on=kind, right_on="match_value")
            .with_columns(match_value=pl.col(kind))
        )
    if kind == "tag":
        parts = rules.with_columns(
            _key=pl.col("match_value").str.extract(_TAG.pattern, 1),
            _value=pl.col("match_value").str.extract(_TAG.pattern, 2),
        )
        pieces = []
        for key in parts["_key"].unique().to_list():
            # the key as one name (`app.name` is a flat tag key, as OpenTelemetry writes them, not a path)
            found = pl.col("tags").str.json_path_match(f"$['{key}']")
            values = frame.select("_combo", "charge_day", _value=found).filter(pl.col("_value").is_not_null())
            pieces.append(values.join(parts.filter(pl.col("_key") == key), on="_value").drop("_key", "_value"))
        return pl.concat(pieces) if pieces else frame.head(0).join(rules.head(0), how="cross")
    column = "api_key" if kind == "api_key_pattern" else "model"
    distinct = frame.select(column).drop_nulls().unique()[column].to_list()
    pairs = [
        (value, rule)
        for rule in rules["match_value"].unique().to_list()
        for value in distinct
        if fnmatch.fnmatchcase(value, rule)
    ]
    matches = pl.DataFrame(pairs, schema={column: pl.String(), "match_value": pl.String()}, orient="row")
    return frame.select("_combo", column, "charge_day").join(matches, on=column).join(rules, on="match_value")
