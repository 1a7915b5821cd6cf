"""The README documents every setting and every view; the package list in pyproject is complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

from finops.settings import Settings
from finops.store.queries import queries_of_kind

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"FINOPS_{name.upper()}" for name in Settings.model_fields if f"FINOPS_{name.upper()}" not in README]
    assert missing == []


def test_every_view_is_in_the_readme_and_described() -> None:
    for query in queries_of_kind("views"):
        assert f"`{query.name}`" in README, query.name
        assert query.description, f"queries/views: {query.name} has no description"


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "pip install" in first_block and "finops demo" in first_block
    assert "python -m pytest" in first_block


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "finops").rglob("__init__.py")}
    assert found - {"finops.queries", "finops.fixtures"} <= listed
    assert {"finops.queries", "finops.fixtures"} <= listed
