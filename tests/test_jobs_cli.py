"""Watched folders that cannot be read are said, not swallowed (hunt B bug 8): `finops jobs list` shows them,
`finops jobs run ingest` exits 1, `finops serve` warns before it starts (a folder may appear later) and refuses a
file given as a folder, and every scheduled scan logs them as errors."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from finops.errors import ConfigError
from finops.jobs import load_scheduler_settings, shutdown, start_scheduler
from finops.settings import Settings
from finops.store.db import Database
from tests.helpers import run_cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code, out, err = run_cli(capsys, *argv)
    return code, out, " ".join(err.split())


@pytest.fixture(autouse=True)
def _no_scheduler_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FINOPS_SCHEDULER_WATCH", "FINOPS_API_SCHEDULER"):
        monkeypatch.delenv(name, raising=False)


def test_jobs_list_shows_a_missing_watched_folder_8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs").mkdir()
    monkeypatch.setenv("FINOPS_SCHEDULER_WATCH", f"{tmp_path}/missing:gateway,{tmp_path}/logs:auto")

    code, out, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "jobs", "list")

    assert (code, err) == (0, "")
    assert out.splitlines()[:3] == [
        "ingest   every 300 s",
        f"         watches {tmp_path}/missing (gateway): does not exist; nothing is ingested from it until it appears",
        f"         watches {tmp_path}/logs (auto)",
    ]


def test_jobs_run_ingest_exits_1_when_a_watched_folder_cannot_be_read_8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_SCHEDULER_WATCH", f"{tmp_path}/missing:gateway")

    code, out, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "jobs", "run", "ingest")

    problem = f"watched folder {tmp_path}/missing does not exist; nothing is ingested from it until it appears"
    assert (code, err) == (1, f"error: ingest: {problem}.")
    assert json.loads(out)["errors"] == [problem]


def test_a_file_given_as_a_watched_folder_stops_every_command_8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "gw.jsonl"
    log.write_text("")
    message = (
        f"FINOPS_SCHEDULER_WATCH entry '{log}:gateway' names a file, not a folder; expected DIR:SOURCE with DIR a "
        "folder whose files are ingested (`finops ingest FILE` reads one file)."
    )
    with pytest.raises(ConfigError, match="names a file, not a folder"):
        load_scheduler_settings(watch=f"{log}:gateway")
    monkeypatch.setenv("FINOPS_SCHEDULER_WATCH", f"{log}:gateway")

    for argv in (("jobs", "list"), ("jobs", "run", "ingest"), ("serve", "--port", "0")):
        assert run(capsys, "--db", str(tmp_path / "f.duckdb"), *argv) == (1, "", f"error: {message}")


def test_serve_warns_of_a_missing_watched_folder_and_starts_8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.append(app))
    monkeypatch.setenv("FINOPS_SCHEDULER_WATCH", f"{tmp_path}/later:gateway")

    code, _, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "serve", "--port", "0")

    assert (code, len(started)) == (0, 1)
    assert err.startswith(
        f"warning: FINOPS_SCHEDULER_WATCH: watched folder {tmp_path}/later does not exist; nothing is ingested from "
        "it until it appears."
    )
    code, _, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "serve", "--port", "0", "--no-scheduler")
    assert "FINOPS_SCHEDULER_WATCH" not in err  # no scheduler, no watched folders


@pytest.mark.parametrize("variable", ["FINOPS_OWNERS", "FINOPS_PRICE_OVERRIDES"])
def test_serve_stops_at_start_on_a_rules_file_every_run_would_fail_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # hunt G 6: the server started, and every scheduled run failed: nothing priced, no alert sent
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.append(app))
    monkeypatch.setenv(variable, str(tmp_path / "missing.csv"))

    code, _, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "serve", "--port", "0")

    assert (code, started) == (1, [])
    assert err.startswith(f"error: {variable}: {tmp_path}/missing.csv: cannot read")


def test_serve_on_a_port_in_use_is_one_sentence_before_it_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, _, err = run(capsys, "--db", str(tmp_path / "f.duckdb"), "serve", "--port", str(port), "--no-scheduler")

    assert code == 1
    assert err.startswith(f"error: Port {port} on 127.0.0.1 cannot be used (Address already in use)")


def test_each_scheduled_scan_logs_a_missing_folder_as_an_error_8(
    db: Database, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="finops.jobs")
    scheduler = start_scheduler(
        settings, db=db, scheduler_settings=load_scheduler_settings(watch=f"{tmp_path}/missing:gateway")
    )
    try:
        deadline = time.monotonic() + 20
        while not any("job ingest: watched folder" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the scan logged nothing"
            time.sleep(0.05)
    finally:
        shutdown(scheduler)
    [record] = [r for r in caplog.records if r.getMessage().startswith("job ingest:")]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"job ingest: watched folder {tmp_path}/missing does not exist; nothing is ingested from it until it appears"
    )
