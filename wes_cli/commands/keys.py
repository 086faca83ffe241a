"""``wes keys``: the control API's keys, managed straight in Redis. Whoever can reach Redis already
controls everything, so this is how the first key is made, or a lost admin key replaced, without an
API key. Only salted hashes are stored; a new key is shown once."""

from __future__ import annotations

from typing import Any

import click

from engine.errors import EngineError
from wes_cli.app import App, emit_json, pass_app, principal

ROLES = ("viewer", "operator", "admin")


def _store(app: App) -> Any:
    from api.auth import KeyStore
    from api.settings import ApiSettings
    from engine import ApiStores

    client = app.client
    return KeyStore(ApiStores(client.engine.stores).api_keys, ApiSettings(engine=client.settings))


@click.group()
def keys() -> None:
    """Create, list and revoke the control API's keys."""


@keys.command("create")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--name", default="", help="What the key is for (shown in lists and the audit log).")
@pass_app
def keys_create(app: App, role: str, name: str) -> None:
    """Create a key with ROLE and print it once (only its hash is stored)."""
    from api.auth import Role, key_summary

    stored, key = _store(app).create(Role(role), name or f"{role} key (wes keys create)", principal())
    if app.json:
        emit_json({**key_summary(stored), "key": key})
        return
    click.echo(f"{key}\n(role {role}, id {stored.key_id}; shown once: only its hash is stored)")


@keys.command("list")
@pass_app
def keys_list(app: App) -> None:
    """Every key: configured (WES_API_KEYS, keys file) and stored. Never the secrets."""
    from api.auth import key_summary

    rows = [key_summary(k) for k in _store(app).all()]
    if app.json:
        emit_json(rows)
        return
    click.echo(f"{'ID':<18} {'ROLE':<9} {'SOURCE':<8} NAME")
    for r in rows:
        click.echo(f"{r['key_id']:<18} {r['role']:<9} {r['source']:<8} {r['name']}")


@keys.command("revoke")
@click.argument("key_id")
@pass_app
def keys_revoke(app: App, key_id: str) -> None:
    """Revoke a stored key (the API stops accepting it within its auth cache, 2 s by default)."""
    from api.auth import key_summary
    from api.errors import ApiProblem

    try:
        revoked = _store(app).revoke(key_id)
    except ApiProblem as exc:  # a configured key: it lives in the environment or the keys file
        raise EngineError(exc.detail) from None
    if app.json:
        emit_json(key_summary(revoked))
        return
    click.echo(f"revoked {revoked.key_id} ({revoked.role}, {revoked.name})")
