"""/suppressions: check an address, add one by hand. There is no removal: only the person's own action lifts it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from sendwell.contacts.fields import normalise_email
from sendwell.db.models import SCOPE_ALL
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.suppression.service import add_manual_suppression, get_suppressions, hash_email
from sendwell.web.api.problems import invalid
from sendwell.web.api.schemas import bounded

SCOPE = r"^(all|[a-z0-9][a-z0-9-]{0,99})$"


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = bounded(320, min_length=1, json_schema_extra={"format": "email"})


class SuppressIn(AddressIn):
    scope: str = Field(default=SCOPE_ALL, pattern=SCOPE, max_length=100,
                       description="`all` (every marketing mail) or a topic slug")
    note: str = bounded(500, default="", description="why, for the audit trail")


class EntryOut(BaseModel):
    scope: str
    reason: str
    created_at: datetime


class CheckOut(BaseModel):
    suppressed: bool = Field(description="true if suppressed for all marketing")
    entries: list[EntryOut]


class SuppressOut(EntryOut):
    created: bool = Field(description="false if the address was already suppressed in this scope")


def _address(email: str) -> str:
    # The same normalisation as stored contacts, so the peppered hashes match.
    try:
        return normalise_email(email)
    except ValueError as exc:
        raise invalid("email", f"{email!r} is not a valid address: {exc}") from None


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/suppressions", tags=["suppressions"])

    @r.post("/check", response_model=CheckOut, dependencies=[require("contacts:read")])
    def check(body: AddressIn) -> CheckOut:
        """Is this address suppressed? A POST so the address stays out of URLs and access logs."""
        address = _address(body.email)
        with transaction(runtime.factory) as session:
            rows = get_suppressions(session, email_hash=hash_email(runtime.settings.pepper, address))
            entries = [EntryOut(scope=s.scope, reason=s.reason, created_at=s.created_at) for s in rows]
        return CheckOut(suppressed=any(e.scope == SCOPE_ALL for e in entries), entries=entries)

    @r.post("", response_model=SuppressOut, status_code=201, dependencies=[require("contacts:write")],
            responses={200: {"description": "already suppressed in this scope", "model": SuppressOut}})
    def add(body: SuppressIn, response: Response) -> SuppressOut:
        """Suppress an address (reason `manual`), stored as a peppered hash; idempotent."""
        address = _address(body.email)
        with transaction(runtime.factory) as session:
            row, created = add_manual_suppression(session, pepper=runtime.settings.pepper, email=address, scope=body.scope, note=body.note)
            out = SuppressOut(scope=row.scope, reason=row.reason, created_at=row.created_at, created=created)
        response.status_code = 201 if created else 200
        return out

    return r
