"""The README documents every setting and every view; the package list in pyproject is complete."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from finops.settings import Settings
from finops.store.queries import queries_of_kind

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"FINOPS_{name.upper()}" for name in Settings.model_fields if f"FINOPS_{name.upper()}" not in README]
    assert missing == []


# every other group of FINOPS_* variables (detectors, alerts, scheduler): module, class
SETTINGS_GROUPS = [
    ("finops.alert.settings", "AlertSettings"),
    ("finops.jobs", "SchedulerSettings"),
    ("finops.detect.retries", "RetryConfig"),
    ("finops.detect.outliers", "OutlierConfig"),
    ("finops.detect.spikes", "SpikeConfig"),
]


def test_every_setting_of_every_group_is_in_the_readme() -> None:
    missing = []
    for module, name in SETTINGS_GROUPS:
        group = getattr(importlib.import_module(module), name)
        prefix = group.model_config["env_prefix"]
        missing += [
            f"{prefix}{field.upper()}" for field in group.model_fields if f"{prefix}{field.upper()}" not in README
        ]
    assert missing == []


def test_settings_groups_are_all_listed() -> None:
    prefixes = {
        line.split('env_prefix="', 1)[1].split('"', 1)[0]
        for path in (REPO / "finops").rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if 'env_prefix="' in line
    }
    listed = {getattr(importlib.import_module(m), n).model_config["env_prefix"] for m, n in SETTINGS_GROUPS}
    assert prefixes - {"FINOPS_"} == listed


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
