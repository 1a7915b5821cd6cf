"""Resolve a model name as it was sent to the catalog entry that prices it, and say how.

`gpt-4o-2024-08-06` (a dated snapshot), `claude-3-5-sonnet-20241022`, `openai/gpt-4o` (as gateways write
it) and `gemini-2.5-pro` with provider `vertex_ai` all resolve through genai-prices' own matching rules.
Resolution runs once per distinct (provider, model) pair, never per usage row; the result is a small
table the cost job joins, and `finops prices --resolved` shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from genai_prices import data_snapshot
from genai_prices import types as gp

from finops.price.overlay import ANY_PROVIDER

__all__ = ["RESOLUTION_SCHEMA", "Resolution", "resolve_model", "resolve_models"]

# provider names as gateways and logs write them -> genai-prices provider ids
_PROVIDER_ALIASES = {
    "bedrock": "aws",
    "aws_bedrock": "aws",
    "vertex_ai": "google",
    "vertex": "google",
    "gemini": "google",
    "google_ai_studio": "google",
    "xai": "x-ai",
    "grok": "x-ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "azure_ai": "azure",
    "azure_openai": "azure",
    "mistralai": "mistral",
}

RESOLUTION_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "model": pl.String(),
    "price_provider": pl.String(),
    "price_model": pl.String(),
    "tiers_apply": pl.Boolean(),  # false when the model was found through another provider's fallback
    "resolution": pl.String(),
}


@dataclass(frozen=True)
class Resolution:
    provider: str | None
    model: str
    price_provider: str | None
    price_model: str | None
    tiers_apply: bool
    resolution: str


def _provider_id(name: str | None) -> str | None:
    if not name:
        return None
    key = name.strip().lower()
    return _PROVIDER_ALIASES.get(key, key)


def _owner(snapshot: data_snapshot.DataSnapshot, model: gp.ModelInfo) -> gp.Provider:
    return next(p for p in snapshot.providers if any(m is model for m in p.models))


def _lookup(snapshot: data_snapshot.DataSnapshot, model: str, provider: str | None) -> tuple[gp.Provider, gp.ModelInfo]:
    return snapshot.find_provider_model(model, None, provider, None)


def resolve_model(provider: str | None, model: str, snapshot: data_snapshot.DataSnapshot | None = None) -> Resolution:
    """The catalog entry for one (provider, model) pair, or an unresolved result saying why."""
    snap = snapshot or data_snapshot.get_snapshot()
    attempts: list[tuple[str | None, str, str]] = [(_provider_id(provider), model, "")]
    if "/" in model:
        prefix, rest = model.split("/", 1)
        attempts.append((_provider_id(prefix), rest, f"prefix '{prefix}/' read as the provider"))
        attempts.append((_provider_id(provider), rest, f"prefix '{prefix}/' dropped"))
    if provider:
        attempts.append((None, model, f"provider '{provider}' unknown to the catalog; matched by model name"))
    for provider_id, name, note in attempts:
        try:
            lookup, info = _lookup(snap, name, provider_id)
        except LookupError:
            continue
        owner = _owner(snap, info)
        via = "" if owner is lookup else f" through {lookup.id}'s fallback to {owner.id} (tiers not applied)"
        text = f"{model} -> {owner.id}/{info.id}{via}" + (f"; {note}" if note else "")
        return Resolution(provider, model, owner.id, info.id, owner is lookup, text)
    where = f" for provider '{provider}'" if provider else ""
    return Resolution(provider, model, None, None, False, f"{model}: no catalog entry{where}; priced as __unpriced__")


def resolve_models(
    pairs: pl.DataFrame,
    snapshot: data_snapshot.DataSnapshot | None = None,
    overrides: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Resolve each distinct (provider, model) pair of `pairs`; a model the user priced in the overrides
    file (`overrides`: price_provider, price_model, source) resolves to that price first: the override of
    the pair's own provider, else the one for any provider; a pair without provider, the one provider
    whose override names the model (as `overlay.own_prices` decides per day when pricing)."""
    distinct = pairs.select("provider", "model").unique().drop_nulls("model").sort("provider", "model", nulls_last=True)
    own: dict[str, dict[str, str]] = {}  # model -> override provider -> source
    if overrides is not None:
        for provider, model, source in overrides.select("price_provider", "price_model", "source").unique().iter_rows():
            own.setdefault(model, {})[provider] = source
    rows = []
    for provider, model in distinct.iter_rows():
        price_provider = _own_provider(provider, set(own.get(model, ())))
        if price_provider is not None:
            source = own[model][price_provider]
            rows.append(Resolution(provider, model, price_provider, model, True, f"{model} -> your price ({source})"))
        else:
            rows.append(resolve_model(provider, model, snapshot))
    return pl.DataFrame(
        [(r.provider, r.model, r.price_provider, r.price_model, r.tiers_apply, r.resolution) for r in rows],
        schema=RESOLUTION_SCHEMA,
        orient="row",
    )


def _own_provider(provider: str | None, providers: set[str]) -> str | None:
    """Which of the override providers pricing a model name prices it for a record of `provider`."""
    if provider is None:
        return next(iter(providers)) if len(providers) == 1 else None
    if provider in providers:
        return provider
    return ANY_PROVIDER if ANY_PROVIDER in providers else None
