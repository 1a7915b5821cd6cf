"""`Database.transaction`: all or nothing; a transaction opened inside another is part of it."""

from __future__ import annotations

import pytest

from finops.store.db import Database


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
