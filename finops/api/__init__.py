"""The HTTP API (`finops serve`): FastAPI app factory, roles and scopes, safe SQL over snapshots."""

from finops.api.app import create_app

__all__ = ["create_app"]
