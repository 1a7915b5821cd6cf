"""The read cache (`finops.api.cache`): one scope never gets another's answer, every write through the process
makes the next answer fresh, revoked keys stop at once, and the cache stays within its bounds.

Freshness tests change the data behind the app's back first (a row written on the app's own database, as no
route would), check the stale answer is still served (the cache is really in the way), then make the change
the app knows about and check the next answer is fresh.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from finops.api import cache as cache_module
from finops.api import create_app, scheduler
from finops.api.auth import Caller
from finops.api.cache import MAX_AGE_S, MAX_BODY_BYTES, Entry, ReadCache, ReadCacheMiddleware
from finops.api.state import AppState
from finops.store.db import connect
from finops.store.keys import Role, parse_token
from finops.store.usersql import UserSql
from tests.api.conftest import ALPHA_SLACK, CANARIES, Api, api_settings, make_keys

SPEND = "/v1/spend?start=2026-10-01&end=2026-11-01&group_by=team,feature"
FINDINGS = "/v1/findings?start=2026-10-01&end=2026-11-01"


@pytest.fixture
def fresh(seeded: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    """An app of its own (these tests change data); `api_cache_entries` from an indirect parameter."""
    shutil.copy(seeded, tmp_path / "finops.duckdb")
    settings = api_settings(tmp_path, api_cache_entries=getattr(request, "param", 1000))
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings, keys)
        for who in keys:  # every key in the key cache: any request may now be served from the read cache
            assert client.get("/v1/me", headers=api.headers(who)).status_code == 200
        yield api


def _state(api: Api) -> AppState:
    state: AppState = api.client.app.state.finops  # type: ignore[attr-defined]
    return state


def _get(api: Api, who: str, path: str) -> Any:
    response = api.client.get(path, headers=api.headers(who))
    assert response.status_code == 200, response.text
    return response.json()


def _plant_finding(api: Api, finding_id: str, team: str) -> None:
    """A finding written straight into the database: no route, no invalidation."""
    with _state(api).database() as db:
        db.execute(
            "INSERT INTO findings (finding_id, kind, detector, team, subject, window_start, window_end, metric, "
            "observed, expected, excess_cost_usd, score, severity, evidence, first_run_id, last_run_id, detected_at) "
            "VALUES ($id, 'cost_spike', 'test', $team, $id, TIMESTAMPTZ '2026-10-07', TIMESTAMPTZ '2026-10-08', "
            "'cost_usd', 10, 1, 5, 0.9, 'high', '{}', 1, 1, now())",
            {"id": finding_id, "team": team},
        )


def _finding_ids(api: Api, who: str = "finance") -> set[str]:
    return {row["finding_id"] for row in _get(api, who, FINDINGS)["rows"]}


# ------------------------------------------------------------------------------------------ scope


def test_a_scoped_owner_never_gets_another_scopes_cached_answer(fresh: Api) -> None:
    cache = _state(fresh).cache
    bravo = fresh.client.get(SPEND, headers=fresh.headers("owner_bravo"))
    assert "zzqfeature" in bravo.text  # bravo's answer, now cached
    finance = _get(fresh, "finance", SPEND)
    assert {r["team"] for r in finance["rows"]} == {"alpha", "bravo"}
    hits = cache.hits
    for _ in range(2):  # the second one is served from the cache
        alpha = fresh.client.get(SPEND, headers=fresh.headers("owner"))
        assert alpha.status_code == 200
        assert {r["team"] for r in alpha.json()["rows"]} == {"alpha"}
        assert not [c for c in CANARIES if c in alpha.text]
    assert cache.hits == hits + 1
    # and the other way round: alpha's cached answer is not bravo's, nor finance's
    assert "zzqfeature" in fresh.client.get(SPEND, headers=fresh.headers("owner_bravo")).text
    assert {r["team"] for r in _get(fresh, "finance", SPEND)["rows"]} == {"alpha", "bravo"}


def test_the_role_is_part_of_the_key_admin_channels_never_reach_finance(fresh: Api) -> None:
    assert ALPHA_SLACK in fresh.client.get("/v1/budgets", headers=fresh.headers("admin")).text
    for _ in range(2):
        assert "alphasecret" not in fresh.client.get("/v1/budgets", headers=fresh.headers("finance")).text
    assert "alphasecret" not in fresh.client.get("/v1/budgets/5", headers=fresh.headers("owner")).text
    assert ALPHA_SLACK in fresh.client.get("/v1/budgets/5", headers=fresh.headers("admin")).text


def test_errors_are_not_cached_and_out_of_scope_stays_403(fresh: Api) -> None:
    cache = _state(fresh).cache
    _get(fresh, "finance", "/v1/spend?team=bravo&start=2026-10-01&end=2026-11-01")
    for _ in range(2):
        response = fresh.client.get(
            "/v1/spend?team=bravo&start=2026-10-01&end=2026-11-01", headers=fresh.headers("owner")
        )
        assert response.status_code == 403
        assert "zzq" not in response.text
    assert fresh.client.get("/v1/budgets/1", headers=fresh.headers("owner")).status_code == 404
    assert len(cache) == 1  # finance's answer only


def test_no_key_or_a_wrong_key_is_401_even_when_the_answer_is_cached(fresh: Api) -> None:
    _get(fresh, "finance", SPEND)
    assert fresh.client.get(SPEND).status_code == 401
    wrong = fresh.keys["finance"][:-4] + "AAAA"
    assert fresh.client.get(SPEND, headers={"Authorization": f"Bearer {wrong}"}).status_code == 401


def test_a_revoked_key_is_refused_at_once(fresh: Api) -> None:
    _get(fresh, "owner", SPEND)
    _get(fresh, "owner", SPEND)  # from the cache
    key_id = parse_token(fresh.keys["owner"])
    assert fresh.client.delete(f"/v1/keys/{key_id}", headers=fresh.headers("admin")).status_code == 200
    assert fresh.client.get(SPEND, headers=fresh.headers("owner")).status_code == 401


def test_query_order_is_normalised_by_name_but_not_within_a_repeated_parameter(fresh: Api) -> None:
    cache = _state(fresh).cache
    _get(fresh, "finance", "/v1/spend?start=2026-10-01&end=2026-11-01&group_by=team")
    hits = cache.hits
    _get(fresh, "finance", "/v1/spend?group_by=team&end=2026-11-01&start=2026-10-01")
    assert cache.hits == hits + 1
    by_team_feature = _get(fresh, "finance", "/v1/spend?start=2026-10-01&end=2026-11-01&group_by=team,feature")
    by_feature_team = _get(fresh, "finance", "/v1/spend?start=2026-10-01&end=2026-11-01&group_by=feature,team")
    assert by_team_feature["group_by"] == ["team", "feature"]
    assert by_feature_team["group_by"] == ["feature", "team"]


# ------------------------------------------------------------------------------------------ freshness


def test_the_next_answer_after_an_ingest_is_fresh(fresh: Api) -> None:
    assert "f-late" not in _finding_ids(fresh)
    _plant_finding(fresh, "f-late", "alpha")
    assert "f-late" not in _finding_ids(fresh)  # stale: served from the cache
    line = b'{"request_id": "late-1", "ts": "2026-10-03T10:00:00Z", "model": "gpt-4o", "team": "alpha"}\n'
    pushed = fresh.client.post(
        "/v1/ingest/gateway",
        content=line,
        headers=fresh.headers("admin") | {"content-type": "application/x-ndjson"},
    )
    assert pushed.status_code == 200, pushed.text
    assert "f-late" in _finding_ids(fresh)


@pytest.mark.parametrize("edit", ["post", "put", "delete"])
def test_the_next_answer_after_a_budget_edit_is_fresh(fresh: Api, edit: str) -> None:
    before = _get(fresh, "owner", "/v1/budgets")
    assert before == _get(fresh, "owner", "/v1/budgets")  # cached
    assert "f-edit" not in _finding_ids(fresh, "owner")
    _plant_finding(fresh, "f-edit", "alpha")
    assert "f-edit" not in _finding_ids(fresh, "owner")
    body = {"team": "alpha", "period_kind": "month", "amount_usd": "250", "thresholds": [100]}
    if edit == "post":
        response = fresh.client.post("/v1/budgets", json=body | {"feature": "new"}, headers=fresh.headers("owner"))
    elif edit == "put":
        response = fresh.client.put("/v1/budgets/2", json=body, headers=fresh.headers("owner"))
    else:
        response = fresh.client.delete("/v1/budgets/2", headers=fresh.headers("owner"))
    assert response.status_code in (200, 201), response.text
    after = _get(fresh, "owner", "/v1/budgets")
    assert after != before
    assert "f-edit" in _finding_ids(fresh, "owner")  # every cached answer went, not only the budgets'


def test_the_next_answer_after_a_scheduled_job_is_fresh(fresh: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler job (a run, a watched-folder ingest, alert deliveries) ends with the `invalidate` it was
    given, and jobs run through `db_provider` end with it too."""
    state = _state(fresh)
    given: dict[str, Any] = {}
    jobs = types.ModuleType("finops.jobs")
    jobs.start_scheduler = lambda invalidate, db_provider: given.update(invalidate=invalidate, provider=db_provider)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "finops.jobs", jobs)
    assert scheduler.start(state) is True

    _get(fresh, "finance", FINDINGS)
    _plant_finding(fresh, "f-run", "alpha")
    assert "f-run" not in _finding_ids(fresh)
    given["invalidate"]()
    assert "f-run" in _finding_ids(fresh)

    with given["provider"]() as db:
        db.execute("DELETE FROM findings WHERE finding_id = 'f-run'")
        assert "f-run" in _finding_ids(fresh)  # deleted, but the job has not ended: still the cached answer
    assert "f-run" not in _finding_ids(fresh)


# ------------------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize("fresh", [0], indirect=True)
def test_zero_entries_turns_the_cache_off(fresh: Api) -> None:
    _get(fresh, "finance", FINDINGS)
    _plant_finding(fresh, "f-now", "alpha")
    assert "f-now" in _finding_ids(fresh)
    assert len(_state(fresh).cache) == 0


@pytest.mark.parametrize("fresh", [2], indirect=True)
def test_the_cache_keeps_at_most_its_entries_least_recently_used_out(fresh: Api) -> None:
    cache = _state(fresh).cache
    for days in ("01", "02", "03"):
        _get(fresh, "finance", f"/v1/spend?start=2026-10-{days}&end=2026-11-01")
    assert len(cache) == 2
    hits = cache.hits
    _get(fresh, "finance", "/v1/spend?start=2026-10-03&end=2026-11-01")
    _get(fresh, "finance", "/v1/spend?start=2026-10-01&end=2026-11-01")  # evicted first
    assert cache.hits == hits + 1


def test_an_answer_computed_before_an_invalidation_is_not_stored() -> None:
    cache = ReadCache(10)
    entry = Entry(200, [], b"old", 0.0)
    generation = cache.generation
    cache.invalidate()  # a write committed while the answer was computed
    assert not cache.put(("k",), entry, generation)
    assert cache.get(("k",)) is None
    assert cache.put(("k",), entry, cache.generation)


def test_entries_expire() -> None:
    now = [1000.0]
    cache = ReadCache(10, clock=lambda: now[0])
    cache.put(("k",), Entry(200, [], b"x", now[0]), cache.generation)
    now[0] += MAX_AGE_S - 0.1
    assert cache.get(("k",)) is not None
    now[0] += 0.1
    assert cache.get(("k",)) is None


def test_oversized_answers_are_not_kept() -> None:
    cache = ReadCache(10)
    assert not cache.put(("big",), Entry(200, [], b"x" * (MAX_BODY_BYTES + 1), 0.0), cache.generation)
    assert len(cache) == 0


# ------------------------------------------------------------------------------------------ identical misses


def _run_concurrently(status: int, requests: int, invalidate_after: int | None = None) -> tuple[int, list[bytes]]:
    """`requests` identical GETs through the middleware over an app that answers `status` once released; the
    cache is invalidated after the first `invalidate_after` have arrived. (calls to the app, bodies sent)."""
    calls = 0
    bodies: list[bytes] = [b""] * requests
    cache = ReadCache(10)
    app_ = types.SimpleNamespace(state=types.SimpleNamespace(finops=types.SimpleNamespace(cache=cache)))
    scope = {"type": "http", "method": "GET", "path": "/v1/spend", "query_string": b"a=1", "headers": [], "app": app_}

    async def main() -> None:
        release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            nonlocal calls
            calls += 1
            n = calls
            await release.wait()
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"1")]})
            await send({"type": "http.response.body", "body": str(n).encode()})

        middleware = ReadCacheMiddleware(app)

        async def one(i: int) -> None:
            async def send(message: Any) -> None:
                if message["type"] == "http.response.body":
                    bodies[i] = message["body"]

            await middleware(scope, None, send)

        tasks = []
        for i in range(requests):
            if i == invalidate_after:
                cache.invalidate()
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)

    async def caller(state: Any, scope: Any) -> Caller:
        return Caller("k", Role.FINANCE, None)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache_module, "_caller", caller)
        asyncio.run(main())
    return calls, bodies


def test_identical_misses_are_computed_once() -> None:
    calls, bodies = _run_concurrently(200, 5)
    assert calls == 1
    assert bodies == [b"1"] * 5


def test_a_failed_first_answer_is_not_shared() -> None:
    calls, bodies = _run_concurrently(500, 3)
    assert calls == 3
    assert sorted(bodies) == [b"1", b"2", b"3"]


def test_a_request_after_a_change_does_not_wait_for_an_answer_from_before() -> None:
    calls, bodies = _run_concurrently(200, 4, invalidate_after=2)
    assert calls == 2
    assert bodies == [b"1", b"1", b"2", b"2"]


# ------------------------------------------------------------------------------------------ per-request costs


def test_request_cursors_are_in_utc_without_a_set_per_request(tmp_path: Path) -> None:
    """The time zone is set once for the database (not per request); a database whose default is another
    zone still gives UTC cursors."""
    settings = api_settings(tmp_path)
    db = connect(settings)
    try:
        db.con.execute("SET GLOBAL TimeZone = 'Asia/Tokyo'")
        assert db.con.cursor().execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Tokyo",)
        state = AppState(settings=settings, db=db, sql=UserSql(settings))
        with state.database() as cursor:
            assert cursor.scalar("SELECT current_setting('TimeZone')") == "UTC"
            assert cursor.scalar("SELECT TIMESTAMPTZ '2026-10-01 00:00:00+00'::VARCHAR") == "2026-10-01 00:00:00+00"
    finally:
        db.close()
