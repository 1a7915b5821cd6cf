"""The snapshots user SQL reads: a team-scoped copy holds the team's rows, and only those."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from finops.pipeline import run_once
from finops.store.db import Database
from finops.store.sandbox import SANDBOX_VIEWS, build_snapshot
from tests.helpers import ingest_one, write_file
from tests.ingest.test_bad_input import line

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _snapshot_ids(db: Database, view: str, teams: frozenset[str] | None, target: Path) -> set[str]:
    build_snapshot(db, next(v for v in SANDBOX_VIEWS if v.name == view), teams, target)
    with duckdb.connect(str(target), read_only=True) as copy:
        return {row[0] for row in copy.execute(f'SELECT request_id FROM "{view}"').fetchall()}


def test_a_scoped_usage_copy_holds_the_teams_own_records_and_those_attribution_gave_it(
    db: Database, tmp_path: Path
) -> None:
    records = [
        line("alpha-own", team="alpha"),
        line("alpha-by-key", api_key="k-alpha-1"),  # no team of its own: the owners file gives it alpha
        line("bravo-own", team="bravo"),
        line("bravo-by-key", api_key="k-bravo-1"),
        line("nobody", api_key="k-other"),
    ]
    ingest_one(db, write_file(tmp_path, "g.jsonl", "\n".join(records) + "\n"), "gateway")
    owners = write_file(
        tmp_path,
        "owners.csv",
        "kind,match,team,feature\napi_key_pattern,k-alpha-*,alpha,chat\napi_key_pattern,k-bravo-*,bravo,chat\n",
    )
    run_once(db, as_of=AS_OF, owners=owners)

    assert _snapshot_ids(db, "usage", frozenset({"alpha"}), tmp_path / "a.duckdb") == {"alpha-own", "alpha-by-key"}
    assert _snapshot_ids(db, "usage", frozenset({"alpha", "bravo"}), tmp_path / "ab.duckdb") == {
        "alpha-own",
        "alpha-by-key",
        "bravo-own",
        "bravo-by-key",
    }
    assert _snapshot_ids(db, "usage", None, tmp_path / "all.duckdb") == {json.loads(r)["request_id"] for r in records}
    assert _snapshot_ids(db, "spend", frozenset({"bravo"}), tmp_path / "b.duckdb") == {"bravo-own", "bravo-by-key"}
