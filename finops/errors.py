"""The whole exception tree of finops.

Every error a user can cause is a `FinopsError` whose message is one sentence: where, what came,
what was expected, what to do. The CLI prints it and exits non-zero; the API renders it as
``{"detail": <sentence>, "code": <snake_case>, **context}`` with the status below.

```
FinopsError                          exit 1
├── InputError            400       the caller can fix it: bad option, bad date range, bad value
│   ├── UnknownSource     400       lists the known sources
│   ├── UnrecognisedFile  400       `--source auto` could not tell; lists the sources
│   ├── FileProblem       400       a file is missing, unreadable, or not in a format we read
│   ├── QueryParamsError  400       missing / unexpected / wrongly typed query params
│   └── UnknownQuery      404       lists the known query names
├── DatabaseLocked        409       another process holds the database; says which
├── QueryTimeout          400       names the setting that controls the limit
├── NotFound              404
└── ConfigError                     startup only; names the env var and the bad value
```

Bad *records* inside a file are not exceptions: they become rows of `rejected_usage`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "DatabaseLocked",
    "FileProblem",
    "FinopsError",
    "InputError",
    "NotFound",
    "QueryParamsError",
    "QueryTimeout",
    "UnknownQuery",
    "UnknownSource",
    "UnrecognisedFile",
]


class FinopsError(Exception):
    """Base of every error finops raises on purpose."""

    status_code = 500
    code = "finops_error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def as_dict(self) -> dict[str, Any]:
        """The JSON body the API returns for this error."""
        return {"detail": self.message, "code": self.code, **self.context}


class InputError(FinopsError):
    status_code = 400
    code = "invalid_input"


class UnknownSource(InputError):
    code = "unknown_source"


class UnrecognisedFile(InputError):
    code = "unrecognised_file"


class FileProblem(InputError):
    code = "file_problem"


class QueryParamsError(InputError):
    code = "invalid_query_params"


class UnknownQuery(InputError):
    status_code = 404
    code = "unknown_query"


class DatabaseLocked(FinopsError):
    status_code = 409
    code = "database_locked"


class QueryTimeout(FinopsError):
    status_code = 400
    code = "query_timeout"


class NotFound(FinopsError):
    status_code = 404
    code = "not_found"


class ConfigError(FinopsError):
    code = "config_error"
