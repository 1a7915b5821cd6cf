"""finops: what your AI costs, who spent it, and when it is about to go wrong.

The flow, one stage per package or module:

    ingest   provider exports, gateway logs, GPU jobs -> usage_events / gpu_jobs / provider_costs
             (every bad line kept in rejected_usage; nothing counted twice)
    store    DuckDB, reached only through finops.store; SQL lives in queries/
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finops")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
