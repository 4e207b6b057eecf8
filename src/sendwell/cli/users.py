"""`sendwell users …`: people who sign in to the web admin."""

from __future__ import annotations

import sys

import click

from sendwell.access.users import UserError, create_user, get_user_by_email, list_users, update_user
from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction


@click.group("users")
def users() -> None:
    """Create, list and change web admin users."""


def _as_dict(user) -> dict:  # type: ignore[no-untyped-def]
    return {"id": user.id, "email": user.email, "role": user.role, "language": user.language,
            "created_at": user.created_at.isoformat(timespec="seconds"),
            "last_login_at": user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else None,
            "disabled": user.disabled_at is not None}


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line from standard input, for scripts: `printf '%s\n' "$PW" | sendwell users create …`.
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "marketer", "viewer"]), required=True,
              help="admin: everything, users and settings; marketer: contacts, imports, campaigns; viewer: read only.")
@click.option("--language", type=click.Choice(["en", "zh_Hans"]), default="en", show_default=True,
              help="The admin's language for this user (changeable in the admin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
@json_option
def users_create(email: str, role: str, language: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user who can sign in to the web admin at /admin."""
    runtime = get_runtime()
    password = _read_password(password_stdin)
    try:
        with transaction(runtime.factory) as session:
            data = _as_dict(create_user(session, email=email, password=password, role=role, language=language))
    except UserError as exc:
        fail(str(exc))
    emit(data, as_json, f"created {data['role']} {data['email']} (user {data['id']}); "
                        f"sign in at {runtime.settings.base_url}/admin/login")


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """List users (never their password hashes)."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        rows = [_as_dict(u) for u in list_users(session)]
    human = "\n".join(f"{r['id']:>4}  {r['email']}  {r['role']}  {r['language']}"
                      + ("  disabled" if r["disabled"] else "") for r in rows) or "no users"
    emit(rows, as_json, human)


@users.command("set")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "marketer", "viewer"]), default=None)
@click.option("--password", "new_password", is_flag=True, help="Set a new password (prompted, or --password-stdin).")
@click.option("--password-stdin", is_flag=True)
@click.option("--disable/--enable", default=None, help="A disabled user cannot sign in.")
@json_option
def users_set(email: str, role: str | None, new_password: bool, password_stdin: bool, disable: bool | None,
              as_json: bool) -> None:
    """Change a user's role or password, or disable the user."""
    runtime = get_runtime()
    password = _read_password(password_stdin) if (new_password or password_stdin) else None
    try:
        with transaction(runtime.factory) as session:
            user = get_user_by_email(session, email=email)
            if user is None:
                raise UserError(f"no user with email {email}")
            data = _as_dict(update_user(session, user_id=user.id, role=role, password=password, disabled=disable))
    except UserError as exc:
        fail(str(exc))
    emit(data, as_json, f"updated {data['email']}: {data['role']}" + (", disabled" if data["disabled"] else ""))
