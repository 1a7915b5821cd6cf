"""A small demo database (built once), keys of each kind, a live server on loopback, and headless Chromium.

Chromium is Debian's `chromium` package driven by Playwright with `executable_path` (Playwright never
downloads a browser here); the browser tests skip, saying why, where Chromium is missing. Screenshots go to
`artifacts/dashboards/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import uvicorn

from finops.api import create_app
from finops.cli.demo import DemoSummary, build_demo_database
from finops.settings import Settings, load_settings
from finops.store.db import connect
from finops.store.keys import create_key
from finops.store.reports import FindingsQuery, findings_frame

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "dashboards"
AS_OF = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday: the demo's weeks start on Mondays
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")


def dashboard_settings(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db": folder / "finops.duckdb",
        "memory_limit": "1GB",
        "sql_snapshot_dir": folder / "snapshots",
    }
    return load_settings(**(values | overrides))


@dataclass
class Demo:
    path: Path
    summary: DemoSummary
    other_team: str  # a team the owner key may not see
    other_owner_key: str  # an owner key of `other_team`
    findings_team: str  # the team of the costliest finding: every chart of its dashboard has data

    @property
    def team(self) -> str:
        return self.summary.owner_team


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo data set at a tenth of its size, evaluated at AS_OF; tests copy the file."""
    folder = tmp_path_factory.mktemp("dashboards-demo")
    settings = dashboard_settings(folder)
    summary = build_demo_database(settings, as_of=AS_OF, rows=30_000)
    other = next(t for t in summary.teams if t != summary.owner_team)
    with connect(settings) as db:
        other_key = create_key(db, "owner", [other], name="other owner").token
        found = findings_frame(db, FindingsQuery(AS_OF.date() - timedelta(days=63), AS_OF.date()), time_limit_ms=10_000)
    return Demo(settings.db, summary, other, other_key, found.filter(pl.col("team").is_not_null())["team"][0])


def copy_of(demo: Demo, folder: Path) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo.path, folder / "finops.duckdb")
    return dashboard_settings(folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    url: str
    settings: Settings
    app: Any

    def database(self) -> Any:
        """A cursor of the server's own database (this process cannot open the file a second time)."""
        return self.app.state.finops.database()


@pytest.fixture(scope="module")
def live(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A real uvicorn server over a copy of the demo database, on 127.0.0.1."""
    settings = copy_of(demo, tmp_path_factory.mktemp("dashboards-live"))
    yield from serve(settings)


def serve(settings: Settings) -> Iterator[Live]:
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_path() -> str | None:
    found = os.environ.get("FINOPS_CHROMIUM") or next((p for p in CHROMIUM_PATHS if Path(p).is_file()), None)
    return found or shutil.which("chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's package) through Playwright; the test is skipped, with the reason, only
    when Chromium is absent (Playwright is a test dependency: without it the test setup is broken, and the
    test fails saying so). One at a time: Playwright's sync API runs its own event loop in this thread."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: install the test dependencies (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@dataclass
class Tab:
    """A page of the browser with what it logged."""

    page: Any
    problems: list[str]

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        return response

    def wait_ready(self) -> None:
        self.page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        yield Tab(page, problems)
    finally:
        context.close()


def skip_unless_bench(request: pytest.FixtureRequest) -> None:
    """Benchmarks (timings) run only when asked for with `-m bench`, never in the default run."""
    if "bench" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a benchmark: run it with -m bench")


@pytest.fixture
def bench_only(request: pytest.FixtureRequest) -> None:
    skip_unless_bench(request)
