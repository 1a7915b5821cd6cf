"""The source adapters, by name. `--source auto` tries them in this order."""

from __future__ import annotations

from finops.errors import UnknownSource
from finops.ingest.adapter import Adapter
from finops.ingest.sources.anthropic import ANTHROPIC_COSTS, ANTHROPIC_USAGE
from finops.ingest.sources.gateway import GATEWAY
from finops.ingest.sources.gpu import GPU
from finops.ingest.sources.litellm import LITELLM
from finops.ingest.sources.openai import OPENAI_COSTS, OPENAI_USAGE

__all__ = ["SOURCES", "get_adapter"]

SOURCES: dict[str, Adapter] = {
    a.name: a for a in (GATEWAY, LITELLM, OPENAI_USAGE, OPENAI_COSTS, ANTHROPIC_USAGE, ANTHROPIC_COSTS, GPU)
}


def get_adapter(name: str) -> Adapter:
    """The adapter called `name`; an unknown name lists the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join([*SOURCES, "auto"])
        raise UnknownSource(f"Unknown source '{name}'. Valid sources are: {known}.", source=name) from None
