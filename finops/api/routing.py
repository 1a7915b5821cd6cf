"""`BodyLimitedRoute`: a route whose request body is read with a size limit before FastAPI parses it.

An oversized body is a 413 from the one error handler (`PayloadTooLarge`), not a 400 from FastAPI's
body parser; a declared `Content-Length` over the limit is refused before any byte is read, and a
chunked body is cut off as soon as it passes the limit. JSON routes also insist on a JSON content type.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import field_annotation_is_sequence
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from finops.api.errors import PayloadTooLarge, UnsupportedMediaType

__all__ = ["BodyLimitedRoute", "QueryCheckedRoute", "read_limited", "refuse_unclear_query"]


async def read_limited(request: Request, limit: int, setting: str) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it is longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, setting)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, setting)
    return bytes(body)


def _too_large(limit: int, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit:,} bytes. The limit is {setting}.", limit_bytes=limit
    )


def _single_valued(dependant: Dependant) -> frozenset[str]:
    """The query parameters of `dependant` and its dependencies that take one value (not a list)."""
    names = {f.alias for f in dependant.query_params if not field_annotation_is_sequence(f.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _single_valued(sub)
    return frozenset(names)


def _query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter `dependant` and its dependencies read."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def refuse_unclear_query(request: Request, single: frozenset[str], known: frozenset[str]) -> None:
    """A single-valued query parameter given twice, or one the route does not read, is a 422: FastAPI would
    silently keep the last value, or ignore the parameter (`project=` on /v1/spend would answer the company's
    total as if it were one project's)."""
    errors = [
        {
            "type": "repeated_parameter",
            "loc": ("query", name),
            "msg": f"Given {len(values)} times; expected once.",
            "input": values,
        }
        for name in sorted(single)
        if len(values := request.query_params.getlist(name)) > 1
    ]
    takes = ", ".join(sorted(known)) or "none"
    errors += [
        {
            "type": "unknown_parameter",
            "loc": ("query", name),
            "msg": f"This route does not read {name!r}; its query parameters are: {takes}.",
            "input": request.query_params.get(name),
        }
        for name in sorted(set(request.query_params.keys()) - known)
    ]
    if errors:
        raise RequestValidationError(errors)


class QueryCheckedRoute(APIRoute):
    """A route whose query is checked first (`refuse_unclear_query`); push ingest, which reads its own body,
    uses it as it is."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        single, known = _single_valued(self.dependant), _query_names(self.dependant)

        async def checked(request: Request) -> Response:
            refuse_unclear_query(request, single, known)
            return await handler(request)

        return checked


class BodyLimitedRoute(QueryCheckedRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method in {"POST", "PUT", "PATCH"}:
                media = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if media != "application/json" and not media.endswith("+json"):
                    raise UnsupportedMediaType(
                        "This route reads a JSON body; send it with `Content-Type: application/json`.",
                        accepted=["application/json"],
                    )
                settings = request.app.state.finops.settings
                request._body = await read_limited(request, settings.api_max_body_bytes, "FINOPS_API_MAX_BODY_BYTES")
            return await handler(request)

        return limited
