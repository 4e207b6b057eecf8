"""Warm-up: each plan's day and, per provider group, today's allowance, used and remaining; read-only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sendwell.db.session import transaction
from sendwell.delivery.warmup import plan_status, waiting_by_campaign
from sendwell.web.admin.pages import Admin, Viewer


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("/warmup")
    def warmup(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            plans = plan_status(db)
            waiting = waiting_by_campaign(db)
        return admin.render(request, "warmup.html", user, plans=plans, waiting=waiting)

    return r
