"""`finops dashboard --out DIR`: the dashboards as static HTML files, data and plotly.js embedded.

Files: `index.html` (the finance overview), `findings.html`, and `team-<name>.html` for each team in the
filter (every team with spend when none is given). Links between them are relative, so the folder (or any
one file) can be mailed around and opened with no server and no internet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finops.dashboards.assets import plotly_js
from finops.dashboards.data import Context
from finops.dashboards.filters import ViewFilter
from finops.dashboards.page import Links, render_page
from finops.dashboards.views import build_view

from finops.store.db import Database

__all__ = ["StaticFile", "team_file_name", "write_static"]


@dataclass(frozen=True)
class StaticFile:
    path: Path
    view: str
    team: str | None
    bytes: int


def team_file_name(team: str) -> str:
    """`team-<name>.html`, the name made safe for a file system (and unique: a hash when changed)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", team).strip("._") or "team"
    if safe != team:
        safe += "-" + hashlib.sha256(team.encode()).hexdigest()[:8]
    return f"team-{safe}.html"


def write_static(
    db: Database, out: Path, view_filter: ViewFilter, *, teams: Sequence[str], time_limit_ms: int
) -> list[StaticFile]:
    """Write every view of `view_filter` under `out`; `teams` are the team pages to write."""
    out.mkdir(parents=True, exist_ok=True)
    links = Links(
        finance="index.html",
        findings="findings.html",
        team=team_file_name,
        csv=None,
        plotly_src=None,
        form_action=None,
        plotly_js=plotly_js(),
    )
    who = "static export: " + (", ".join(view_filter.teams) if view_filter.teams is not None else "every team")
    pages: list[tuple[str, str | None, str]] = [("finance", None, "index.html"), ("findings", None, "findings.html")]
    pages += [("team", t, team_file_name(t)) for t in teams]
    written = []
    for view_name, team, name in pages:  # one page per view and team
        ctx = Context(db=db, filter=view_filter, time_limit_ms=time_limit_ms, team=team)
        text = render_page(build_view(view_name, ctx), links, teams=teams, who=who)
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(StaticFile(path, view_name, team, len(text.encode())))
    return written
