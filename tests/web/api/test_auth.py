"""Tokens: stored hashed, 401 without a live token, 403 without the scope; the api-tokens commands."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from sendwell.access.service import create_token, hash_token, revoke_token
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import ApiToken
from sendwell.db.session import transaction
from tests.web.api.conftest import assert_problem

register_commands()


def test_missing_token_is_401_with_a_bearer_challenge(client) -> None:
    response = client.get("/api/v1/contacts")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_unknown_token_is_401(client) -> None:
    assert_problem(client.get("/api/v1/contacts", headers={"Authorization": "Bearer swk_nope"}), 401)


def test_wrong_scope_is_403_naming_the_scope(client, auth) -> None:
    body = assert_problem(client.get("/api/v1/contacts", headers=auth("reports:read")), 403)
    assert "contacts:read" in body["detail"]
    assert client.get("/api/v1/contacts", headers=auth("contacts:read")).status_code == 200
    assert client.get("/api/v1/contacts", headers=auth("admin")).status_code == 200
    # Read does not imply write.
    assert_problem(client.post("/api/v1/contacts", json={"email": "a@b.example"}, headers=auth("contacts:read")), 403)


def test_revoked_token_is_401(client, runtime) -> None:
    with transaction(runtime.factory) as session:
        new = create_token(session, name="crm", scopes=["contacts:read"])
    headers = {"Authorization": f"Bearer {new.secret}"}
    assert client.get("/api/v1/contacts", headers=headers).status_code == 200
    with transaction(runtime.factory) as session:
        revoke_token(session, token_id=new.token.id)
    assert_problem(client.get("/api/v1/contacts", headers=headers), 401)


def test_only_the_hash_is_stored(runtime) -> None:
    with transaction(runtime.factory) as session:
        new = create_token(session, name="crm", scopes=["contacts:read"])
    with transaction(runtime.factory) as session:
        row = session.scalar(select(ApiToken))
        assert row.token_hash == hash_token(new.secret) != new.secret
        assert new.secret not in (row.prefix, row.name, row.token_hash)
        assert len(new.secret) >= 40  # 256 random bits, url-safe


def test_cli_create_list_revoke(tmp_path, db_url, client) -> None:
    env = {"SENDWELL_DATA_DIR": str(tmp_path / "cli"), "SENDWELL_DATABASE_URL": db_url,
           "SENDWELL_SECRET_KEY": "k" * 20, "SENDWELL_HASH_PEPPER": "p" * 20}
    runner = CliRunner()
    created = runner.invoke(cli, ["api-tokens", "create", "--name", "CRM sync", "--scope", "contacts:read",
                                  "--scope", "events:write", "--json"], env=env, catch_exceptions=False)
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["scopes"] == ["contacts:read", "events:write"] and data["token"].startswith("swk_")
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {data['token']}"}).status_code == 200

    listed = runner.invoke(cli, ["api-tokens", "list", "--json"], env=env, catch_exceptions=False)
    assert data["token"] not in listed.output and "CRM sync" in listed.output

    bad = runner.invoke(cli, ["api-tokens", "create", "--name", "x", "--scope", "contacts:delete"], env=env)
    assert bad.exit_code != 0 and "contacts:delete" in bad.output

    revoked = runner.invoke(cli, ["api-tokens", "revoke", str(data["id"])], env=env, catch_exceptions=False)
    assert revoked.exit_code == 0
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {data['token']}"}).status_code == 401
    missing = runner.invoke(cli, ["api-tokens", "revoke", "999"], env=env)
    assert missing.exit_code != 0 and "999" in missing.output
