"""/domain/check: the sender-domain check of `sendwell domain check` (SPF, DKIM, DMARC, MX, PTR)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sendwell.db.session import transaction
from sendwell.deliverability.check import sending_ips
from sendwell.deliverability.service import cached_check
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem

_DOMAIN = r"^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})+\.?$"  # pydantic's regex engine has no look-around


class RecordOut(BaseModel):
    name: str
    type: str
    value: str


class FindingOut(BaseModel):
    id: str
    severity: str  # blocking | warning | info | pass
    message: str
    fix: RecordOut | None


class DomainCheckOut(BaseModel):
    domain: str
    checked_at: str
    ok: bool  # nothing blocks bulk sending
    complete: bool  # False: DNS did not answer for part of the check
    blocking: int
    facts: dict[str, Any]
    findings: list[FindingOut]


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/domain", tags=["domain"])

    @r.get("/check", response_model=DomainCheckOut, dependencies=[require("reports:read")],
           responses={400: {"description": "not a domain name, or SENDWELL_SENDING_IPS is invalid"}})
    def check(domain: Annotated[str | None, Query(max_length=253, pattern=_DOMAIN)] = None,
              fresh: bool = False) -> DomainCheckOut:
        """The sender domain's readiness for bulk mail, each finding with the DNS record that fixes it.

        A result younger than SENDWELL_DOMAIN_CHECK_TTL is returned as stored; `fresh=true` checks now.
        """
        settings = runtime.settings
        try:
            sending_ips(settings)
        except ValueError as exc:
            raise ApiProblem(400, str(exc), kind="invalid-setting") from None
        with transaction(runtime.factory) as session:
            report = cached_check(session, settings, domain=domain and domain.lower().rstrip(".").strip(),
                                  max_age=0 if fresh else None)
        return DomainCheckOut(**report.as_dict())

    return r
