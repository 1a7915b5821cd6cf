"""The API's errors and the one handler that renders every `FinopsError` as `{"detail", "code", ...}`.

The classes here extend the tree of `finops.errors` with what only HTTP has:

```
FinopsError
├── Unauthenticated       401  no key, or a key that is unknown, revoked or wrong
├── Forbidden             403  the key's role may not do this
│   └── OutOfScope        403  a filter names a team outside the key's teams
├── PayloadTooLarge       413  names the setting of the limit
├── UnsupportedMediaType  415  lists the content types the route reads
└── TooManyQueries        429  a key's concurrent SQL queries
```
Request-shape errors keep FastAPI's 422 body (with a `code`, and any text of the caller's that cannot be
encoded, such as a lone surrogate, replaced); Starlette's own errors (404 for an unknown path, 405, a body
that does not parse) keep their detail and get a `code` too. Anything else is a bug: a 500 with a fixed
sentence, never the exception's text.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from finops.errors import FinopsError
from finops.limits import machine_limit

__all__ = [
    "Forbidden",
    "OutOfScope",
    "PayloadTooLarge",
    "TooManyQueries",
    "Unauthenticated",
    "UnsupportedMediaType",
    "install_error_handlers",
]

log = logging.getLogger("finops.api")


class Unauthenticated(FinopsError):
    status_code = 401
    code = "unauthenticated"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(FinopsError):
    status_code = 403
    code = "forbidden"


class OutOfScope(Forbidden):
    code = "out_of_scope"


class PayloadTooLarge(FinopsError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(FinopsError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyQueries(FinopsError):
    status_code = 429
    code = "too_many_queries"


def render_error(_request: Request, exc: Exception) -> JSONResponse:
    """The one renderer: a `FinopsError`'s status, `as_dict()` body and headers."""
    assert isinstance(exc, FinopsError)
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    headers: dict[str, Any] | None = getattr(exc, "headers", None)
    return JSONResponse(jsonable_encoder(exc.as_dict()), status_code=status, headers=headers)


def render_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, made encodable: a caller's JSON may hold text UTF-8 cannot carry."""
    assert isinstance(exc, RequestValidationError)
    body = {"detail": _encodable(jsonable_encoder(exc.errors())), "code": "invalid_request"}
    return JSONResponse(body, status_code=422)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def render_http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, a body that does not parse), with a `code`."""
    assert isinstance(exc, HTTPException)
    body = {"detail": _encodable(exc.detail), "code": _HTTP_CODES.get(exc.status_code, "http_error")}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):  # a JSON body may say NaN, Infinity or 1e400
        return str(value)
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    return value


def render_bug(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not the caller's mistake: logged with its traceback, answered without its text. The machine's
    limits (memory, a full disk, a file DuckDB cannot write) are not bugs: 503 with what to do."""
    limit = machine_limit(exc)
    if limit is not None:
        log.warning("%s on %s %s: %s", limit.code, request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": _LIMIT_DETAIL[limit.code], "code": limit.code}, status_code=503, headers={"Retry-After": "30"}
        )
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "Internal error; the server log has the details.", "code": "internal_error"}, status_code=500
    )


_LIMIT_DETAIL = {
    "out_of_memory": (
        "The server ran out of memory answering this request (its DuckDB memory limit, FINOPS_MEMORY_LIMIT). "
        "Ask for a shorter range or fewer groups, or try again when the server is less busy."
    ),
    "disk_full": (
        "The server's disk is full; nothing of this request was committed. Try again once its operator has freed "
        "space on the disk of the database and of its temporary directory."
    ),
    "storage_error": (
        "The server could not read or write a file of its database (disk space or permissions); nothing of this "
        "request was committed. Try again later; the server log has the details."
    ),
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FinopsError, render_error)
    # DuckDB's and the OS's errors may be the machine's limits (memory, disk): rendered here, not re-raised to
    # the server's last-resort handler (which would log a full disk as a crash).
    for kind in (duckdb.Error, OSError):
        app.add_exception_handler(kind, render_bug)
    app.add_exception_handler(RequestValidationError, render_invalid_request)
    app.add_exception_handler(HTTPException, render_http_error)
    app.add_exception_handler(Exception, render_bug)
