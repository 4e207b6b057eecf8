"""`sendwell api-tokens …`: bearer tokens for the REST API."""

from __future__ import annotations

import click

from sendwell.access.service import TokenError, create_token, list_tokens, revoke_token
from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction


@click.group("api-tokens")
def api_tokens() -> None:
    """Create, list and revoke REST API tokens."""


def _as_dict(token) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "scopes": token.scopes,
        "created_at": token.created_at.isoformat(timespec="seconds"),
        "last_used_at": token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else None,
    }


@api_tokens.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. \"CRM sync\".")
@click.option("--scope", "scopes", multiple=True, required=True,
              help="Repeat for each scope: contacts:read, contacts:write, contacts:erase, events:read, events:write, campaigns:read, "
                   "campaigns:write, reports:read, webhooks:read, webhooks:write, metrics:read, admin.")
@json_option
def tokens_create(name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create a token and print it once; only its hash is kept."""
    runtime = get_runtime()
    # Accept `--scope a,b` as well as repeated `--scope`.
    wanted = [s.strip() for value in scopes for s in value.split(",") if s.strip()]
    try:
        with transaction(runtime.factory) as session:
            new = create_token(session, name=name, scopes=wanted)
            data = _as_dict(new.token)
    except TokenError as exc:
        fail(f"--scope: {exc}" if "scope" in str(exc) else str(exc))
    data["token"] = new.secret
    emit(data, as_json, f"{new.secret}\n(token {data['id']} “{name}”, scopes {', '.join(data['scopes'])}; "
                        "shown only now — store it in your secret manager)")


@api_tokens.command("list")
@json_option
def tokens_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        rows = [_as_dict(t) for t in list_tokens(session)]
    human = "\n".join(
        f"{r['id']:>4}  {r['prefix']}…  {r['name']}  [{', '.join(r['scopes'])}]"
        + (f"  revoked {r['revoked_at']}" if r["revoked_at"] else "")
        for r in rows
    ) or "no API tokens"
    emit(rows, as_json, human)


@api_tokens.command("revoke")
@click.argument("token_id", type=int)
@json_option
def tokens_revoke(token_id: int, as_json: bool) -> None:
    """Revoke a token; requests with it get 401 from now on."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            data = _as_dict(revoke_token(session, token_id=token_id))
    except TokenError as exc:
        fail(str(exc))
    emit(data, as_json, f"revoked token {token_id} “{data['name']}”")
