"""Contacts: search, filters and a saved segment with paging; one contact's timeline; add and edit;
unsubscribe and erase on the person's request; bulk changes; export as CSV or XLSX."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from sendwell.contacts import manage
from sendwell.contacts.fields import parse_date
from sendwell.contacts.lawful_basis import KINDS as CONSENT_KINDS
from sendwell.contacts.records import ContactError
from sendwell.contacts.vocabulary import INDUSTRY, STAGE, load_vocabulary
from sendwell.db.models import (
    Campaign,
    Consent,
    Contact,
    Event,
    Segment,
    Send,
    Suppression,
    Topic,
)
from sendwell.db.session import transaction
from sendwell.optout.service import unsubscribe_contact
from sendwell.segments.expression import SegmentError, Vocabularies, compile_segment
from sendwell.web.admin.labels import event_details
from sendwell.web.admin.pages import Admin, Viewer, gettext_for
from sendwell.web.admin.problems import said

PAGE_SIZE = 50
FILTERS = ("q", "stage", "region", "industry", "segment")
FORM_FIELDS = ("first_name", "last_name", "company", "job_title", "industry", "stage", "country", "language",
               "timezone")
MAX_REASON = 1000


@dataclass(frozen=True)
class Moment:
    """One line of a contact's timeline."""

    at: datetime | None
    kind: str  # consent | withdrawn | send | event
    title: str
    detail: str = ""
    method: str = ""
    reason: str = ""
    text: str = ""  # the person's own words
    category: str = ""  # a bounce's or complaint's feedback category
    skip: str = ""


def contact_filter(session: Session, filters: dict[str, str]) -> ColumnElement[bool]:
    """The WHERE clause of the search text, the filters and a saved segment (by id); SegmentError."""
    clauses: list[ColumnElement[bool]] = []
    q = filters.get("q", "").strip().lower()[:200]
    if q:
        like = f"%{q}%"
        clauses.append(or_(func.lower(Contact.email).like(like), func.lower(Contact.first_name).like(like),
                           func.lower(Contact.last_name).like(like), func.lower(Contact.company).like(like)))
    for column, key in ((Contact.stage, "stage"), (Contact.region, "region"), (Contact.industry, "industry")):
        if filters.get(key):
            clauses.append(column == filters[key])
    segment_id = filters.get("segment", "")
    if segment_id:
        segment = session.get(Segment, int(segment_id)) if segment_id.isdigit() else None
        if segment is None:
            raise SegmentError("no such saved segment")
        clauses.append(compile_segment(segment.expression, now=datetime.now(timezone.utc),
                                       vocabularies=Vocabularies.from_session(session)))
    return and_(*clauses) if clauses else Contact.id.is_not(None)


def search_contacts(session: Session, *, q: str = "", stage: str = "", region: str = "", industry: str = "",
                    segment: str = "", page: int = 1) -> tuple[list[Contact], int]:
    """A page of contacts matching the search text, filters and segment, and how many match in all."""
    where = contact_filter(session, {"q": q, "stage": stage, "region": region, "industry": industry,
                                     "segment": segment})
    total = session.scalar(select(func.count()).select_from(Contact).where(where)) or 0
    rows = session.scalars(select(Contact).where(where).order_by(Contact.id.desc())
                           .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
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
        moments.append(Moment(send.sent_at or send.updated_at, "send", name, send.state, skip=send.skip_reason or ""))
    for e in session.scalars(select(Event).where(Event.contact_id == contact.id, Event.kind != "sent")):
        moments.append(Moment(e.occurred_at, "event", e.kind, method=e.method or "", **event_details(e.data)))
    return sorted(moments, key=lambda m: m.at.timestamp() if m.at else 0.0, reverse=True)


def _choices(session: Session, column: Any) -> list[str]:
    return [v for v in session.scalars(select(column).distinct().order_by(column)) if v]


def _filters_of(source: Any) -> dict[str, str]:
    return {key: str(source.get(key, "") or "")[:200] for key in FILTERS}


def _form_fields(form: Any) -> dict[str, Any]:
    """The contact fields of the add/edit form; tags are comma-separated (either comma)."""
    fields: dict[str, Any] = {key: str(form.get(key, "")).strip()[:300] for key in FORM_FIELDS}
    tags = str(form.get("tags", "")).replace("，", ",")
    fields["tags"] = [t.strip()[:100] for t in tags.split(",") if t.strip()]
    return fields


def _topic_ids(form: Any) -> list[int]:
    return [int(v) for v in form.getlist("topic") if str(v).isdigit()]


def _reason(form: Any) -> str:
    return str(form.get("reason", "")).strip()[:MAX_REASON]


def blank_boxes(session: Session, chosen: set[int]) -> list[manage.TopicBox]:
    """The topic boxes of the add form (a new contact has no opt-out yet), ticked as chosen."""
    return [manage.TopicBox(t.id, t.slug, t.name, t.id in chosen)
            for t in session.scalars(select(Topic).order_by(Topic.name))]


def _error_text(exc: ContactError, language: str) -> str:
    """A contact error in the reader's language when it is a template with values, else as raised."""
    return gettext_for(language)(exc.template, **exc.params) if exc.template else exc.message


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    async def marketer(request: Request) -> Viewer:
        return await admin.require(request, "marketer")

    async def admin_role(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    def vocabularies(db: Session) -> dict[str, list[str]]:
        return {"stages": load_vocabulary(db, STAGE).values, "industries": load_vocabulary(db, INDUSTRY).values}

    @r.get("/contacts")
    def contacts(request: Request, page: int = 1, user: Viewer = Depends(viewer)) -> Response:
        page = max(1, page)
        filters = _filters_of(request.query_params)
        error = ""
        with transaction(admin.runtime.factory) as db:
            try:
                rows, total = search_contacts(db, page=page, **filters)
            except SegmentError as exc:
                rows, total, error = [], 0, said(exc)
            regions, industries = _choices(db, Contact.region), _choices(db, Contact.industry)
            segments = [(s.id, s.name) for s in db.scalars(select(Segment).order_by(Segment.name))]
            topics = [(t.slug, t.name) for t in db.scalars(select(Topic).order_by(Topic.name))]
            stages = vocabularies(db)["stages"]
            db.expunge_all()
        template = "contacts_rows.html" if request.headers.get("hx-request") else "contacts.html"
        return admin.render(request, template, user, contacts=rows, total=total, page=page,
                            pages=max(1, -(-total // PAGE_SIZE)), filters=filters, stages=stages,
                            regions=regions, industries=industries, segments=segments, topics=topics,
                            query=urlencode({k: v for k, v in filters.items() if v}), error=error,
                            done=request.query_params.get("done", ""))

    @r.get("/contacts/export")
    def export(request: Request, fmt: str = "csv", user: Viewer = Depends(marketer)) -> Response:
        """The contacts of the filter or segment, opt-outs left out (rule 17), as a download."""
        if fmt not in ("csv", "xlsx"):
            return admin.render(request, "not_found.html", user, status=404)
        filters = _filters_of(request.query_params)
        with transaction(admin.runtime.factory) as db:
            try:
                contact_filter(db, filters)
            except SegmentError as exc:
                return admin.render(request, "not_found.html", user, status=404, message=str(exc))
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
        name = f"contacts-{stamp}.{fmt}"
        if fmt == "csv":
            body, media = _csv_stream(admin, filters), "text/csv; charset=utf-8"
        else:
            body = _xlsx_stream(admin, filters)
            media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return StreamingResponse(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"})

    # ------------------------------------------------------------------ add and edit
    def form_page(request: Request, user: Viewer, *, contact: Contact | None, values: dict[str, Any],
                  boxes: list[manage.TopicBox], error: str = "", status: int = 200, refused: list[str] = ()
                  ) -> Response:
        with transaction(admin.runtime.factory) as db:
            vocab = vocabularies(db)
        return admin.render(request, "contact_form.html", user, status=status, contact=contact, values=values,
                            boxes=boxes, error=error, refused=list(refused), consent_kinds=CONSENT_KINDS,
                            consent_sources=manage.CONSENT_SOURCES, **vocab)

    @r.get("/contacts/new")
    def new_contact(request: Request, user: Viewer = Depends(marketer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            boxes = blank_boxes(db, set())
        return form_page(request, user, contact=None, values={"language": "en", "stage": "new_lead"}, boxes=boxes)

    @r.post("/contacts/new")
    async def add_contact(request: Request, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        fields = _form_fields(form)
        values = dict(fields, tags=", ".join(fields["tags"]), email=str(form.get("email", "")).strip()[:320],
                      **{k: str(form.get(k, ""))[:1000] for k in ("consent", "consent_source", "consent_date",
                                                                   "wording")})
        try:
            when = parse_date(values["consent_date"]) if values["consent_date"].strip() else None
            with transaction(admin.runtime.factory) as db:
                contact = manage.add_contact(
                    db, pepper=admin.runtime.settings.pepper, email=values["email"], fields=fields, by=user.email,
                    consent=values["consent"], consent_source=values["consent_source"] or "web_form",
                    consent_date=when, wording=values["wording"], topics=_topic_ids(form))
                contact_id = contact.id
        except (ContactError, ValueError) as exc:
            with transaction(admin.runtime.factory) as db:
                boxes = blank_boxes(db, set(_topic_ids(form)))
            message = _error_text(exc, user.language) if isinstance(exc, ContactError) else str(exc)
            return form_page(request, user, contact=None, values=values, boxes=boxes, error=message, status=400)
        return RedirectResponse(f"/admin/contacts/{contact_id}?done=added", status_code=303)

    def edit_values(contact: Contact) -> dict[str, Any]:
        return {**{k: getattr(contact, k) or "" for k in FORM_FIELDS}, "tags": ", ".join(contact.tags or []),
                "email": contact.email}

    @r.get("/contacts/{contact_id}/edit")
    def edit_form(request: Request, contact_id: int, user: Viewer = Depends(marketer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            found = db.get(Contact, contact_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            boxes = manage.topic_boxes(db, contact_id=contact_id)
            values = edit_values(found)
            db.expunge_all()
        return form_page(request, user, contact=found, values=values, boxes=boxes)

    @r.post("/contacts/{contact_id}/edit")
    async def edit(request: Request, contact_id: int, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        fields = _form_fields(form)
        try:
            with transaction(admin.runtime.factory) as db:
                result = manage.edit_contact(db, contact_id=contact_id, fields=fields, by=user.email,
                                             topics=_topic_ids(form))
                if result is None:
                    return admin.render(request, "not_found.html", user, status=404)
                refused = result.refused_topics
                if refused:
                    boxes, values = manage.topic_boxes(db, contact_id=contact_id), edit_values(result.contact)
                    found = result.contact
                    db.expunge_all()
        except ContactError as exc:
            with transaction(admin.runtime.factory) as db:
                found = db.get(Contact, contact_id)
                boxes = manage.topic_boxes(db, contact_id=contact_id)
                db.expunge_all()
            values = dict(fields, tags=", ".join(fields["tags"]), email=found.email if found else "")
            return form_page(request, user, contact=found, values=values, boxes=boxes, error=_error_text(exc, user.language),
                             status=400)
        if refused:
            return form_page(request, user, contact=found, values=values, boxes=boxes, refused=refused)
        return RedirectResponse(f"/admin/contacts/{contact_id}?done=saved", status_code=303)

    # ------------------------------------------------------------------ on the person's request
    def confirm_page(request: Request, user: Viewer, contact_id: int, action: str, *, error: str = "",
                     status: int = 200, reason: str = "", choice: str = "all") -> Response:
        with transaction(admin.runtime.factory) as db:
            found = db.get(Contact, contact_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            boxes = [b for b in manage.topic_boxes(db, contact_id=contact_id) if b.subscribed]
            db.expunge_all()
        return admin.render(request, "contact_confirm.html", user, status=status, contact=found, action=action,
                            boxes=boxes, error=error, reason=reason, choice=choice)

    @r.get("/contacts/{contact_id}/unsubscribe")
    @r.get("/contacts/{contact_id}/erase")
    async def confirm_form(request: Request, contact_id: int) -> Response:
        """The confirmation step of an opt-out (marketer) or an erasure (admin) on the person's request."""
        action = request.url.path.rsplit("/", 1)[1]
        user = await admin.require(request, "admin" if action == "erase" else "marketer")
        return confirm_page(request, user, contact_id, action)

    @r.post("/contacts/{contact_id}/unsubscribe")
    async def unsubscribe(request: Request, contact_id: int, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        reason, choice = _reason(form), str(form.get("scope", "all"))
        if not reason:
            return confirm_page(request, user, contact_id, "unsubscribe", status=400, choice=choice,
                                error="Write down how the person asked (the reason is kept in the audit log).")
        with transaction(admin.runtime.factory) as db:
            if choice == "all":
                found = unsubscribe_contact(db, contact_id=contact_id, method="admin",
                                            data={"admin": user.email, "reason": reason}) is not None
            else:
                found = choice.isdigit() and manage.unsubscribe_from_topic(
                    db, contact_id=contact_id, topic_id=int(choice), by=user.email, reason=reason)
        if not found:
            return admin.render(request, "not_found.html", user, status=404)
        return RedirectResponse(f"/admin/contacts/{contact_id}?done=unsubscribed", status_code=303)

    @r.post("/contacts/{contact_id}/erase")
    async def erase(request: Request, contact_id: int, user: Viewer = Depends(admin_role)) -> Response:
        form = await request.form()
        reason = _reason(form)
        with transaction(admin.runtime.factory) as db:
            found = db.get(Contact, contact_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            typed = str(form.get("confirm_email", "")).strip().lower()
            if not reason or typed != found.email.lower():
                error = "Type the address exactly and the reason, to confirm."
            else:
                error = ""
                manage.erase_on_request(db, contact_id=contact_id, pepper=admin.runtime.settings.pepper,
                                        by=user.email, reason=reason)
        if error:
            return confirm_page(request, user, contact_id, "erase", status=400, error=error, reason=reason)
        return RedirectResponse("/admin/contacts?done=erased", status_code=303)

    @r.get("/contacts/{contact_id}")
    def contact(request: Request, contact_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            found = db.get(Contact, contact_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            moments = timeline(db, contact=found)
            suppressed = list(db.scalars(select(Suppression).where(Suppression.email_hash == found.email_hash)))
            boxes = manage.topic_boxes(db, contact_id=contact_id)
            db.expunge_all()
        return admin.render(request, "contact.html", user, contact=found, moments=moments, suppressions=suppressed,
                            boxes=boxes, done=request.query_params.get("done", ""))

    # ------------------------------------------------------------------ many contacts
    @r.post("/contacts/bulk")
    async def bulk(request: Request, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()
        filters = _filters_of(form)
        action, value = str(form.get("action", "")), str(form.get("value", "")).strip()[:100]
        ticked = [int(v) for v in form.getlist("id") if str(v).isdigit()]
        everything = form.get("scope") == "all"
        kept = {k: v for k, v in filters.items() if v}
        back = "/admin/contacts?" + urlencode(kept)
        error = ""
        with transaction(admin.runtime.factory) as db:
            try:
                ids = manage.chosen_ids(db, where=contact_filter(db, filters) if everything else None,
                                        ids=None if everything else ticked)
            except SegmentError as exc:
                ids, error = [], said(exc)
            if action not in manage.BULK_ACTIONS:
                error = "Choose what to do with the contacts."
            elif not ids and not error:
                error = "Tick at least one contact, or choose all that match."
            if not error and form.get("confirm") == "1":
                try:
                    result = manage.bulk_change(db, ids=ids, action=action, value=value, by=user.email)
                except ContactError as exc:
                    error = _error_text(exc, user.language)
                else:
                    done = {"done": "bulk", "changed": result.changed, "skipped": result.skipped}
                    return RedirectResponse("/admin/contacts?" + urlencode(kept | done), status_code=303)
        return admin.render(request, "contacts_bulk.html", user, status=400 if error else 200, error=error,
                            count=len(ids), action=action, value=value, ids=ids if not everything else [],
                            everything=everything, filters=filters, back=back)

    return r


def _rows(admin: Admin, filters: dict[str, str]) -> Iterator[list[str]]:
    with transaction(admin.runtime.factory) as db:
        yield from manage.export_rows(db, where=contact_filter(db, filters))


def _csv_stream(admin: Admin, filters: dict[str, str]) -> Iterator[bytes]:
    """UTF-8 with a BOM (Excel then opens Chinese names right), a few hundred rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff".encode()
    for n, row in enumerate(_rows(admin, filters)):
        writer.writerow(row)
        if n % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _xlsx_stream(admin: Admin, filters: dict[str, str]) -> Iterator[bytes]:
    """openpyxl's write-only workbook into a temporary file (a zip is written whole), then sent in chunks."""
    from openpyxl import Workbook  # deferred: heavy, and only this download needs it
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    with tempfile.TemporaryFile() as tmp:
        book = Workbook(write_only=True)
        sheet = book.create_sheet("contacts")
        for row in _rows(admin, filters):
            sheet.append([ILLEGAL_CHARACTERS_RE.sub("", cell) for cell in row])
        book.save(tmp)
        tmp.seek(0)
        while chunk := tmp.read(1 << 16):
            yield chunk
