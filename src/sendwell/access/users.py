"""Web admin users: argon2id password hashes, roles, per-user language, and the sign-in throttle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sendwell.db.models import AdminUser, LoginFailure
from sendwell.i18n.messages import N_, english

ROLES = ("admin", "marketer", "viewer")
LANGUAGES = ("en", "zh_Hans")
MIN_PASSWORD = 10
# The throttle: this many failures within the window refuse further attempts. Per address it
# stops guessing one account's password; per IP (higher: an office shares one address) it
# stops one machine trying many accounts.
WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20

# argon2-cffi's defaults are RFC 9106's second recommended option (argon2id, 64 MiB, t=3).
_hasher = PasswordHasher()
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Verified when the address is unknown, so a wrong address takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class UserError(ValueError):
    """The user cannot be created or changed as asked: str(exc) in English, `template` + `params` for the admin."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(english(template, params) if params else template)
        self.template = template if params else template.replace("%", "%%")
        self.params = params


class Throttled(Exception):
    """Too many failed sign-ins for this address or IP; try again later."""


@dataclass(frozen=True)
class SignIn:
    user: AdminUser | None  # None: wrong address or password (the caller never says which)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _check(role: str | None = None, language: str | None = None, password: str | None = None) -> None:
    if role is not None and role not in ROLES:
        raise UserError(N_("unknown role %(role)r (use one of %(known)s)"), role=role, known=", ".join(ROLES))
    if language is not None and language not in LANGUAGES:
        raise UserError(N_("unknown language %(language)r (use one of %(known)s)"), language=language,
                        known=", ".join(LANGUAGES))
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(N_("the password needs at least %(n)s characters"), n=MIN_PASSWORD)


def create_user(session: Session, *, email: str, password: str, role: str, language: str = "en") -> AdminUser:
    """Store a new admin user with an argon2id hash of the password."""
    _check(role, language, password)
    # A sign-in name, never mailed to: any single address shape will do (also `admin@demo.test`).
    address = email.strip().lower()
    if not _ADDRESS.fullmatch(address) or len(address) > 320:
        raise UserError(N_("email: %(email)r is not an email address"), email=email)
    if get_user_by_email(session, email=address) is not None:
        raise UserError(N_("a user with email %(email)s already exists"), email=address)
    user = AdminUser(email=address, password_hash=_hasher.hash(password), role=role, language=language)
    session.add(user)
    session.flush()
    return user


def get_user_by_email(session: Session, *, email: str) -> AdminUser | None:
    return session.scalar(select(AdminUser).where(func.lower(AdminUser.email) == email.strip().lower()))


def get_user(session: Session, *, user_id: int) -> AdminUser | None:
    """The user, or None when unknown or disabled."""
    user = session.get(AdminUser, user_id)
    return user if user is not None and user.disabled_at is None else None


def list_users(session: Session) -> list[AdminUser]:
    return list(session.scalars(select(AdminUser).order_by(AdminUser.email)))


def update_user(session: Session, *, user_id: int, role: str | None = None, language: str | None = None,
                password: str | None = None, disabled: bool | None = None) -> AdminUser:
    """Change a user's role, language, password or disabled flag."""
    _check(role, language, password)
    user = session.get(AdminUser, user_id)
    if user is None:
        raise UserError(N_("no user with id %(id)s"), id=user_id)
    if role is not None:
        user.role = role
    if language is not None:
        user.language = language
    if password is not None:
        user.password_hash = _hasher.hash(password)
    if disabled is not None:
        user.disabled_at = _now() if disabled else None
    session.flush()
    return user


def failures(session: Session, *, key: str, now: datetime | None = None) -> int:
    """Failed sign-ins for this key within the throttle window."""
    since = (now or _now()) - WINDOW
    return session.scalar(select(func.count()).select_from(LoginFailure)
                          .where(LoginFailure.key == key, LoginFailure.occurred_at >= since)) or 0


def authenticate(session: Session, *, email: str, password: str, ip: str, now: datetime | None = None) -> SignIn:
    """Check a sign-in; Throttled before any password check when the address or IP is over the limit."""
    now = now or _now()
    email_key, ip_key = f"email:{email.strip().lower()[:320]}", f"ip:{ip[:64]}"
    if (failures(session, key=email_key, now=now) >= MAX_FAILURES_PER_EMAIL
            or failures(session, key=ip_key, now=now) >= MAX_FAILURES_PER_IP):
        raise Throttled()
    user = get_user_by_email(session, email=email) if email.strip() else None
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
        ok = user is not None and user.disabled_at is None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        session.add_all([LoginFailure(key=email_key, occurred_at=now), LoginFailure(key=ip_key, occurred_at=now)])
        # Old rows are useless to the throttle; drop them as we go.
        session.execute(delete(LoginFailure).where(LoginFailure.occurred_at < now - WINDOW))
        session.flush()
        return SignIn(None)
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    session.execute(delete(LoginFailure).where(LoginFailure.key == email_key))
    session.flush()
    return SignIn(user)
