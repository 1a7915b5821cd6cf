"""The read cache: answers of the read routes, kept until the data changes.

A `GET` of `/v1/spend`, `/v1/findings`, `/v1/forecasts`, `/v1/budgets[/{id}]` or `/v1/alerts[/{id}]` is
answered from memory when the same request was answered before for the same scope and nothing has changed
since. The key is (path, query parameters in a normal order, the caller's role, the caller's teams, the UTC
date), so one scope never gets another's answer (a role is part of it: admin keys see channels others do
not), and defaults that depend on the day (`end` = tomorrow, the month of `period`) roll over at midnight.
The value is the response as sent: status line headers and body bytes, so a hit skips routing, validation,
the database and serialisation alike.

Freshness: every writer in the process says so (`ReadCache.invalidate`): ingest pushes, budget edits, and
each scheduler job (runs, watched-folder ingests, alert deliveries). The API process owns the DuckDB file, so
there are no other writers. An answer is stored only if no invalidation happened while it was computed (the
generation it started under is still current), so a read racing a write never stores the old data under the
new generation. Entries also expire after `MAX_AGE_S`, a bound on any change this process cannot see.

Only `200` answers are kept, at most `MAX_BODY_BYTES` each and `MAX_TOTAL_BYTES` in all, and at most
`FINOPS_API_CACHE_ENTRIES` of them (least recently used out first; 0 turns the cache off). A request is
authenticated before the cache is read, as the routes do it (the key cache, else the database); a request
without a valid key takes the normal path, which answers 401. Revoking a key through the API clears the key
cache, so a revoked key gets its 401 at once.

Identical misses do not all reach the database: while one request computes an answer, the same request (same
key, same generation) waits for it and is sent the same bytes, so fifty clients asking the same question
after a change cost one query. If the first one fails, each waiting one is answered on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops.api.auth import Caller, Permission, caller_of

if TYPE_CHECKING:
    from finops.api.state import AppState

__all__ = ["CACHED_PATHS", "MAX_AGE_S", "MAX_BODY_BYTES", "MAX_TOTAL_BYTES", "ReadCache", "ReadCacheMiddleware"]

CACHED_PATHS = re.compile(r"^/v1/(spend|findings|forecasts|budgets|budgets/[^/]+|alerts|alerts/[^/]+)$")
MAX_AGE_S = 60.0
MAX_BODY_BYTES = 4 * 2**20
MAX_TOTAL_BYTES = 128 * 2**20

CacheKey = tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stored: float  # `ReadCache.clock()`, time.monotonic() by default


class ReadCache:
    """A bounded LRU map of request keys to answers, cleared whenever the data changes. Thread-safe."""

    def __init__(self, entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = entries
        self.clock = clock
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.clock() - entry.stored >= MAX_AGE_S:
                self._drop(key)
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: CacheKey, entry: Entry, generation: int) -> bool:
        """Keep `entry` unless the data changed since `generation` was read, or it is too large."""
        if not self.enabled or len(entry.body) > MAX_BODY_BYTES:
            return False
        with self._lock:
            if generation != self.generation:
                return False
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += len(entry.body)
            while len(self._entries) > self.max_entries or self._bytes > MAX_TOTAL_BYTES:
                self._drop(next(iter(self._entries)))
            return True

    def invalidate(self) -> None:
        """The data changed: forget every answer, and refuse those computed before now."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: CacheKey) -> None:
        self._bytes -= len(self._entries.pop(key).body)


def cache_key(scope: Scope, caller: Caller) -> CacheKey:
    """(path, query, role, teams, UTC date). Parameters are ordered by name; the values of a repeated
    parameter keep their order. Decoded as Starlette decodes them, so spellings that parse alike share."""
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    teams = None if caller.teams is None else tuple(sorted(caller.teams))
    return (
        scope["path"],
        tuple(sorted(query, key=lambda kv: kv[0])),
        caller.role.value,
        teams,
        dt.datetime.now(dt.UTC).date(),
    )


class ReadCacheMiddleware:
    """ASGI middleware serving the read routes from `AppState.cache` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # misses being computed, by (key, generation): identical requests meanwhile wait for the first one
        self._flights: dict[tuple[CacheKey, int], asyncio.Future[Entry | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState | None = None
        if scope["type"] == "http" and scope["method"] == "GET" and CACHED_PATHS.match(scope["path"]):
            state = getattr(scope["app"].state, "finops", None)
        if state is None or not state.cache.enabled:
            await self.app(scope, receive, send)
            return
        cache = state.cache
        caller = await _caller(state, scope)
        key = cache_key(scope, caller) if caller is not None else None
        generation = cache.generation  # read before the route reads the database
        if key is None:
            await self._compute(state, scope, receive, send, None, generation)
            return
        if (entry := cache.get(key)) is not None:
            await _replay(entry, send)
            return
        flight = (key, generation)
        if (leader := self._flights.get(flight)) is not None:
            entry = await asyncio.shield(leader)
            if entry is not None:
                await _replay(entry, send)
            else:  # the first one failed (an error, a disconnect): answer this one on its own
                await self._compute(state, scope, receive, send, key, generation)
            return
        self._flights[flight] = future = asyncio.get_running_loop().create_future()
        try:
            future.set_result(await self._compute(state, scope, receive, send, key, generation))
        finally:
            if not future.done():
                future.set_result(None)
            if self._flights.get(flight) is future:
                del self._flights[flight]

    async def _compute(
        self, state: AppState, scope: Scope, receive: Receive, send: Send, key: CacheKey | None, generation: int
    ) -> Entry | None:
        """Answer through the app; a complete 200 is kept (under `generation`) and returned."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        complete = False

        async def capture(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        if start.get("status") != 200 or not complete:
            return None
        if key is None:
            return None
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
        entry = Entry(200, headers, b"".join(chunks), state.cache.clock())
        state.cache.put(key, entry, generation)
        return entry


async def _replay(entry: Entry, send: Send) -> None:
    await send({"type": "http.response.start", "status": entry.status, "headers": entry.headers})
    await send({"type": "http.response.body", "body": entry.body})


async def _caller(state: AppState, scope: Scope) -> Caller | None:
    """The caller of a request with a valid key that may read; else None (the normal path answers)."""
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if authorization is None:
        return None
    caller = await caller_of(state, authorization.decode("latin-1"))
    return caller if caller is not None and caller.can(Permission.READ) else None
