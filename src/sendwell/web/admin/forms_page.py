"""Forms: signup forms with double opt-in — list, create, edit, the embed snippet — the same service as `sendwell forms`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from sendwell.contacts.records import list_topics
from sendwell.db.session import transaction
from sendwell.i18n import SUPPORTED
from sendwell.signup import service
from sendwell.signup.embed import embed_snippet, field_label
from sendwell.web.admin.pages import Admin, Viewer
from sendwell.web.recipient.rendering import LANGUAGE_NAMES


def _definition(form: FormData) -> dict[str, Any]:
    """The service's keyword arguments from the create/edit form's fields."""
    custom = [c.strip() for c in str(form.get("custom_fields", "")).replace("\n", ",").split(",") if c.strip()]
    return {"name": str(form.get("name", "")), "language": str(form.get("language", "en")),
            "fields": [str(f) for f in form.getlist("field")] + custom,
            "topics": [str(t) for t in form.getlist("topic")],
            "consent_text": str(form.get("consent_text", ""))[:5000], "thanks_text": str(form.get("thanks_text", ""))[:5000]}


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/forms")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    def common(db: Any) -> dict[str, Any]:
        return {"topics_all": [(t.slug, t.name) for t in list_topics(db)],
                "standard_fields": [(key, field_label(key)) for key in service.FIELDS],
                "form_languages": [(code, LANGUAGE_NAMES[code]) for code in SUPPORTED],
                "base_url": runtime.settings.base_url}

    def list_page(request: Request, user: Viewer, *, status: int = 200, error: Any = None,
                  values: dict[str, Any] | None = None) -> Response:
        with transaction(runtime.factory) as db:
            counts = service.form_counts(db)
            rows = [service.describe(f, counts.get(f.id)) for f in service.list_forms(db)]
            ctx = common(db)
        return admin.render(request, "forms.html", user, status=status, forms=rows, error=error,
                            values=values or {}, **ctx)

    def edit_page(request: Request, user: Viewer, form_id: int, *, status: int = 200, error: Any = None,
                  saved: bool = False) -> Response:
        with transaction(runtime.factory) as db:
            try:
                form = service.get_form(db, form_id=form_id)
            except service.FormNotFound:
                return admin.render(request, "not_found.html", user, status=404)
            ctx = common(db)
            names = dict(ctx["topics_all"])
            data = service.describe(form, service.form_counts(db).get(form.id))
            snippet = embed_snippet(form, base_url=runtime.settings.base_url, topic_names=names)
        return admin.render(request, "forms_edit.html", user, status=status, form=data, snippet=snippet,
                            error=error, saved=saved, **ctx)

    @r.get("")
    def forms(request: Request, user: Viewer = Depends(viewer)) -> Response:
        return list_page(request, user)

    @r.post("")
    async def create(request: Request, user: Viewer = Depends(viewer)) -> Response:
        values = _definition(await request.form())
        try:
            with transaction(runtime.factory) as db:
                form_id = service.create_form(db, **values).id
        except service.SignupError as exc:
            return list_page(request, user, status=400, error=exc, values=values)
        return RedirectResponse(f"/admin/forms/{form_id}", status_code=303)

    @r.get("/{form_id}")
    def edit(request: Request, form_id: int, user: Viewer = Depends(viewer)) -> Response:
        return edit_page(request, user, form_id, saved=request.query_params.get("saved") == "1")

    @r.post("/{form_id}")
    async def save(request: Request, form_id: int, user: Viewer = Depends(viewer)) -> Response:
        values = _definition(await request.form())
        try:
            with transaction(runtime.factory) as db:
                service.update_form(db, form_id=form_id, **values)
        except service.FormNotFound:
            return admin.render(request, "not_found.html", user, status=404)
        except service.SignupError as exc:
            return edit_page(request, user, form_id, status=400, error=exc)
        # A consent text that changed is a new version; the old one stays as the proof of earlier signups.
        return RedirectResponse(f"/admin/forms/{form_id}?saved=1", status_code=303)

    return r
