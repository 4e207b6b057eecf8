"""Deliverability / DMARC: per sending source, what the receivers' aggregate reports say; read-only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from sendwell.db.session import transaction
from sendwell.feedback.dmarc_store import PASS_TARGET, source_table
from sendwell.web.admin.pages import Admin, Viewer


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("/dmarc")
    def dmarc(request: Request, days: int = Query(default=30, ge=1, le=3660),
              user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            table = source_table(db, settings=runtime.settings, days=days)
        return admin.render(request, "dmarc.html", user, table=table, days=days, target=PASS_TARGET)

    return r
