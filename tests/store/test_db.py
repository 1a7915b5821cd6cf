"""`Database.transaction`: all or nothing; a transaction opened inside another is part of it."""

from __future__ import annotations

import sqlite3

import duckdb
import pytest

from finops.errors import FileProblem
from finops.settings import Settings
from finops.store.db import Database, connect


def _count(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM _t"))


def test_a_transaction_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    db.execute("CREATE TABLE _t (x INTEGER)")
    with db.transaction():
        db.execute("INSERT INTO _t VALUES (1)")
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO _t VALUES (2)")
        raise RuntimeError("boom")

    assert _count(db) == 1


def test_a_nested_transaction_is_part_of_the_outer_one(db: Database) -> None:
    db.execute("CREATE TABLE _t (x INTEGER)")
    with pytest.raises(RuntimeError), db.transaction():
        with db.transaction():  # commits nothing by itself
            db.execute("INSERT INTO _t VALUES (1)")
        db.execute("INSERT INTO _t VALUES (2)")
        raise RuntimeError("the outer one fails after the inner one finished")

    assert _count(db) == 0
    with db.transaction():
        with db.transaction():
            db.execute("INSERT INTO _t VALUES (3)")
        assert _count(db) == 1
    assert _count(db) == 1  # committed by the outer one
    with db.transaction():  # and the connection is usable for a new one
        db.execute("INSERT INTO _t VALUES (4)")
    assert _count(db) == 2


def test_an_error_in_a_nested_transaction_rolls_back_the_outer_one(db: Database) -> None:
    db.execute("CREATE TABLE _t (x INTEGER)")
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO _t VALUES (1)")
        with db.transaction():
            db.execute("INSERT INTO _t VALUES (2)")
            raise RuntimeError("boom")

    assert _count(db) == 0


def test_a_database_of_another_application_is_refused_and_left_as_it_was(settings: Settings) -> None:
    # hunt G 4: finops added its ~30 tables to it, and a table of its own named usage_events broke every command
    with duckdb.connect(str(settings.db)) as other:
        other.execute("CREATE TABLE usage_events (id INTEGER, note VARCHAR)")

    with pytest.raises(FileProblem, match="is a DuckDB database of another application \\(tables usage_events\\)"):
        connect(settings)

    with duckdb.connect(str(settings.db), read_only=True) as other:
        assert other.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("usage_events",)]


def test_a_sqlite_file_is_named_as_such_not_attached_through_an_extension(settings: Settings) -> None:
    # hunt G 8: DuckDB tried to download its sqlite extension from the internet
    with sqlite3.connect(settings.db) as lite:
        lite.execute("CREATE TABLE t (x)")

    with pytest.raises(FileProblem, match="is a SQLite database, not a finops \\(DuckDB\\) database"):
        connect(settings)


def test_a_database_of_a_newer_finops_opens_with_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(settings) as db:
        db.execute("INSERT INTO schema_migrations VALUES ('9999_from_a_newer_finops', now())")

    with connect(settings):
        pass

    assert "was written by a newer finops (migrations 9999_from_a_newer_finops" in caplog.text
