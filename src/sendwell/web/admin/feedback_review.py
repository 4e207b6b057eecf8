"""Feedback review: bounces and complaints that named no mail we sent, listed newest first; read-only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from sendwell.db.session import transaction
from sendwell.feedback.review import get_review, list_reviews
from sendwell.web.admin.pages import Admin, Viewer

PAGE = 50


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("/review")
    def reviews(request: Request, before: int | None = Query(default=None, ge=1, le=2**63 - 1),
                user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            rows = list_reviews(db, before=before, limit=PAGE)
            items = [{"id": row.id, "received_at": row.received_at, "source": row.source, "category": row.category,
                      "recipients": row.recipients, "status": row.status, "reason": row.reason, "why": row.why}
                     for row in rows]
        older = items[-1]["id"] if len(items) == PAGE else None
        return admin.render(request, "feedback_review.html", user, items=items, older=older)

    @r.get("/review/{review_id}")
    def review(request: Request, review_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            row = get_review(db, review_id=review_id) if 0 < review_id < 2**63 else None
            if row is None:
                return admin.render(request, "not_found.html", user, status=404)
            item = {"id": row.id, "received_at": row.received_at, "source": row.source, "kind": row.kind,
                    "category": row.category, "recipients": row.recipients, "status": row.status,
                    "reason": row.reason, "why": row.why, "raw": row.raw, "raw_size": row.raw_size}
        return admin.render(request, "feedback_review_item.html", user, item=item)

    return r
