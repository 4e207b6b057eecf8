"""Saved templates (list, edit in the mail editor, delete, start a campaign from one), the brand layout
(Settings → Brand, and its logo at /brand/logo/<version> for mail), and campaign clone / rename / delete /
archive."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import escape
from starlette.datastructures import UploadFile

from sendwell.campaigns import service as campaign_service
from sendwell.campaigns.service import CampaignError
from sendwell.content import brand as brand_service
from sendwell.content import templates as template_service
from sendwell.content.brand import Brand, BrandError
from sendwell.content.render import with_brand
from sendwell.content.templates import MailTemplateError
from sendwell.db.models import Campaign, MailTemplate
from sendwell.db.session import transaction
from sendwell.web.admin.campaigns import FIELDS, KINDS
from sendwell.web.admin.pages import Admin, Viewer, gettext_for

SAMPLE_BODY = ('<p style="color:#888">[…]</p><p style="border:1px dashed #9aa3b0;padding:24px;color:#555">'
               '&lt;campaign content&gt;</p><p style="color:#888">[…]</p>')
SAMPLE_PAGE = ('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
               '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#222">%s</body></html>')
TEMPLATE_LIMITS = {"name": template_service.MAX_NAME, "subject": template_service.MAX_SUBJECT,
                   "html": template_service.MAX_HTML}


def _template_values(form: Any) -> dict[str, str]:
    return {f: str(form.get(f, ""))[:limit] for f, limit in TEMPLATE_LIMITS.items()}


def _to_campaign(name: str, subject: str, html: str) -> dict[str, str]:
    """The new-campaign form's values, started from a template."""
    return dict.fromkeys(FIELDS, "") | {"name": name, "subject": subject, "html": html, "kind": "marketing"}


def router(admin: Admin) -> APIRouter:
    r = APIRouter()
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    async def marketer(request: Request) -> Viewer:
        return await admin.require(request, "marketer")

    async def only_admin(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    def not_found(request: Request, user: Viewer) -> Response:
        return admin.render(request, "not_found.html", user, status=404)

    # ---------------------------------------------------------------- saved templates
    @r.get("/admin/templates")
    def templates(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            rows = template_service.list_templates(db)
            db.expunge_all()
        return admin.render(request, "templates.html", user, templates=rows, starters=template_service.starters())

    @r.get("/admin/templates/new")
    def new_template(request: Request, user: Viewer = Depends(marketer)) -> Response:
        return admin.render(request, "template_edit.html", user, saved=None,
                            values={"name": "", "subject": "", "html": ""})

    @r.post("/admin/templates")
    async def create_template(request: Request, user: Viewer = Depends(marketer)) -> Response:
        values = _template_values(await request.form())
        try:
            with transaction(runtime.factory) as db:
                template_id = template_service.create_template(db, by=user.email, **values).id
        except MailTemplateError as exc:
            return admin.render(request, "template_edit.html", user, status=400, saved=None, values=values,
                                error=str(exc))
        return RedirectResponse(f"/admin/templates/{template_id}?saved=1", status_code=303)

    @r.post("/admin/campaigns/{campaign_id}/save-as-template")
    async def save_as_template(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        # A draft's editor sends its fields as they are on screen; otherwise the campaign as stored.
        form = await request.form()
        try:
            with transaction(runtime.factory) as db:
                campaign = db.get(Campaign, campaign_id)
                if campaign is None:
                    return not_found(request, user)
                values = _template_values(form) if form.get("html") else {
                    "name": campaign.name, "subject": campaign.subject, "html": campaign.html}
                template_id = template_service.create_template(db, by=user.email, **values).id
        except MailTemplateError:
            return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)
        return RedirectResponse(f"/admin/templates/{template_id}?saved=1", status_code=303)

    @r.get("/admin/templates/starter/{slug}")
    def use_starter(request: Request, slug: str, user: Viewer = Depends(marketer)) -> Response:
        try:
            starter = template_service.starter(slug)
        except MailTemplateError:
            return not_found(request, user)
        return admin.render(request, "campaign_new.html", user, kinds=KINDS,
                            values=_to_campaign(starter.name, starter.subject, starter.html))

    @r.get("/admin/templates/{template_id}")
    def edit_template(request: Request, template_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            template = db.get(MailTemplate, template_id)
            db.expunge_all()
        if template is None:
            return not_found(request, user)
        return admin.render(request, "template_edit.html", user, saved=template,
                            values={"name": template.name, "subject": template.subject, "html": template.html},
                            notice="saved" if request.query_params.get("saved") else "")

    @r.post("/admin/templates/{template_id}")
    async def save_template(request: Request, template_id: int, user: Viewer = Depends(marketer)) -> Response:
        values = _template_values(await request.form())
        try:
            with transaction(runtime.factory) as db:
                template = template_service.update_template(db, template_id=template_id, by=user.email, **values)
                db.expunge_all()
        except MailTemplateError as exc:
            with transaction(runtime.factory) as db:
                template = db.get(MailTemplate, template_id)
                db.expunge_all()
            if template is None:
                return not_found(request, user)
            return admin.render(request, "template_edit.html", user, status=400, saved=template, values=values,
                                error=str(exc))
        return RedirectResponse(f"/admin/templates/{template_id}?saved=1", status_code=303)

    @r.get("/admin/templates/{template_id}/use")
    def use_template(request: Request, template_id: int, user: Viewer = Depends(marketer)) -> Response:
        with transaction(runtime.factory) as db:
            template = db.get(MailTemplate, template_id)
            if template is None:
                return not_found(request, user)
            values = _to_campaign(template.name, template.subject, template.html)
        return admin.render(request, "campaign_new.html", user, kinds=KINDS, values=values)

    @r.get("/admin/templates/{template_id}/delete")
    def confirm_template_delete(request: Request, template_id: int, user: Viewer = Depends(marketer)) -> Response:
        with transaction(runtime.factory) as db:
            template = db.get(MailTemplate, template_id)
            db.expunge_all()
        if template is None:
            return not_found(request, user)
        return admin.render(request, "confirm_delete.html", user, what="template", name=template.name,
                            action=f"/admin/templates/{template_id}/delete", back=f"/admin/templates/{template_id}")

    @r.post("/admin/templates/{template_id}/delete")
    async def delete_template(request: Request, template_id: int, user: Viewer = Depends(marketer)) -> Response:
        try:
            with transaction(runtime.factory) as db:
                template_service.delete_template(db, template_id=template_id)
        except MailTemplateError:
            return not_found(request, user)
        return RedirectResponse("/admin/templates?deleted=1", status_code=303)

    # ---------------------------------------------------------------- brand layout
    def brand_page(request: Request, user: Viewer, *, status: int = 200, error: str = "", notice: str = "",
                   typed: dict[str, str] | None = None, params: dict[str, object] | None = None) -> Response:
        with transaction(runtime.factory) as db:
            layout = brand_service.get_layout(db)
            db.expunge_all()
        values = typed or {
            "colour": layout.colour if layout else "", "background": layout.background if layout else "",
            "header_html": layout.header_html if layout else "", "footer_html": layout.footer_html if layout else ""}
        logo = f"{brand_service.LOGO_PATH}{layout.logo_version}" if layout and layout.logo else ""
        # What a mail looks like with the stored layout (the logo from this server, not the public URL).
        body = SAMPLE_BODY.replace("campaign content", str(escape(gettext_for(user.language)("campaign content"))))
        sample = with_brand(body, Brand(logo_url=logo, colour=layout.colour, background=layout.background,
                                               header_html=layout.header_html, footer_html=layout.footer_html),
                            logo_alt=runtime.settings.company_name) if layout else ""
        return admin.render(request, "brand.html", user, status=status, values=values, logo=logo, error=error,
                            params=params or {}, notice=notice, sample=sample and SAMPLE_PAGE % sample, max_logo_kb=brand_service.MAX_LOGO_BYTES // 1024)

    @r.get("/admin/settings/brand")
    def brand(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        return brand_page(request, user, notice="saved" if request.query_params.get("saved") else "")

    @r.post("/admin/settings/brand")
    async def save_brand(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        form = await request.form()
        typed = {f: str(form.get(f, ""))[:brand_service.MAX_HTML_CHARS + 1]
                 for f in ("colour", "background", "header_html", "footer_html")}
        upload = form.get("logo")
        logo = await upload.read(brand_service.MAX_LOGO_BYTES + 1) if isinstance(upload, UploadFile) else b""
        try:
            with transaction(runtime.factory) as db:
                brand_service.save_layout(db, logo=logo or None, remove_logo=bool(form.get("remove_logo")),
                                          by=user.email, **typed)
        except BrandError as exc:
            return brand_page(request, user, status=400, error=exc.template, params=exc.params, typed=typed)
        return RedirectResponse("/admin/settings/brand?saved=1", status_code=303)

    @r.get("/brand/logo/{version}")
    def brand_logo(version: str) -> Response:
        # Public: mail clients load it from the base URL. The version only changes the URL.
        with transaction(runtime.factory) as db:
            found = brand_service.logo(db)
        if found is None:
            return Response(status_code=404)
        data, media_type, current = found
        cache = "public, max-age=31536000, immutable" if version == current else "public, max-age=3600"
        return Response(data, media_type=media_type, headers={"Cache-Control": cache,
                                                               "X-Content-Type-Options": "nosniff"})

    # ---------------------------------------------------------------- campaign clone, rename, delete, archive
    @r.post("/admin/campaigns/{campaign_id}/clone")
    async def clone(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        try:
            with transaction(runtime.factory) as db:
                copy_id = campaign_service.clone_campaign(db, campaign_id=campaign_id).id
        except CampaignError:
            return not_found(request, user)
        return RedirectResponse(f"/admin/campaigns/{copy_id}", status_code=303)

    @r.post("/admin/campaigns/{campaign_id}/rename")
    async def rename(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        name = str((await request.form()).get("name", ""))[:200]
        try:
            with transaction(runtime.factory) as db:
                campaign_service.rename_campaign(db, campaign_id=campaign_id, name=name)
        except CampaignError:  # no such campaign, or no name (the form requires one)
            return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)
        return RedirectResponse(f"/admin/campaigns/{campaign_id}?renamed=1", status_code=303)

    @r.get("/admin/campaigns/{campaign_id}/delete")
    def confirm_campaign_delete(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        with transaction(runtime.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            db.expunge_all()
        if campaign is None:
            return not_found(request, user)
        return admin.render(request, "confirm_delete.html", user, what="campaign", name=campaign.name,
                            status_text=campaign.status, deletable=campaign.status == "draft",
                            action=f"/admin/campaigns/{campaign_id}/delete", back=f"/admin/campaigns/{campaign_id}")

    @r.post("/admin/campaigns/{campaign_id}/delete")
    async def delete(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        try:
            with transaction(runtime.factory) as db:
                campaign_service.delete_campaign(db, campaign_id=campaign_id)
        except CampaignError:
            with transaction(runtime.factory) as db:
                campaign = db.get(Campaign, campaign_id)
                db.expunge_all()
            if campaign is None:
                return not_found(request, user)
            return admin.render(request, "confirm_delete.html", user, status=409, what="campaign",
                                name=campaign.name, status_text=campaign.status, deletable=False,
                                action=f"/admin/campaigns/{campaign_id}/delete",
                                back=f"/admin/campaigns/{campaign_id}")
        return RedirectResponse("/admin/campaigns?deleted=1", status_code=303)

    def archiver(archived: bool) -> Any:
        async def handler(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
            try:
                with transaction(runtime.factory) as db:
                    campaign_service.archive_campaign(db, campaign_id=campaign_id, archived=archived)
            except CampaignError:
                return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)
            # Archived: back to the list it has left; restored: back to the campaign.
            return RedirectResponse("/admin/campaigns" if archived else f"/admin/campaigns/{campaign_id}",
                                    status_code=303)

        handler.__name__ = "admin_archive_campaign" if archived else "admin_unarchive_campaign"
        return handler

    r.add_api_route("/admin/campaigns/{campaign_id}/archive", archiver(True), methods=["POST"])
    r.add_api_route("/admin/campaigns/{campaign_id}/unarchive", archiver(False), methods=["POST"])
    return r
