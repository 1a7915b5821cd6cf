"""Shared fixtures: settings and a database in a temporary directory; the shared real-world data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.settings import Settings, load_settings
from finops.store.db import Database, connect

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FINOPS_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` (or FINOPS_SHARED_DATA); tests that need it skip, saying why, where it is absent."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        pytest.skip(f"shared real-world data not found at {SHARED_DATA} (set FINOPS_SHARED_DATA to its path)")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(db=tmp_path / "finops.duckdb", lock_timeout_s=1.0, memory_limit="1GB")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    with connect(settings) as database:
        yield database


@pytest.fixture
def fixtures_dir() -> Path:
    return REPO / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks (`@pytest.mark.bench`) never run in the default test run: only when `-m` names them."""
    if "bench" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a benchmark: run it with -m bench")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)
