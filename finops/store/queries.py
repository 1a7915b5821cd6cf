"""Load the SQL files under `queries/` by name and read their headers.

A file starts with plain SQL comments, so it runs unchanged in the `duckdb` CLI:

    -- name: team_spend_daily
    -- description: Attributed spend per UTC day, team and feature.
    -- grain: charge_day, team, feature
    -- params: start DATE (inclusive), end DATE (exclusive)

Parameters are DuckDB named parameters (`$start`); values are bound, never formatted into SQL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable

from finops.errors import UnknownQuery

__all__ = ["Param", "Query", "load_query", "queries_of_kind", "schema_scripts", "view_scripts"]

_HEADER = re.compile(r"^--\s*(?P<key>[a-z_]+):\s*(?P<value>.*)$")
_PARAM = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[A-Z][A-Z0-9_() ,]*?)(?:\s*\((?P<doc>.*)\))?$")
_USED_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    doc: str = ""


@dataclass(frozen=True)
class Query:
    """One SQL file: its header fields and its text."""

    kind: str
    name: str
    sql: str
    description: str = ""
    grain: str = ""
    params: tuple[Param, ...] = field(default_factory=tuple)

    @property
    def used_params(self) -> set[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return set(_USED_PARAM.findall(body))


def _root() -> Traversable:
    return resources.files("finops.queries")


def _parse(kind: str, file_name: str, text: str) -> Query:
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if not match:
            if line.strip() and not line.strip().startswith("--"):
                break
            continue
        header[match["key"]] = match["value"].strip()
    params = []
    for chunk in filter(None, (p.strip() for p in _split_params(header.get("params", "")))):
        m = _PARAM.match(chunk)
        if not m:
            raise ValueError(f"queries/{kind}/{file_name}: cannot read param {chunk!r}; expected 'name TYPE (doc)'")
        params.append(Param(m["name"], m["type"].strip(), (m["doc"] or "").strip()))
    return Query(
        kind=kind,
        name=header.get("name", file_name.removesuffix(".sql")),
        sql=text,
        description=header.get("description", ""),
        grain=header.get("grain", ""),
        params=tuple(params),
    )


def _split_params(spec: str) -> list[str]:
    """Split `a DATE (x, y), b INT` on the commas that are outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in spec:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@functools.cache
def queries_of_kind(kind: str) -> tuple[Query, ...]:
    """Every query under `queries/<kind>/`, in file-name order."""
    folder = _root().joinpath(kind)
    if not folder.is_dir():
        return ()
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return tuple(_parse(kind, f.name, f.read_text(encoding="utf-8")) for f in files)


def load_query(kind: str, name: str) -> Query:
    """One query by its header name; an unknown name lists the known ones."""
    for query in queries_of_kind(kind):
        if query.name == name:
            return query
    known = ", ".join(sorted(q.name for q in queries_of_kind(kind)))
    raise UnknownQuery(f"Unknown query '{name}'. Known {kind} queries are: {known}.", name=name)


def schema_scripts() -> list[tuple[str, str]]:
    """Ordered DDL (`queries/schema/NNNN_*.sql`): (file stem, sql)."""
    return [(q.name, q.sql) for q in queries_of_kind("schema")]


def view_scripts() -> list[tuple[str, str]]:
    """The stable SQL surface (`queries/views/*.sql`), in file-name order."""
    return [(q.name, q.sql) for q in queries_of_kind("views")]
