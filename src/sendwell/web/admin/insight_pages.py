"""Unsubscribes (reasons, breakdowns, audit log), feedback (bounces, complaints), the capture outbox, settings
(the sender identity and frequency policy editable: sendwell.settings_edit)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.content.service import ContentError, preview_campaign
from sendwell.db.models import Campaign, Contact, Event
from sendwell.db.session import transaction
from sendwell.delivery.dkim import load_signer
from sendwell.insight.clicks import annotate_links, link_labels
from sendwell.insight.rates import REASONS, over_time, reasons
from sendwell.insight.report import REPORT_DIMENSIONS, build_report
from sendwell.insight.rollup import dashboard_breakdown, merged_by_value
from sendwell.settings_edit import (
    EDITABLE,
    IDENTITY,
    POLICY,
    SettingsError,
    editable_values,
    stored_values,
    update_settings,
)
from sendwell.web.admin.charts import daily_chart
from sendwell.web.admin.labels import event_details
from sendwell.web.admin.pages import Admin, Viewer, gettext_for

LOG_SIZE = 100
OUTBOX_SIZE = 100
_EML = re.compile(r"[A-Za-z0-9_.-]+\.eml")


def event_log(session: Session, *, kinds: tuple[str, ...], limit: int = LOG_SIZE) -> list[dict[str, Any]]:
    """The newest events of these kinds with the contact's address and the campaign's name."""
    rows = session.execute(
        select(Event, Contact.email, Campaign.name)
        .outerjoin(Contact, Contact.id == Event.contact_id)
        .outerjoin(Campaign, Campaign.id == Event.campaign_id)
        .where(Event.kind.in_(kinds)).order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit))
    return [{"at": e.occurred_at, "kind": e.kind, "method": e.method, "email": address or "", "campaign": name or "",
             "campaign_id": e.campaign_id, "contact_id": e.contact_id, "ip": e.ip,
             **event_details(e.data)}
            for e, address, name in rows]


def kind_counts(session: Session, *, kinds: tuple[str, ...]) -> dict[str, int]:
    return dict(session.execute(select(Event.kind, func.count()).where(Event.kind.in_(kinds)).group_by(Event.kind)).all())


def captured_mails(directory: Path, *, limit: int = OUTBOX_SIZE) -> list[dict[str, Any]]:
    """The newest mails the capture transport kept, with their headers."""
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    mails = []
    for path in files:
        with path.open("rb") as fh:
            message = email.message_from_binary_file(fh, policy=email.policy.default)
        mails.append({"name": path.name, "to": str(message.get("X-Envelope-To", message.get("To", ""))),
                      "subject": str(message.get("Subject", "")), "from": str(message.get("From", "")),
                      "at": datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)})
    return mails


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    async def only_admin(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    @r.get("/unsubscribes")
    def unsubscribes(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            by = {dim: [row.as_dict() for row in merged_by_value(dashboard_breakdown(db, dimension=dim))
                        if row.delivered or row.unsubscribed] for dim in REPORT_DIMENSIONS}
            methods: dict[str, int] = {}
            for row in by["region"]:
                for method, n in row["unsubscribed_by_method"].items():
                    methods[method] = methods.get(method, 0) + n
            context = {"reasons_all": reasons(db), "reasons_by_region": reasons(db, dimension="region"),
                       "reasons_by_stage": reasons(db, dimension="stage"), "by": by, "methods": methods,
                       "log": event_log(db, kinds=("unsubscribed", "resubscribed", "unsubscribe_reason")),
                       "reason_codes": REASONS, "daily": daily_chart(over_time(db), ("unsubscribed", "complained"),
                                            gettext_for(user.language))}
        return admin.render(request, "unsubscribes.html", user, **context)

    @r.get("/campaigns/{campaign_id}/links")
    def campaign_links(request: Request, campaign_id: int, sample: int = 0, user: Viewer = Depends(viewer)) -> Response:
        """The link report and the click map: the mail with each link's share of people's clicks beside it."""
        _ = gettext_for(user.language)
        with transaction(runtime.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            if campaign is None:
                return admin.render(request, "not_found.html", user, status=404)
            data = build_report(db, campaign_id=campaign_id)
            try:
                samples, error = preview_campaign(db, settings=runtime.settings, campaign_id=campaign_id), ""
            except ContentError as exc:
                samples, error = [], str(exc)
            db.expunge_all()
        shown = samples[sample] if 0 <= sample < len(samples) else None
        if shown and not shown.get("error"):
            # Links the rendering adds (the footer's website link) have their words only in the rendered mail.
            words = link_labels(shown["html"])
            for link in data["engagement"]["links"]:
                link["label"] = link["label"] or words.get(link["url"], "")
        badges = {link["url"]: (f"{link['share']:.0%}", _("%(n)s clicks by %(people)s people", n=link["people_total"],
                                                           people=link["people"]))
                  for link in data["engagement"]["links"]}
        click_map = annotate_links(shown["html"], badges) if shown and not shown.get("error") else ""
        return admin.render(request, "campaign_links.html", user, campaign=campaign, report=data,
                            engagement=data["engagement"], samples=samples, sample=sample, shown=shown,
                            click_map=click_map, error=error)

    @r.get("/feedback")
    def feedback(request: Request, user: Viewer = Depends(viewer)) -> Response:
        kinds = ("bounced", "complained", "auto_reply")
        with transaction(runtime.factory) as db:
            context = {"counts": kind_counts(db, kinds=kinds), "log": event_log(db, kinds=kinds)}
        return admin.render(request, "feedback.html", user, **context)

    @r.get("/outbox")
    def outbox(request: Request, user: Viewer = Depends(viewer)) -> Response:
        directory = runtime.settings.capture_dir
        return admin.render(request, "outbox.html", user, mails=captured_mails(directory), directory=directory,
                            capturing=runtime.settings.smtp_url == "capture")

    @r.get("/outbox/{name}")
    def outbox_mail(request: Request, name: str, user: Viewer = Depends(viewer)) -> Response:
        path = runtime.settings.capture_dir / name
        if not _EML.fullmatch(name) or not path.is_file():
            return admin.render(request, "not_found.html", user, status=404)
        # Shown as text only (escaped), never as HTML: captured mail is untrusted content.
        return admin.render(request, "outbox_mail.html", user, mail_name=name,
                            source=path.read_bytes()[:2_000_000].decode("utf-8", "replace"))

    @r.get("/settings")
    def settings_page(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        return render_settings(request, user)

    @r.post("/settings")
    async def save_settings(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        form = await request.form()
        changes = {name: str(form[name])[:2000] for name in EDITABLE if name in form}
        runtime.load_stored_settings()  # compare with what another machine may have saved since
        try:
            with transaction(runtime.factory) as db:
                new_settings, changed = update_settings(runtime.settings, changes, db, updated_by=user.email)
        except SettingsError as exc:
            return render_settings(request, user, status=400, error=str(exc), values=changes, bad=exc.field,
                                   error_message={"template": exc.template, "params": exc.params})
        runtime.replace_settings(new_settings)
        return render_settings(request, user, notice="saved" if changed else "unchanged")

    def render_settings(request: Request, user: Viewer, *, status: int = 200, error: str = "", notice: str = "",
                        values: dict[str, str] | None = None, bad: str = "",
                        error_message: dict[str, Any] | None = None) -> Response:
        runtime.load_stored_settings()  # saved on another machine since this process's last scan
        s = runtime.settings
        try:
            signer = load_signer(s)
            dkim_error = ""
        except ValueError as exc:
            signer, dkim_error = None, str(exc)
        records = [(x.selector, x.algorithm, x.dns_record()) for x in getattr(signer, "signers", (signer,)) if x]
        webhooks = [(_without_password(e.url), sorted(e.events) if e.events else []) for e in s.webhook_endpoints]
        with transaction(runtime.factory) as db:
            editable = {v.field: v for v in editable_values(s, stored_values(db))}
        typed = values or {}
        return admin.render(request, "settings.html", user, status=status, base_url=s.base_url, records=records, dkim_domain=s.dkim_domain, dkim_error=dkim_error, webhooks=webhooks,
                            reason_codes=REASONS, smtp=_without_password(s.smtp_url), error=error, notice=notice,
                            bad=bad, typed=typed, edit_identity=[editable[f] for f in IDENTITY],
                            edit_policy=[editable[f] for f in POLICY], error_message=error_message or {})

    return r


def _without_password(url: str) -> str:
    """`smtps://user:secret@host` → `smtps://user:•••@host`: the page never shows a secret."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:•••@", url)
