"""Check a FOCUS dataset against the FOCUS validator's machine-readable rules (`model-1.2.json`).

The FinOps Foundation's focus_validator ships the FOCUS 1.2 conformance rules as data: one rule per
requirement of the spec, each a check function (`CheckValue`, `TypeDecimal`, `FormatDateTime`, ...) with an
optional row condition, a keyword (MUST, SHOULD, MAY, ...) and the provider features it depends on
("applicability criteria"). This module reads that data and runs it on a table in DuckDB:

  1. walk the rule tree from the dataset's root rule (composites are AND of their children, or OR);
  2. skip what does not apply: a rule whose applicability criteria the data generator does not declare,
     a column's rules when the column is absent (its presence rule says whether it had to be there),
     and MAY rules (a permission is not a requirement);
  3. run every leaf that has a check: the rows where its conditions (its own and its ancestors') hold and
     its requirement does not are its violations; leaves without a check are counted as `manual`
     (they need a human: "MUST match the invoice", ...);
  4. report: a violated MUST / MUST NOT is an error, a violated SHOULD / RECOMMENDED a warning.

A few rules of model-1.2 say in their check something other than their own sentence; `ERRATA` corrects
them and says why.

Checked against the real validator: focus_validator 2.2.1 (`python -m focus_validator.main`, its own
model-1.2.0.1, features USAGE_MEASUREMENT_SUPPORTED,TAGGING_SUPPORTED) runs 155 rules on the export, CSV and
Parquet, and fails none that counts: it lists InvoiceId-C-005-C (NOT NULL when invoiced) as failed though
its parent rule, an OR with "null when not invoiced", passes. It differs from this module in one way that
matters: it fails any rule whose condition names an absent column, where this module reads an absent
column as NULL, as FOCUS does; so `finops.export.focus` writes InvoiceId and CommitmentDiscountStatus
(NULL) rather than leave them out.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

__all__ = [
    "ERRATA",
    "ConformanceReport",
    "RuleOutcome",
    "check_conformance",
    "load_model",
]

Status = Literal["pass", "fail", "skipped", "manual"]
_ERROR_KEYWORDS = frozenset({"MUST", "MUST NOT"})
_WARNING_KEYWORDS = frozenset({"SHOULD", "SHOULD NOT", "RECOMMENDED"})
# FOCUS NumericFormat: an integer, a decimal or E notation; no '+' sign, an exponent sign only when negative
NUMERIC_RE = r"-?([0-9]+(\.[0-9]+)?|\.[0-9]+)([eE]-?[0-9]+)?"
DATETIME_RE = r"[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z"
CURRENCY_RE = r"[A-Z]{3}"
# FOCUS UnitFormat: `<plural-units>`, `<singular-unit>-<plural-time-units>`, `<plural-units>/<interval>`, each
# optionally after a whole-number quantity ("1000 Tokens", "GB-Hours", "Requests/Second")
_UNIT_RE = re.compile(r"([0-9]+ )?[A-Za-z][A-Za-z0-9 ]*(-[A-Za-z]+)?(/[A-Za-z]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Erratum:
    """A corrected requirement and/or condition for one rule, and why."""

    why: str
    requirement: dict[str, Any] | None = None
    condition: dict[str, Any] | None = None


ERRATA: dict[str, Erratum] = {
    "ConsumedQuantity-C-006-C": Erratum(
        why="its sentence is 'MUST NOT be null when ChargeClass is not \"Correction\"'; the model's condition "
        "tests ChargeClass = 'Correction' instead",
        condition={"CheckFunction": "CheckNotValue", "ColumnName": "ChargeClass", "Value": "Correction"},
    ),
    "PricingCurrencyEffectiveCost-C-004-M": Erratum(
        why="its sentence is 'PricingCurrencyEffectiveCost MUST be a valid decimal value'; the model checks "
        "PricingCurrencyListUnitPrice >= 0 instead",
        requirement={"CheckFunction": "CheckDecimalValue", "ColumnName": "PricingCurrencyEffectiveCost"},
    ),
    "Tags-C-003-C": Erratum(
        why="its sentence is 'When Tags is not null'; the model's condition tests Tags IS NULL",
        condition={"CheckFunction": "CheckNotValue", "ColumnName": "Tags", "Value": None},
    ),
}


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: str
    keyword: str
    status: Status
    violations: int
    requirement: str  # the rule's sentence (MustSatisfy)
    note: str = ""


@dataclass(frozen=True)
class ConformanceReport:
    outcomes: tuple[RuleOutcome, ...]
    applicability: frozenset[str]

    @property
    def errors(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes if o.status == "fail" and o.keyword in _ERROR_KEYWORDS]

    @property
    def warnings(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes if o.status == "fail" and o.keyword in _WARNING_KEYWORDS]

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> str:
        """One line: how many rules passed, failed, were skipped or need a human."""
        return (
            f"{self.count('pass')} rules passed, {len(self.errors)} errors, {len(self.warnings)} warnings, "
            f"{self.count('skipped')} skipped (not applicable), {self.count('manual')} not machine-checkable"
        )


def load_model(path: Path) -> dict[str, Any]:
    """The validator's rule model from a `.json` or `.json.gz` file."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    model: dict[str, Any] = json.loads(raw)
    return model


# --- checking data --------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """A check function (or shape of one) this interpreter does not run; the rule is reported `manual`."""


@dataclass
class _Checker:
    con: duckdb.DuckDBPyConnection
    table: str
    types: dict[str, str]  # column -> DuckDB type
    rules: Mapping[str, Any]
    applicability: frozenset[str]
    text_values: bool  # every column is text (a CSV read as VARCHAR): types are checked on the values
    outcomes: list[RuleOutcome] = field(default_factory=list)

    # the walk

    def visit(self, rule_id: str, conditions: tuple[dict[str, Any], ...], ancestors_may: bool = False) -> None:
        rule = self.rules[rule_id]
        criteria = rule["ValidationCriteria"]
        keyword: str = criteria["Keyword"]
        sentence: str = criteria["MustSatisfy"]
        # a column's rules apply to a present column only, and (like any rule) only for declared features:
        # a NULL CommitmentDiscountStatus column is not held to commitment-discount rules
        if not set(rule["ApplicabilityCriteria"]) <= self.applicability:
            self._record(rule_id, keyword, "skipped", 0, sentence, f"needs {', '.join(rule['ApplicabilityCriteria'])}")
            return
        if _is_column_root(rule_id, rule) and rule["Reference"] not in self.types:
            self._record(rule_id, keyword, "skipped", 0, sentence, "column absent")
            return
        erratum = ERRATA.get(rule_id)
        requirement = erratum.requirement if erratum and erratum.requirement else criteria["Requirement"]
        condition = erratum.condition if erratum and erratum.condition else criteria["Condition"]
        here = (*conditions, condition) if condition else conditions
        note = f"erratum: {erratum.why}" if erratum else ""
        may = ancestors_may or keyword == "MAY"
        if rule["Function"] == "Composite":
            if requirement.get("CheckFunction") == "OR":
                self._leaf(rule_id, keyword, sentence, requirement, here, may, note, alternatives=True)
                return
            for item in requirement.get("Items", []):
                self.visit(item["ModelRuleId"], here, may)
            return
        self._leaf(rule_id, keyword, sentence, requirement, here, may, note)

    def _leaf(
        self,
        rule_id: str,
        keyword: str,
        sentence: str,
        requirement: dict[str, Any],
        conditions: tuple[dict[str, Any], ...],
        may: bool,
        note: str,
        *,
        alternatives: bool = False,
    ) -> None:
        if may:
            self._record(rule_id, keyword, "skipped", 0, sentence, "MAY: a permission, not a requirement")
            return
        if not requirement:
            self._record(rule_id, keyword, "manual", 0, sentence, note)
            return
        try:
            if alternatives:
                violations = self._alternatives(requirement, conditions)
            else:
                violations = self._violations(requirement, conditions)
        except _Unsupported as exc:
            self._record(rule_id, keyword, "manual", 0, sentence, f"not run: {exc}")
            return
        self._record(rule_id, keyword, "fail" if violations else "pass", violations, sentence, note)

    def _record(self, rule_id: str, keyword: str, status: Status, violations: int, sentence: str, note: str) -> None:
        self.outcomes.append(RuleOutcome(rule_id, keyword, status, violations, sentence, note))

    # evaluation

    def _violations(self, requirement: dict[str, Any], conditions: tuple[dict[str, Any], ...]) -> int:
        function = requirement.get("CheckFunction")
        where, params = self._where(conditions)
        if function == "ColumnPresent":
            return 0 if requirement["ColumnName"] in self.types else 1
        if function == "CheckDistinctCount":
            a, b = self._column(requirement["ColumnAName"]), self._column(requirement["ColumnBName"])
            sql = (
                f"SELECT count(*) FROM (SELECT {a} FROM {self.table} WHERE {where} GROUP BY {a} "
                f"HAVING count(DISTINCT {b}) <> ?)"
            )
            return int(self._scalar(sql, [*params, int(requirement["ExpectedCount"])]))
        if function in ("FormatKeyValue", "FormatUnit"):
            column = self._column(_column_name(requirement))
            sql = f"SELECT DISTINCT CAST({column} AS VARCHAR) FROM {self.table} WHERE {where} AND {column} IS NOT NULL"
            values = [row[0] for row in self.con.execute(sql, params).fetchall()]
            bad = [v for v in values if not (_key_value_ok(v) if function == "FormatKeyValue" else _unit_ok(v))]
            if not bad:
                return 0
            return int(self._scalar(f"SELECT count(*) FROM {self.table} WHERE {where} AND "
                                    f"list_contains(?, CAST({column} AS VARCHAR))", [*params, bad]))  # fmt: skip
        predicate, more = self._predicate(requirement)
        sql = f"SELECT count(*) FROM {self.table} WHERE {where} AND NOT coalesce({predicate}, false)"
        return int(self._scalar(sql, [*params, *more]))

    def _alternatives(self, requirement: dict[str, Any], conditions: tuple[dict[str, Any], ...]) -> int:
        """An OR composite: each row must satisfy one child (its condition implies its requirement)."""
        parts, params = [], []
        for item in requirement["Items"]:
            child = self.rules[item["ModelRuleId"]]["ValidationCriteria"]
            if not child["Requirement"]:
                return 0  # a child only a human can check: nothing to hold against the data
            requirement_sql, requirement_params = self._predicate(child["Requirement"])
            if child["Condition"]:
                condition_sql, condition_params = self._predicate(child["Condition"])
                parts.append(f"(NOT coalesce({condition_sql}, false) OR coalesce({requirement_sql}, false))")
                params += [*condition_params, *requirement_params]
            else:
                parts.append(f"coalesce({requirement_sql}, false)")
                params += requirement_params
        where, where_params = self._where(conditions)
        sql = f"SELECT count(*) FROM {self.table} WHERE {where} AND NOT ({' OR '.join(parts)})"
        return int(self._scalar(sql, [*where_params, *params]))

    def _where(self, conditions: tuple[dict[str, Any], ...]) -> tuple[str, list[Any]]:
        parts, params = ["true"], []
        for condition in conditions:
            sql, more = self._predicate(condition)
            parts.append(f"coalesce({sql}, false)")
            params += more
        return " AND ".join(parts), params

    def _predicate(self, check: dict[str, Any]) -> tuple[str, list[Any]]:
        """A SQL boolean over one row for a row-level check, and its parameters."""
        function = check.get("CheckFunction")
        if function in ("AND", "OR"):
            parts, params = [], []
            for item in check["Items"]:
                sql, more = self._predicate(item)
                parts.append(f"coalesce({sql}, false)")
                params += more
            return "(" + f" {function} ".join(parts) + ")", params
        if function in ("CheckValue", "CheckNotValue"):
            column, value = self._column(_column_name(check)), check.get("Value")
            negate = "NOT " if function == "CheckNotValue" else ""
            if value is None:
                return f"({column} IS {negate}NULL)", []
            if isinstance(value, int | float):
                return f"({negate}(TRY_CAST({column} AS DOUBLE) IS NOT DISTINCT FROM ?))", [float(value)]
            return f"({negate}(CAST({column} AS VARCHAR) IS NOT DISTINCT FROM ?))", [str(value)]
        if function in ("CheckSameValue", "CheckNotSameValue"):
            a, b = self._column(check["ColumnAName"]), self._column(check["ColumnBName"])
            negate = "NOT " if function == "CheckNotSameValue" else ""
            return f"({negate}(CAST({a} AS VARCHAR) IS NOT DISTINCT FROM CAST({b} AS VARCHAR)))", []
        if function == "CheckGreaterOrEqualThanValue":
            column = self._column(_column_name(check))
            return f"({column} IS NULL OR TRY_CAST({column} AS DOUBLE) >= ?)", [float(check["Value"])]
        if function == "ColumnByColumnEqualsColumnValue":
            a, b, result = (self._column(check[k]) for k in ("ColumnAName", "ColumnBName", "ResultColumnName"))
            product = f"TRY_CAST({a} AS DOUBLE) * TRY_CAST({b} AS DOUBLE)"
            total = f"TRY_CAST({result} AS DOUBLE)"
            return f"(abs({product} - {total}) <= 1e-9 * greatest(1, abs({total})))", []
        if function in ("CheckDecimalValue", "FormatNumeric"):
            return self._matches(_column_name(check), NUMERIC_RE)
        if function == "FormatDateTime":
            name = _column_name(check)
            if self.types.get(name) == "TIMESTAMP WITH TIME ZONE":
                return "true", []  # an instant, UTC by type; its text form is the reader's
            return self._matches(name, DATETIME_RE)
        if function in ("FormatCurrency", "CheckNationalCurrency"):
            return self._matches(_column_name(check), CURRENCY_RE)
        if function == "FormatString":
            column = self._column(_column_name(check))
            return f"({column} IS NULL OR trim(CAST({column} AS VARCHAR)) <> '')", []
        if function in ("TypeDecimal", "TypeString", "TypeDateTime"):
            return self._type_check(function, _column_name(check))
        raise _Unsupported(f"check function {function!r}")

    def _type_check(self, function: str, name: str) -> tuple[str, list[Any]]:
        if name not in self.types:
            return "true", []  # an absent column holds no value of a wrong type
        if self.text_values:
            if function == "TypeDecimal":
                return self._matches(name, NUMERIC_RE)
            if function == "TypeDateTime":
                return self._matches(name, DATETIME_RE)
            return "true", []
        duck = self.types[name]
        if function == "TypeDecimal":
            ok = duck.startswith("DECIMAL") or duck in ("DOUBLE", "FLOAT")
        elif function == "TypeString":
            ok = duck == "VARCHAR"
        else:
            ok = duck in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE")
            if duck == "VARCHAR":
                return self._matches(name, DATETIME_RE)
        column = self._column(name)
        return ("true" if ok else f"({column} IS NULL)"), []

    def _matches(self, name: str, pattern: str) -> tuple[str, list[Any]]:
        column = self._column(name)
        return f"({column} IS NULL OR regexp_full_match(CAST({column} AS VARCHAR), ?))", [pattern]

    def _column(self, name: str) -> str:
        if not _IDENTIFIER.fullmatch(name):
            raise _Unsupported(f"column name {name!r}")
        # an absent column reads as NULL on every row (FOCUS: a column not provided holds no values)
        return f'"{name}"' if name in self.types else "CAST(NULL AS VARCHAR)"

    def _scalar(self, sql: str, params: list[Any]) -> Any:
        row = self.con.execute(sql, params).fetchone()
        return row[0] if row else 0


def check_conformance(
    con: duckdb.DuckDBPyConnection,
    table: str,
    model: Mapping[str, Any],
    *,
    applicability: Iterable[str],
    text_values: bool = False,
    dataset: str = "CostAndUsage",
) -> ConformanceReport:
    """Run the model's rules for `dataset` on `table` (a table or view name in `con`).

    `applicability` are the criteria the data generator declares (e.g. `TAGGING_SUPPORTED`);
    `text_values` says every column is text (a CSV read with `all_varchar`), so types are checked on values.
    """
    if not _IDENTIFIER.fullmatch(table):
        raise ValueError(f"table name {table!r} is not a plain identifier")
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    checker = _Checker(con, table, types, model["ModelRules"], frozenset(applicability), text_values)
    for root in model["ModelDatasets"][dataset]["ModelRules"]:
        checker.visit(root, ())
    return ConformanceReport(tuple(checker.outcomes), checker.applicability)


def _is_column_root(rule_id: str, rule: Mapping[str, Any]) -> bool:
    return bool(rule["EntityType"] == "Column" and re.fullmatch(r".+-C-000-[MCO]", rule_id))


def _column_name(check: Mapping[str, Any]) -> str:
    # two rules of model-1.2 name their column under "CheckCondition" instead of "ColumnName"
    name = check.get("ColumnName", check.get("CheckCondition"))
    if not isinstance(name, str):
        raise _Unsupported(f"no column in {check}")
    return name


def _key_value_ok(text: str) -> bool:
    """FOCUS KeyValueFormat: a JSON object, unique keys, scalar values (no object or array)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        value = json.loads(text, object_pairs_hook=unique)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values())


def _unit_ok(text: str) -> bool:
    return bool(_UNIT_RE.fullmatch(text))
