"""Segments: saved rules with their live counts, and an editor that counts as you type."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from sendwell.db.session import transaction
from sendwell.segments.expression import SegmentError, reference
from sendwell.segments.service import count_segment, create_segment, delete_segment, get_segment, list_segments
from sendwell.web.admin.pages import Admin, Viewer
from sendwell.web.admin.problems import said


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/segments")

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    async def marketer(request: Request) -> Viewer:
        return await admin.require(request, "marketer")

    def live_count(expression: str) -> tuple[dict[str, int] | None, Any]:
        try:
            with transaction(admin.runtime.factory) as db:
                return count_segment(db, expression=expression), ""
        except SegmentError as exc:
            return None, said(exc)
        except RecursionError:
            return None, "nested too deeply"

    def segments_page(request: Request, user: Viewer, *, status: int = 200, name: str = "", expression: str = "",
                      error: Any = "", deleted: str = "") -> Response:
        with transaction(admin.runtime.factory) as db:
            rows = [(s.name, s.expression, count_segment(db, expression=s.expression), reference(s.name))
                    for s in list_segments(db)]
        count, count_error = live_count(expression) if expression else (None, "")
        return admin.render(request, "segments.html", user, status=status, segments=rows, name=name,
                            expression=expression, error=error, count=count, count_error=count_error,
                            deleted=deleted)

    @r.get("")
    def segments(request: Request, deleted: str = "", user: Viewer = Depends(viewer)) -> Response:
        return segments_page(request, user, deleted=deleted[:200])

    @r.get("/count")
    def count(request: Request, expression: str = "", user: Viewer = Depends(viewer)) -> Response:
        # A GET that only reads: htmx calls it as the rule is typed.
        result, error = live_count(expression[:2000])
        return admin.render(request, "segment_count.html", user, count=result, count_error=error)

    @r.post("")
    async def save(request: Request, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        name, expression = str(form.get("name", ""))[:200], str(form.get("expression", ""))[:2000]
        try:
            with transaction(admin.runtime.factory) as db:
                create_segment(db, name=name, expression=expression, replace=form.get("replace") == "1")
        except SegmentError as exc:
            return segments_page(request, user, status=400, name=name, expression=expression, error=said(exc))
        return RedirectResponse("/admin/segments", status_code=303)

    @r.get("/delete")
    def confirm_delete(request: Request, name: str = "", user: Viewer = Depends(marketer)) -> Response:
        # The Delete link of the list only asks; the POST of this page deletes.
        try:
            with transaction(admin.runtime.factory) as db:
                segment = get_segment(db, name=name[:200])
                name, expression = segment.name, segment.expression
        except SegmentError as exc:
            return segments_page(request, user, status=404, error=said(exc))
        return admin.render(request, "segment_delete.html", user, name=name, expression=expression)

    @r.post("/delete")
    async def delete(request: Request, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        name = str(form.get("name", ""))[:200]
        try:
            with transaction(admin.runtime.factory) as db:
                delete_segment(db, name=name)
        except SegmentError as exc:
            return segments_page(request, user, status=404, error=said(exc))
        return RedirectResponse("/admin/segments?deleted=" + quote(name.strip()), status_code=303)

    return r
