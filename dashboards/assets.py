"""The plotly.js bundled with the `plotly` package, read once: served from a static route (gzipped) or
embedded in static files. No CDN: dashboards work with no internet."""

from __future__ import annotations

import functools
import gzip
import hashlib

import plotly  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

__all__ = ["PLOTLY_VERSION", "plotly_js", "plotly_js_gzip", "plotly_js_name"]

PLOTLY_VERSION = plotly.__version__


@functools.cache
def plotly_js() -> str:
    return str(get_plotlyjs())


@functools.cache
def plotly_js_gzip() -> bytes:
    return gzip.compress(plotly_js().encode(), compresslevel=6, mtime=0)


@functools.cache
def plotly_js_name() -> str:
    """A file name that changes with the content, so browsers may cache it for good."""
    digest = hashlib.sha256(plotly_js().encode()).hexdigest()[:12]
    return f"plotly-{PLOTLY_VERSION}-{digest}.min.js"
