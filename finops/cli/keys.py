"""`finops keys create|list|revoke`: API keys for `finops serve` (the key is printed once, stored hashed)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from finops.alert.store import known_teams
from finops.store.db import connect
from finops.store.keys import Role, create_key, list_keys, revoke_key

__all__ = ["register"]

out = Console(highlight=False, soft_wrap=True, markup=False)

_WHILE_SERVING = (
    "While `finops serve` holds the database, manage keys through the API instead "
    "(POST /v1/keys, GET /v1/keys, DELETE /v1/keys/ID with an admin key)."
)


def register(cli: click.Group) -> None:
    @cli.group("keys")
    def keys() -> None:
        """API keys for `finops serve`. """ + _WHILE_SERVING

    @keys.command("create")
    @click.option("--role", required=True, type=click.Choice([r.value for r in Role]), help="What the key may do.")
    @click.option("--team", "teams", multiple=True, metavar="TEAM", help="Scope to this team (repeatable).")
    @click.option("--name", metavar="NAME", help="What the key is for (shown in `finops keys list`).")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.pass_obj
    def create(state: object, role: str, teams: tuple[str, ...], name: str | None, fmt: str) -> int:
        """Create a key and print it once: only its hash is stored."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            new = create_key(db, role, list(teams), name)
            unknown = sorted(set(new.key.teams or ()) - set(known_teams(db)))
        for team in unknown:  # a typo scopes the key to nothing; a team that has not spent yet is fine
            click.echo(f"warning: team '{team}' has no spend or budget yet; check the name.", err=True)
        if fmt == "json":
            click.echo(json.dumps({"key_id": new.key.key_id, "key": new.token, "role": role, "teams": teams or None}))
            return 0
        scope = ", ".join(new.key.teams) if new.key.teams else "every team"
        click.echo(new.token)
        click.echo(
            f"key {new.key.key_id}: role {role}, {scope}. Shown once; it cannot be shown again. "
            "Send it as `Authorization: Bearer <key>`.",
            err=True,
        )
        return 0

    @keys.command("list")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @click.pass_obj
    def list_(state: object, fmt: str) -> int:
        """Every key (without secrets), revoked ones included."""
        with connect(state.settings, read_only=True) as db:  # type: ignore[attr-defined]
            found = list_keys(db)
        if fmt == "json":
            rows = [
                {
                    "key_id": k.key_id,
                    "name": k.name,
                    "role": k.role.value,
                    "teams": list(k.teams) if k.teams else None,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in found
            ]
            click.echo(json.dumps(rows, indent=1))
            return 0
        table = Table("key_id", "role", "teams", "name", "created", "revoked", header_style="bold")
        for k in found:
            table.add_row(
                k.key_id,
                k.role.value,
                ", ".join(k.teams) if k.teams else "(all)",
                k.name or "",
                f"{k.created_at:%Y-%m-%d %H:%M}",
                f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
            )
        out.print(table)
        return 0

    @keys.command("revoke")
    @click.argument("key_id")
    @click.pass_obj
    def revoke(state: object, key_id: str) -> int:
        """Revoke a key by its id (the 12 hex digits after `fo_`)."""
        with connect(state.settings) as db:  # type: ignore[attr-defined]
            key = revoke_key(db, key_id)
        click.echo(f"key {key.key_id} revoked")
        return 0
