"""Typed fields of the canonical records and the SQL that checks them, a whole column at a time.

A source adapter maps its input onto canonical field names with SQL expressions; what type those
expressions have (JSON text, VARCHAR from a CSV, native Parquet types) decides how each field is read.
For every field this module generates:

- a *value* expression: the typed canonical value, NULL when missing or invalid;
- *problems*: ordered `(condition, reason, message)` triples that turn into one `CASE` per row.

Identifiers and literals in the generated SQL come from the fixed specs in this package, never from
user input; the only user values (zone, ingest time, FX rates) are bound as `$parameters`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "COUNT_LIMIT",
    "COUNT_LIMIT_TEXT",
    "MONEY_LIMIT",
    "PRICE_LIMIT",
    "MONEY_LIMIT_TEXT",
    "Field",
    "FieldSQL",
    "Kind",
    "Problem",
    "Rep",
    "field_sql",
    "first_problem",
    "rep_of",
    "sql_str",
]

MONEY = "DECIMAL(38,12)"
# The largest amount one record may carry, in its own unit. DECIMAL(38,12) holds up to 1e26, but the
# arithmetic after parsing needs headroom: amount x scale and amount x --fx-rate are DECIMAL products whose
# scales add up (they overflow near 1e17), and sums over many rows stay in DECIMAL(38,12) (two amounts of
# 9e25 overflow a SUM). No real bill line comes near a quadrillion; a value beyond it is a broken record.
MONEY_LIMIT = 10**15
MONEY_LIMIT_TEXT = "1e15"
# Prices (USD per million tokens, per GPU-hour, per 1,000 requests) are below this: the price overrides file
# and a GPU capacity record's hourly_rate are both held to it (finops.price.overrides explains the headroom).
PRICE_LIMIT = 10**6
# The largest count (tokens, requests) one record may carry: a provider's daily bucket of a very large
# organisation holds about 1e12 tokens. The cost sums seven counts x per-token prices (below 1 USD, see
# PRICE_LIMIT) in 128-bit integers of 1e-24 USD, which 1e13 keeps far from overflow.
COUNT_LIMIT = 10**13
COUNT_LIMIT_TEXT = "1e13"
QUANTITY = "DECIMAL(38,9)"
# The smallest positive quantity QUANTITY holds: a smaller one (1e-10 GPUs) rounds to 0
QUANTITY_STEP_TEXT = "0.000000001 (9 decimal places)"
_NUMBER_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"


class Kind(enum.Enum):
    TEXT = "a string"
    COUNT = "a non-negative integer"
    POSITIVE_INT = "an integer of at least 1"
    TIMESTAMP = "an RFC 3339 timestamp with an offset or Z, or epoch seconds/milliseconds"
    MONEY = "a decimal number (digits, optional sign, '.', exponent)"
    QUANTITY = "a non-negative number"
    POSITIVE_QUANTITY = "a number greater than 0"
    ENUM = "one of"
    STATUS = "an HTTP status code (100-599) or one of timeout, error, cancelled"
    OBJECT = "a JSON object of string values"


class Rep(enum.Enum):
    """How the mapped input expression arrives."""

    JSON = "json"  # JSON text of one value (strings keep their quotes)
    TEXT = "text"  # plain text, e.g. a CSV cell or a string extracted from JSON
    INT = "int"
    FLOAT = "float"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"  # naive
    DATE = "date"
    BOOL = "bool"
    NESTED = "nested"  # STRUCT / MAP / LIST from Parquet
    NULL = "null"


def rep_of(duckdb_type: str) -> Rep:
    """The representation of a DuckDB column type."""
    t = duckdb_type.upper()
    if t == "JSON":
        return Rep.JSON
    if t in {"VARCHAR", "BLOB"} or t.startswith("VARCHAR") or t.startswith("ENUM"):
        return Rep.TEXT
    if t in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }:
        return Rep.INT
    if t in {"FLOAT", "DOUBLE", "REAL"} or t.startswith("DECIMAL"):
        return Rep.FLOAT
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return Rep.TIMESTAMPTZ
    if t.startswith("TIMESTAMP"):
        return Rep.TIMESTAMP
    if t == "DATE":
        return Rep.DATE
    if t == "BOOLEAN":
        return Rep.BOOL
    if t == '"NULL"' or t == "NULL":
        return Rep.NULL
    return Rep.NESTED


def sql_str(value: str) -> str:
    """A SQL string literal for a constant from our own specs (never for user input)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Field:
    """One canonical field: its kind, whether it is required, and its default when absent."""

    name: str
    kind: Kind
    required: bool = False
    default: str | None = None  # a SQL literal used when the input is absent
    choices: tuple[str, ...] = ()
    allow_negative: bool = False
    # a quantity's upper bound (GPU counts and GPU-seconds: COUNT_LIMIT); beyond it the record is rejected
    # (invalid_value) and the value reads as NULL, so no later product over it can overflow
    maximum: int | None = None

    @property
    def expected(self) -> str:
        most = f" and at most {_limit_text(self.maximum)}" if self.maximum is not None else ""
        if self.kind is Kind.POSITIVE_QUANTITY:
            return f"a number of at least {QUANTITY_STEP_TEXT}{most}"
        if self.kind is Kind.QUANTITY and self.maximum is not None:
            return f"{self.kind.value} of at most {_limit_text(self.maximum)}"
        if self.kind is Kind.ENUM:
            return "one of " + ", ".join(self.choices)
        if self.kind is Kind.MONEY:
            if self.allow_negative:
                return f"{self.kind.value} from -{MONEY_LIMIT_TEXT} to {MONEY_LIMIT_TEXT}"
            return f"a non-negative decimal number of at most {MONEY_LIMIT_TEXT}"
        if self.kind is Kind.COUNT:
            return f"{self.kind.value} of at most {COUNT_LIMIT_TEXT}"
        return self.kind.value


def _limit_text(limit: int) -> str:
    return COUNT_LIMIT_TEXT if limit == COUNT_LIMIT else f"{limit:,}"


@dataclass(frozen=True)
class Problem:
    condition: str
    reason: str
    message: str  # a SQL expression yielding the message text


@dataclass(frozen=True)
class FieldSQL:
    """The SQL pieces for one field: helper columns, the typed value, and ordered problems."""

    helpers: tuple[tuple[str, str], ...]  # (column name, expression) computed in the first layer
    value: str
    problems: tuple[Problem, ...]


def _q(name: str) -> str:
    return '"' + name + '"'


def _shown(expr: str) -> str:
    """How a bad input value is quoted in a message: its text, cut to 80 characters."""
    return f"left(CAST({expr} AS VARCHAR), 80)"


def _starts(expr: str, prefix: str) -> str:
    """Whether the text of `expr` begins with `prefix`: a byte test, cheaper than `left(..., 1) = prefix`, which
    cuts out a new string for every row (issue 2 profiling)."""
    return f"starts_with(CAST({expr} AS VARCHAR), {sql_str(prefix)})"


def _msg(field: Field, shown: str, expectation: str | None = None) -> str:
    exp = sql_str(f"; expected {expectation or field.expected}")
    return f"{sql_str(field.name + ' is ')} || {shown} || {exp}"


def _missing(field: Field, raw: str) -> Problem:
    return Problem(f"{raw} IS NULL", "missing_field", sql_str(f"{field.name} is missing; expected {field.expected}"))


def field_sql(field: Field, expr: str, rep: Rep, label: str | None = None) -> FieldSQL:
    """Generate the reading and checking SQL for `field` whose input is `expr` of representation `rep`.

    Messages name the field as the input calls it (`label`), e.g. `cost_usd` for `reported_cost_usd`.
    """
    p = "_" + field.name
    if label and label != field.name:
        field = dataclasses.replace(field, name=label)
    if rep is Rep.NULL:
        value = field.default if field.default is not None else "NULL"
        problems = (Problem("true", "missing_field", sql_str(f"{field.name} is missing; expected {field.expected}")),)
        return FieldSQL((), value, problems if field.required and field.default is None else ())
    builder = _BUILDERS[field.kind]
    helpers, value, problems = builder(field, expr, rep, p)
    if field.default is not None:
        value = f"COALESCE({value}, {field.default})"
    elif field.required:
        problems = [_missing(field, expr), *problems]
    return FieldSQL(tuple(helpers), value, tuple(problems))


Built = tuple[list[tuple[str, str]], str, list[Problem]]


def _text_of(expr: str, rep: Rep) -> str:
    """Plain text of the input: JSON strings unquoted, CSV cells trimmed, empty -> NULL."""
    if rep is Rep.JSON:
        return f"NULLIF(({expr})->>'$', '')"
    if rep is Rep.TEXT:
        return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"
    return f"CAST({expr} AS VARCHAR)"


def _text(field: Field, expr: str, rep: Rep, p: str) -> Built:
    problems = []
    if rep is Rep.JSON:
        problems.append(
            Problem(f"({_starts(expr, '{')} OR {_starts(expr, '[')})", "wrong_type", _msg(field, _shown(expr)))
        )
    elif rep is Rep.NESTED:
        problems.append(Problem("true", "wrong_type", _msg(field, _shown(expr))))
    # the text once, as a helper: the value and the checks share it (trim is not cheap: issue 2 profiling)
    name = p + "_t"
    value = _q(name)
    if field.required:
        problems.insert(
            0,
            Problem(
                f"{value} IS NULL AND {expr} IS NOT NULL",
                "missing_field",
                sql_str(f"{field.name} is empty; expected {field.expected}"),
            ),
        )
    return [(name, _text_of(expr, rep))], value, problems


def _number_helper(expr: str, rep: Rep, p: str) -> tuple[str, str]:
    """A DOUBLE view of a numeric input: NULL for strings, objects, booleans and garbage."""
    if rep is Rep.JSON:
        return p + "_d", f"TRY_CAST(CAST({expr} AS VARCHAR) AS DOUBLE)"
    if rep is Rep.TEXT:
        return p + "_d", f"TRY_CAST(trim(CAST({expr} AS VARCHAR)) AS DOUBLE)"
    if rep in (Rep.INT, Rep.FLOAT):
        return p + "_d", f"CAST({expr} AS DOUBLE)"
    return p + "_d", "CAST(NULL AS DOUBLE)"


def _integer(field: Field, expr: str, rep: Rep, p: str, minimum: int, maximum: int = 9 * 10**15 - 1) -> Built:
    """Whole numbers from `minimum` to `maximum`; a value beyond them reads as NULL (its record is rejected),
    so no sum over a rejected record's counts can overflow."""
    if rep is Rep.INT:
        value = f"CASE WHEN {expr} <= {maximum} THEN TRY_CAST({expr} AS BIGINT) END"
        reason = "negative_value" if minimum == 0 else "invalid_value"
        return (
            [],
            value,
            [
                Problem(f"{expr} < {minimum}", reason, _msg(field, _shown(expr))),
                Problem(f"{expr} > {maximum}", "invalid_value", _msg(field, _shown(expr))),
            ],
        )
    name, helper = _number_helper(expr, rep, p)
    d = _q(name)
    value = f"CASE WHEN {d} = trunc({d}) AND abs({d}) <= {maximum} THEN TRY_CAST({d} AS BIGINT) END"
    problems = [
        Problem(f"{expr} IS NOT NULL AND ({d} IS NULL OR NOT isfinite({d}))", "wrong_type", _msg(field, _shown(expr))),
        Problem(f"{d} <> trunc({d})", "fractional_value", _msg(field, _shown(expr))),
        Problem(f"{d} < {minimum}", "negative_value" if minimum == 0 else "invalid_value", _msg(field, _shown(expr))),
        Problem(f"abs({d}) > {maximum}", "invalid_value", _msg(field, _shown(expr))),
    ]
    return [(name, helper)], value, problems


def _count(field: Field, expr: str, rep: Rep, p: str) -> Built:
    return _integer(field, expr, rep, p, 0, COUNT_LIMIT)


def _positive_int(field: Field, expr: str, rep: Rep, p: str) -> Built:
    return _integer(field, expr, rep, p, 1)


def _decimal(
    field: Field, expr: str, rep: Rep, p: str, sql_type: str, *, positive: bool = False, limit: int | None = None
) -> Built:
    """Exact decimals from the input's text (never through a binary float when text is available).

    A value beyond `limit` either way is an `invalid_number`, as one too long for `sql_type` is, and reads
    as NULL, so no later arithmetic on the rejected row can overflow. A value above the field's `maximum` (a
    quantity's bound) is an `invalid_value`, however large, and reads as NULL too.
    """
    maximum = field.maximum

    def bounded(value: str) -> str:
        if maximum is not None:
            value = f"CASE WHEN {value} <= {maximum} THEN {value} END"
        return value if limit is None else f"CASE WHEN abs({value}) <= {limit} THEN {value} END"

    if rep in (Rep.INT, Rep.FLOAT):  # native numbers (Parquet, typed JSON): one cast, no text round trip
        value = bounded(f"TRY_CAST({expr} AS {sql_type})")
        problems = [Problem(f"{expr} IS NOT NULL AND {value} IS NULL", "invalid_number", _msg(field, _shown(expr)))]
        if maximum is not None:  # before invalid_number: a value too large for sql_type is above it too
            above = f"{expr} > {maximum} AND isfinite(CAST({expr} AS DOUBLE))"
            problems.insert(0, Problem(above, "invalid_value", _msg(field, _shown(expr))))
        if positive:
            problems.append(Problem(f"{value} <= 0", "invalid_value", _msg(field, _shown(expr))))
        elif not field.allow_negative:
            problems.append(Problem(f"{value} < 0", "negative_value", _msg(field, _shown(expr))))
        return [], value, problems
    name, value_name = p + "_s", p + "_v"
    s, v = _q(name), _q(value_name)
    if rep is Rep.JSON:
        # a JSON number is a number by the JSON grammar: cast it; only a JSON string needs the format check
        quoted = _starts(expr, '"')
        helper = f"CASE WHEN {quoted} THEN trim(({expr})->>'$') ELSE CAST({expr} AS VARCHAR) END"
        checked = (
            f"CASE WHEN NOT {quoted} THEN TRY_CAST({s} AS {sql_type}) "
            f"WHEN regexp_full_match({s}, '{_NUMBER_RE}') THEN TRY_CAST({s} AS {sql_type}) END"
        )
    elif rep is Rep.TEXT:
        helper = f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"
        checked = f"CASE WHEN regexp_full_match({s}, '{_NUMBER_RE}') THEN TRY_CAST({s} AS {sql_type}) END"
    else:
        return (
            [],
            f"CAST(NULL AS {sql_type})",
            [Problem(f"{expr} IS NOT NULL", "wrong_type", _msg(field, _shown(expr)))],
        )
    value = bounded(v)
    problems = [Problem(f"{s} IS NOT NULL AND {value} IS NULL", "invalid_number", _msg(field, _shown(expr)))]
    if maximum is not None:  # before invalid_number: a number too large for sql_type (1e30) is above it too
        too_large = f"regexp_full_match({s}, '{_NUMBER_RE}') AND TRY_CAST({s} AS DOUBLE) > {maximum}"
        above = f"COALESCE({v} > {maximum}, {too_large})"
        problems.insert(0, Problem(above, "invalid_value", _msg(field, _shown(expr))))
    if positive:
        problems.append(Problem(f"{v} <= 0", "invalid_value", _msg(field, _shown(expr))))
    elif not field.allow_negative:
        problems.append(Problem(f"{v} < 0", "negative_value", _msg(field, _shown(expr))))
    return [(name, helper), (value_name, checked)], value, problems


def _money(field: Field, expr: str, rep: Rep, p: str) -> Built:
    return _decimal(field, expr, rep, p, MONEY, limit=MONEY_LIMIT)


def _quantity(field: Field, expr: str, rep: Rep, p: str) -> Built:
    return _decimal(field, expr, rep, p, QUANTITY)


def _positive_quantity(field: Field, expr: str, rep: Rep, p: str) -> Built:
    return _decimal(field, expr, rep, p, QUANTITY, positive=True)


def _timestamp(field: Field, expr: str, rep: Rep, p: str) -> Built:
    """Timestamps become UTC instants; a naive one needs the zone the user declared (`$zone`)."""
    problems: list[Problem] = []
    if rep is Rep.TIMESTAMPTZ:
        value = f"CAST({expr} AS TIMESTAMPTZ)"
        return [], value, _time_bounds(field, value, expr)
    if rep in (Rep.TIMESTAMP, Rep.DATE):
        value = f"CASE WHEN $zone IS NOT NULL THEN timezone($zone, CAST({expr} AS TIMESTAMP)) END"
        problems.append(
            Problem(
                f"{expr} IS NOT NULL AND $zone IS NULL",
                "naive_timestamp",
                _msg(
                    field,
                    _shown(expr),
                    "a timestamp with a UTC offset; this one has none. "
                    "Declare the zone the file was written in with --timezone",
                ),
            )
        )
        return [], value, problems + _time_bounds(field, value, expr)
    if rep in (Rep.INT, Rep.FLOAT):
        num_name, num = p + "_n", f"CAST({expr} AS DOUBLE)"
        s_name, s = p + "_s", "CAST(NULL AS VARCHAR)"
    else:
        s_name = p + "_s"
        s = _text_of(expr, rep) if rep in (Rep.JSON, Rep.TEXT) else "CAST(NULL AS VARCHAR)"
        num_name = p + "_n"
        st_ = _q(s_name)
        if rep is Rep.JSON:
            # a bare JSON number, or a string of digits, is epoch time (a date has '-': it never casts)
            quoted = _starts(expr, '"')
            num = (
                f"CASE WHEN NOT {quoted} THEN TRY_CAST(CAST({expr} AS VARCHAR) AS DOUBLE) "
                f"WHEN NOT contains({st_}, '-') THEN TRY_CAST({st_} AS DOUBLE) END"
            )
        else:
            num = f"CASE WHEN NOT contains({st_}, '-') THEN TRY_CAST({st_} AS DOUBLE) END"
    n, st = _q(num_name), _q(s_name)
    epoch = (
        f"TRY(make_timestamptz(TRY_CAST(round({n} * CASE WHEN abs({n}) < 1e11 THEN 1e6 WHEN abs({n}) < 1e14 "
        f"THEN 1e3 WHEN abs({n}) < 1e17 THEN 1 ELSE 1e-3 END) AS BIGINT)))"
    )
    # ends in Z, or in an offset +HH:MM / +HHMM / +HH after the time of day (string tests, not a regex)
    offset_name = p + "_o"
    has_offset_sql = (
        f"(length({st}) > 10 AND (suffix({st}, 'Z') OR suffix({st}, 'z') OR left(right({st}, 6), 1) IN ('+', '-') "
        f"OR left(right({st}, 5), 1) IN ('+', '-') OR left(right({st}, 3), 1) IN ('+', '-')))"
    )
    # a helper the parse and the naive-timestamp check both test; as a CASE, so the ORs stop at the first
    # true test (a bare boolean projection evaluates every test on every row: +0.3 s per 1M rows)
    has_offset_sql = f"CASE WHEN {has_offset_sql} THEN true ELSE false END"
    has_offset = _q(offset_name)
    # RFC 3339 also allows a lower-case t and z, and a leap second (:60, read as the last microsecond of
    # its minute): DuckDB reads neither, so the rows it cannot read are tried again in that form
    rfc3339 = f"regexp_replace(upper({st}), ':60(\\.\\d*)?(Z|[+-]|$)', ':59.999999\\2')"
    parsed = (
        f"CASE WHEN {has_offset} THEN coalesce(TRY_CAST({st} AS TIMESTAMPTZ), TRY_CAST({rfc3339} AS TIMESTAMPTZ)) "
        f"WHEN $zone IS NOT NULL THEN timezone($zone, TRY_CAST({st} AS TIMESTAMP)) END"
    )
    # the instant, computed once as a helper: the problems below test it instead of parsing the text again
    # (a CASE's conditions are not shared as common subexpressions; issue 2 profiling)
    t_name = p + "_t"
    t = _q(t_name)
    instant = f"CASE WHEN {n} IS NOT NULL THEN {epoch} ELSE {parsed} END"
    problems = [
        Problem(f"{n} IS NULL AND {expr} IS NOT NULL AND {st} IS NULL", "invalid_timestamp", _msg(field, _shown(expr))),
        Problem(f"{n} IS NOT NULL AND {t} IS NULL", "invalid_timestamp", _msg(field, _shown(expr))),
        Problem(
            f"{n} IS NULL AND {st} IS NOT NULL AND NOT {has_offset} AND $zone IS NULL "
            f"AND TRY_CAST({st} AS TIMESTAMP) IS NOT NULL",
            "naive_timestamp",
            _msg(
                field,
                _shown(expr),
                "a timestamp with a UTC offset or Z; this one has none. "
                "Declare the zone the file was written in with --timezone",
            ),
        ),
        Problem(f"{n} IS NULL AND {st} IS NOT NULL AND {t} IS NULL", "invalid_timestamp", _msg(field, _shown(expr))),
        Problem(
            f"{n} IS NULL AND {t} IS NOT NULL AND {has_offset} AND {_impossible_offset(st)}",
            "invalid_timestamp",
            _msg(field, _shown(expr), "a UTC offset from -14:00 to +14:00 with minutes under 60, or Z"),
        ),
    ]
    helpers = [(s_name, s), (num_name, num), (offset_name, has_offset_sql), (t_name, instant)]
    return helpers, t, problems + _time_bounds(field, t, expr)


def _impossible_offset(st: str) -> str:
    """Whether the offset that ends the text `st` is one no place has: DuckDB reads +25:00 or +05:75 as an
    instant all the same. Its hours and minutes as HHMM, tested on the rows that have one (not Z)."""
    hhmm = (
        f"CASE WHEN left(right({st}, 6), 1) IN ('+', '-') THEN replace(right({st}, 5), ':', '') "
        f"WHEN left(right({st}, 5), 1) IN ('+', '-') THEN right({st}, 4) "
        f"WHEN left(right({st}, 3), 1) IN ('+', '-') THEN right({st}, 2) || '00' END"
    )
    return (
        f"NOT (suffix({st}, 'Z') OR suffix({st}, 'z')) "
        f"AND coalesce(TRY_CAST({hhmm} AS INTEGER) NOT BETWEEN 0 AND 1400 OR TRY_CAST({hhmm} AS INTEGER) % 100 >= 60, "
        "true)"
    )


def _time_bounds(field: Field, value: str, expr: str) -> list[Problem]:
    return [
        Problem(
            f"({value}) > $now + to_seconds($max_future_s)",
            "future_timestamp",
            _msg(field, _shown(expr), "a time no later than the ingest time plus FINOPS_MAX_FUTURE_S"),
        ),
        Problem(
            f"({value}) < $min_ts",
            "implausible_timestamp",
            _msg(field, _shown(expr), "a time after FINOPS_MIN_TIMESTAMP (epoch milliseconds read as seconds?)"),
        ),
    ]


def _enum(field: Field, expr: str, rep: Rep, p: str) -> Built:
    name = p + "_t"
    text = _q(name)
    choices = ", ".join(sql_str(c) for c in field.choices)
    value = f"CASE WHEN {text} IN ({choices}) THEN {text} END"
    return (
        [(name, f"lower({_text_of(expr, rep)})")],
        value,
        [Problem(f"{text} IS NOT NULL AND {text} NOT IN ({choices})", "invalid_value", _msg(field, _shown(expr)))],
    )


def _status(field: Field, expr: str, rep: Rep, p: str) -> Built:
    name = p + "_s"
    helper = f"lower({_text_of(expr, rep)})"
    s = _q(name)
    is_code = f"(regexp_full_match({s}, '[0-9]{{3}}') AND TRY_CAST({s} AS INTEGER) BETWEEN 100 AND 599)"
    ok = f"({is_code} OR {s} IN ('timeout', 'error', 'cancelled'))"
    value = f"CASE WHEN {ok} THEN {s} END"
    return (
        [(name, helper)],
        value,
        [Problem(f"{s} IS NOT NULL AND NOT {ok}", "invalid_value", _msg(field, _shown(expr)))],
    )


def _object(field: Field, expr: str, rep: Rep, p: str) -> Built:
    if rep is Rep.JSON:
        value = f"CASE WHEN {_starts(expr, '{')} THEN CAST({expr} AS JSON) END"
        bad = f"{expr} IS NOT NULL AND NOT {_starts(expr, '{')}"
    elif rep is Rep.TEXT:
        t = f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"
        value = f"CASE WHEN json_valid({t}) AND starts_with({t}, '{{') THEN CAST({t} AS JSON) END"
        bad = f"{t} IS NOT NULL AND NOT (json_valid({t}) AND starts_with({t}, '{{'))"
    elif rep is Rep.NESTED:
        value = f"to_json({expr})"
        bad = "false"
    else:
        value = "CAST(NULL AS JSON)"
        bad = f"{expr} IS NOT NULL"
    return [], value, [Problem(bad, "wrong_type", _msg(field, _shown(expr)))]


_BUILDERS = {
    Kind.TEXT: _text,
    Kind.COUNT: _count,
    Kind.POSITIVE_INT: _positive_int,
    Kind.TIMESTAMP: _timestamp,
    Kind.MONEY: _money,
    Kind.QUANTITY: _quantity,
    Kind.POSITIVE_QUANTITY: _positive_quantity,
    Kind.ENUM: _enum,
    Kind.STATUS: _status,
    Kind.OBJECT: _object,
}


def first_problem(problems: Iterable[Problem]) -> str:
    """One `CASE` giving the first problem of a row as a struct, NULL when the row is clean."""
    whens = [f"WHEN {pr.condition} THEN {{'reason': {sql_str(pr.reason)}, 'message': {pr.message}}}" for pr in problems]
    if not whens:
        return "CAST(NULL AS STRUCT(reason VARCHAR, message VARCHAR))"
    return "CASE " + " ".join(whens) + " END"
