"""Settings → Sender domain: the `sendwell domain check` findings and the DNS records to publish."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sendwell.db.session import transaction
from sendwell.deliverability.check import BLOCKING, INFO, PASS, WARNING, sending_ips
from sendwell.deliverability.service import cached_check, skip_message
from sendwell.web.admin.pages import Admin, Viewer


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/settings")
    runtime = admin.runtime

    async def administrator(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    def page(request: Request, user: Viewer, *, fresh: bool) -> Response:
        settings = runtime.settings
        try:
            sending_ips(settings)
        except ValueError as exc:
            return admin.render(request, "domain.html", user, status=409, error=str(exc), report=None,
                                gate_skipped="", settings=settings, severities=[])
        with transaction(runtime.factory) as db:
            # Shown as stored while younger than SENDWELL_DOMAIN_CHECK_TTL; "Check now" asks DNS again.
            report = cached_check(db, settings, max_age=0 if fresh else None)
        counts = [(s, len(report.of(s))) for s in (BLOCKING, WARNING, INFO, PASS)]
        return admin.render(request, "domain.html", user, report=report, error="", gate_skipped=skip_message(settings),
                            settings=settings, severities=counts)

    @r.get("/domain")
    def domain(request: Request, user: Viewer = Depends(administrator)) -> Response:
        return page(request, user, fresh=False)

    @r.post("/domain")
    def check_now(request: Request, user: Viewer = Depends(administrator)) -> Response:
        return page(request, user, fresh=True)

    return r
