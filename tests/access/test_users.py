"""Admin users: argon2id hashes, roles, and the sign-in throttle kept in the database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from sendwell.access import users
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import AdminUser, LoginFailure
from sendwell.db.session import transaction

register_commands()
PASSWORD = "correct horse battery"


def test_password_is_stored_as_argon2id(session) -> None:
    user = users.create_user(session, email=" Mei@Bright-Lighting.example ", password=PASSWORD, role="marketer")
    assert user.email == "mei@bright-lighting.example"
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


@pytest.mark.parametrize("kwargs, message", [
    ({"role": "owner"}, "unknown role"),
    ({"password": "short"}, "at least"),
    ({"language": "de"}, "unknown language"),
    ({"email": "not-an-address"}, "not an email address"),
])
def test_bad_input_is_refused(session, kwargs, message) -> None:
    values = dict(email="a@b.example", password=PASSWORD, role="viewer") | kwargs
    with pytest.raises(users.UserError, match=message):
        users.create_user(session, **values)


def test_duplicate_email_is_refused(session) -> None:
    users.create_user(session, email="a@b.example", password=PASSWORD, role="viewer")
    with pytest.raises(users.UserError, match="already exists"):
        users.create_user(session, email="A@b.example", password=PASSWORD, role="admin")


def test_authenticate_accepts_right_password_only(session) -> None:
    users.create_user(session, email="a@b.example", password=PASSWORD, role="viewer")
    assert users.authenticate(session, email="a@b.example", password="wrong password", ip="10.0.0.1").user is None
    signed_in = users.authenticate(session, email="A@B.example", password=PASSWORD, ip="10.0.0.1").user
    assert signed_in is not None and signed_in.last_login_at is not None
    # Success forgets the address's failures.
    assert users.failures(session, key="email:a@b.example") == 0


def test_disabled_user_cannot_sign_in(session) -> None:
    user = users.create_user(session, email="a@b.example", password=PASSWORD, role="viewer")
    users.update_user(session, user_id=user.id, disabled=True)
    assert users.authenticate(session, email="a@b.example", password=PASSWORD, ip="10.0.0.1").user is None


def test_throttle_per_email_then_window_expires(session) -> None:
    users.create_user(session, email="a@b.example", password=PASSWORD, role="viewer")
    start = datetime.now(timezone.utc)
    for i in range(users.MAX_FAILURES_PER_EMAIL):
        users.authenticate(session, email="a@b.example", password="nope", ip=f"10.0.0.{i}", now=start)
    # Even the right password is refused while throttled: nothing is checked.
    with pytest.raises(users.Throttled):
        users.authenticate(session, email="a@b.example", password=PASSWORD, ip="10.9.9.9", now=start)
    later = start + users.WINDOW + timedelta(seconds=1)
    assert users.authenticate(session, email="a@b.example", password=PASSWORD, ip="10.9.9.9", now=later).user


def test_throttle_per_ip_across_addresses(session) -> None:
    now = datetime.now(timezone.utc)
    for i in range(users.MAX_FAILURES_PER_IP):
        users.authenticate(session, email=f"guess{i}@b.example", password="nope", ip="192.0.2.7", now=now)
    with pytest.raises(users.Throttled):
        users.authenticate(session, email="other@b.example", password="nope", ip="192.0.2.7", now=now)
    # Another IP is not affected.
    assert users.authenticate(session, email="other@b.example", password="nope", ip="192.0.2.8", now=now).user is None


def test_throttle_holds_across_sessions(runtime) -> None:
    # Two web processes share nothing but the database: the failures must be stored there.
    for _ in range(users.MAX_FAILURES_PER_EMAIL):
        with transaction(runtime.factory) as s:
            users.authenticate(s, email="x@b.example", password="nope", ip="10.0.0.1")
    with transaction(runtime.factory) as s:
        assert s.query(LoginFailure).count() == 2 * users.MAX_FAILURES_PER_EMAIL
        with pytest.raises(users.Throttled):
            users.authenticate(s, email="x@b.example", password="nope", ip="10.0.0.2")


def test_cli_create_and_list(runtime, settings) -> None:
    env = {"SENDWELL_DATABASE_URL": settings.effective_database_url, "SENDWELL_DATA_DIR": str(settings.data_dir),
           "SENDWELL_SECRET_KEY": "k" * 32, "SENDWELL_HASH_PEPPER": "p" * 32}
    result = CliRunner().invoke(cli, ["users", "create", "boss@b.example", "--role", "admin", "--password-stdin",
                                      "--json"], input=PASSWORD + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["role"] == "admin"
    again = CliRunner().invoke(cli, ["users", "create", "boss@b.example", "--role", "admin", "--password-stdin"],
                               input=PASSWORD + "\n", env=env)
    assert again.exit_code != 0 and "already exists" in again.output
    listed = CliRunner().invoke(cli, ["users", "list", "--json"], env=env)
    assert [u["email"] for u in json.loads(listed.output)] == ["boss@b.example"]
    with transaction(runtime.factory) as s:
        assert s.query(AdminUser).one().password_hash.startswith("$argon2id$")
