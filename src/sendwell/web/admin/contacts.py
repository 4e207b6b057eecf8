"""Contacts: search and filters with paging, and one contact's timeline of consents, sends and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from sendwell.db.models import Campaign, Consent, Contact, Event, Send, Stage, Suppression
from sendwell.db.session import transaction
from sendwell.web.admin.pages import Admin, Viewer

PAGE_SIZE = 50


@dataclass(frozen=True)
class Moment:
    """One line of a contact's timeline."""

    at: datetime | None
    kind: str  # consent | withdrawn | send | event
    title: str
    detail: str = ""


def search_contacts(session: Session, *, q: str = "", stage: str = "", region: str = "", industry: str = "",
                    page: int = 1) -> tuple[list[Contact], int]:
    """A page of contacts matching the search text and filters, and how many match in all."""
    query = select(Contact)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        query = query.where(or_(func.lower(Contact.email).like(like), func.lower(Contact.first_name).like(like),
                                func.lower(Contact.last_name).like(like), func.lower(Contact.company).like(like)))
    for column, value in ((Contact.stage, stage), (Contact.region, region), (Contact.industry, industry)):
        if value:
            query = query.where(column == value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Contact.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
    return list(rows), total


def timeline(session: Session, *, contact: Contact) -> list[Moment]:
    """Consents, sends and events of a contact, newest first."""
    moments: list[Moment] = []
    for c in session.scalars(select(Consent).where(Consent.contact_id == contact.id)):
        moments.append(Moment(c.obtained_at, "consent", c.kind, c.source))
        if c.withdrawn_at:
            moments.append(Moment(c.withdrawn_at, "withdrawn", c.kind, c.source))
    sends = session.execute(select(Send, Campaign.name).join(Campaign, Campaign.id == Send.campaign_id)
                            .where(Send.contact_id == contact.id))
    for send, name in sends:
        moments.append(Moment(send.sent_at or send.updated_at, "send", name,
                              send.state + (f" ({send.skip_reason})" if send.skip_reason else "")))
    for e in session.scalars(select(Event).where(Event.contact_id == contact.id, Event.kind != "sent")):
        detail = ", ".join(f"{k}: {v}" for k, v in sorted((e.data or {}).items()) if isinstance(v, (str, int)))
        moments.append(Moment(e.occurred_at, "event", e.kind, " · ".join(x for x in (e.method, detail) if x)))
    return sorted(moments, key=lambda m: m.at.timestamp() if m.at else 0.0, reverse=True)


def _choices(session: Session, column: Any) -> list[str]:
    return [v for v in session.scalars(select(column).distinct().order_by(column)) if v]


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("/contacts")
    def contacts(request: Request, q: str = "", stage: str = "", region: str = "", industry: str = "", page: int = 1,
                 user: Viewer = Depends(viewer)) -> Response:
        page = max(1, page)
        with transaction(admin.runtime.factory) as db:
            rows, total = search_contacts(db, q=q[:200], stage=stage, region=region, industry=industry, page=page)
            regions, industries = _choices(db, Contact.region), _choices(db, Contact.industry)
            db.expunge_all()
        filters = {"q": q, "stage": stage, "region": region, "industry": industry}
        template = "contacts_rows.html" if request.headers.get("hx-request") else "contacts.html"
        return admin.render(request, template, user, contacts=rows, total=total, page=page,
                            pages=max(1, -(-total // PAGE_SIZE)), filters=filters, stages=[s.value for s in Stage],
                            regions=regions, industries=industries)

    @r.get("/contacts/{contact_id}")
    def contact(request: Request, contact_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            found = db.get(Contact, contact_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            moments = timeline(db, contact=found)
            suppressed = list(db.scalars(select(Suppression).where(Suppression.email_hash == found.email_hash)))
            db.expunge_all()
        return admin.render(request, "contact.html", user, contact=found, moments=moments, suppressions=suppressed)

    return r
