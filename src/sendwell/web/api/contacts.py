"""/contacts: create, read, update, upsert, bulk upsert, list by segment, consents, unsubscribe, erase."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sendwell.contacts import records as contacts
from sendwell.contacts.fields import normalise_email
from sendwell.contacts.service import ErasureResult, erase_contact
from sendwell.db.models import ConsentKind, Contact, Stage
from sendwell.db.session import transaction
from sendwell.optout.gate import hand_off_window, wait_for_hand_off
from sendwell.optout.service import unsubscribe_contact
from sendwell.runtime import Runtime
from sendwell.segments import service as segments
from sendwell.segments.expression import SegmentError
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import NO_NUL, After, ContactId, Limit, Page, When, bounded, page_of

Tag = Annotated[str, Field(max_length=100, pattern=NO_NUL)]
CustomKey = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
CustomValue = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
LANGUAGE = r"^([A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*)?$"
MAX_BULK = 1000


class ContactFields(BaseModel):
    """The settable fields; only those sent are changed. `stage` also accepts the import's aliases."""

    model_config = ConfigDict(extra="forbid")

    first_name: str = bounded(200, default="")
    last_name: str = bounded(200, default="")
    company: str = bounded(300, default="")
    job_title: str = bounded(200, default="")
    industry: str = bounded(100, default="")
    stage: Stage = Stage.NEW_LEAD
    country: str = bounded(100, default="", description="ISO code (DE) or a name in English, Chinese, German, French or Spanish")
    language: str = Field(default="en", max_length=35, pattern=LANGUAGE)
    timezone: str = bounded(64, default="")
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    custom: dict[CustomKey, CustomValue] = Field(default_factory=dict)


class ContactIn(ContactFields):
    email: str = bounded(320, json_schema_extra={"format": "email"})


class ContactOut(BaseModel):
    id: int
    email: str
    first_name: str
    last_name: str
    company: str
    job_title: str
    industry: str
    stage: str
    country: str
    region: str
    language: str
    timezone: str
    tags: list[str]
    custom: dict[str, Any]
    source: str
    paused_until: datetime | None
    last_engaged_at: datetime | None
    created_at: datetime
    updated_at: datetime
    suppressed: bool = Field(description="on the suppression list for all marketing (never mailed)")


class BulkItemOut(BaseModel):
    id: int
    email: str
    created: bool


class BulkOut(BaseModel):
    created: int
    updated: int
    items: list[BulkItemOut]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ConsentKind
    source: str = bounded(200, min_length=1, description="where and how consent was given, e.g. a form URL")
    obtained_at: When | None = None
    ip: str = bounded(64, default="")
    wording: str = bounded(10000, default="", description="the wording the person saw")


class ConsentOut(BaseModel):
    id: int
    contact_id: int
    kind: str
    source: str
    obtained_at: datetime
    ip: str
    wording: str
    expires_at: datetime | None
    withdrawn_at: datetime | None


class UnsubscribeOut(BaseModel):
    contact_id: int
    unsubscribed_at: datetime
    already_unsubscribed: bool


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = bounded(320, min_length=1, json_schema_extra={"format": "email"})


class ErasureOut(BaseModel):
    erased: bool = Field(description="false if no contact had this address (the suppression hash is still kept)")
    email_hash: str = Field(description="the peppered hash that stays on the suppression list")
    suppression_reason: str = Field(description="`erased`, or the earlier reason (an unsubscribe stays an unsubscribe)")
    events_scrubbed: int = Field(description="events kept for the statistics without the contact, IP, user agent or text")


def _erasure_out(result: ErasureResult) -> ErasureOut:
    return ErasureOut(erased=result.found, email_hash=result.email_hash,
                      suppression_reason=result.suppression_reason, events_scrubbed=result.events_scrubbed)


def contact_out(contact: Contact, suppressed: bool) -> ContactOut:
    return ContactOut(
        id=contact.id, email=contact.email, first_name=contact.first_name, last_name=contact.last_name,
        company=contact.company, job_title=contact.job_title, industry=contact.industry, stage=contact.stage,
        country=contact.country, region=contact.region, language=contact.language, timezone=contact.timezone,
        tags=list(contact.tags or []), custom=dict(contact.custom or {}), source=contact.source,
        paused_until=contact.paused_until, last_engaged_at=contact.last_engaged_at,
        created_at=contact.created_at, updated_at=contact.updated_at, suppressed=suppressed,
    )


def _outs(session: Any, rows: list[Contact]) -> list[ContactOut]:
    hit = contacts.suppressed_hashes(session, hashes=[c.email_hash for c in rows])
    return [contact_out(c, c.email_hash in hit) for c in rows]


def _fields(body: BaseModel) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True, exclude={"email"})
    if "stage" in data:
        data["stage"] = Stage(data["stage"]).value
    return data


def _contact_error(exc: contacts.ContactError) -> ApiProblem:
    if isinstance(exc, contacts.ContactExists):
        return ApiProblem(409, str(exc), kind="conflict", errors=[FieldError(field=exc.field, message=exc.message)])
    return invalid(exc.field, exc.message)


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/contacts", tags=["contacts"])

    @r.get("", response_model=Page[ContactOut], dependencies=[require("contacts:read")])
    def list_contacts(
        after: After = 0, limit: Limit = 50,
        segment: Annotated[str, Query(max_length=2000, pattern=NO_NUL,
                                      description="a segment expression, e.g. `region = eu and stage = prospect`")] = "",
    ) -> Page[ContactOut]:
        """Contacts in id order, optionally filtered by a segment expression."""
        try:
            with transaction(runtime.factory) as session:
                rows = segments.list_contacts(session, segment=segment, after=after, limit=limit)
                return page_of(_outs(session, rows), limit)
        except (SegmentError, RecursionError) as exc:
            raise invalid("query.segment", str(exc) if isinstance(exc, SegmentError) else "nested too deeply") from None

    @r.post("", status_code=201, response_model=ContactOut, dependencies=[require("contacts:write")],
            responses={409: {"description": "a contact with this address exists"}})
    def create_contact(body: ContactIn) -> ContactOut:
        """Create a contact (409 if the address is already stored; use /contacts/upsert to merge)."""
        try:
            with transaction(runtime.factory) as session:
                contact = contacts.create_contact(session, pepper=runtime.settings.pepper, email=body.email, fields=_fields(body))
                return _outs(session, [contact])[0]
        except contacts.ContactError as exc:
            raise _contact_error(exc) from None

    @r.post("/upsert", response_model=ContactOut, dependencies=[require("contacts:write")],
            responses={201: {"description": "created", "model": ContactOut}})
    def upsert_contact(body: ContactIn, response: Response) -> ContactOut:
        """Create the contact, or change the sent fields of the stored one (matched by address)."""
        try:
            with transaction(runtime.factory) as session:
                contact, created = contacts.upsert_contact(session, pepper=runtime.settings.pepper, email=body.email, fields=_fields(body))
                out = _outs(session, [contact])[0]
        except contacts.ContactError as exc:
            raise _contact_error(exc) from None
        response.status_code = 201 if created else 200
        return out

    @r.post("/bulk-upsert", response_model=BulkOut, dependencies=[require("contacts:write")])
    def bulk_upsert(body: Annotated[list[ContactIn], Body(max_length=MAX_BULK)]) -> BulkOut:
        """Upsert up to 1000 contacts at once: all or nothing; a 422 names every bad item's field."""
        try:
            with transaction(runtime.factory) as session:
                items = [dict(_fields(item), email=item.email) for item in body]
                results = contacts.upsert_contacts(session, pepper=runtime.settings.pepper, items=items)
                return BulkOut(
                    created=sum(1 for _, c in results if c), updated=sum(1 for _, c in results if not c),
                    items=[BulkItemOut(id=c.id, email=c.email, created=created) for c, created in results],
                )
        except contacts.BulkContactError as exc:
            errors = [FieldError(field=e.field, message=e.message) for e in exc.errors]
            raise ApiProblem(422, f"{len(errors)} invalid items; nothing was written", kind="validation",
                             errors=errors) from None

    @r.post("/erase", response_model=ErasureOut, dependencies=[require("contacts:erase")])
    def erase_by_address(body: EraseIn) -> ErasureOut:
        """Erase the person with this address (GDPR Art 17), stored or not: the address stays unmailable.

        A POST so the address stays out of URLs and access logs.
        """
        try:
            address = normalise_email(body.email)
        except ValueError as exc:
            raise invalid("email", f"{body.email!r} is not a valid address: {exc}") from None
        with transaction(runtime.factory) as session:
            return _erasure_out(erase_contact(session, email=address, pepper=runtime.settings.pepper))

    @r.get("/{contact_id}", response_model=ContactOut, dependencies=[require("contacts:read")],
           responses={404: {"description": "no such contact"}})
    def get_contact(contact_id: ContactId) -> ContactOut:
        with transaction(runtime.factory) as session:
            contact = contacts.get_contact(session, contact_id=contact_id)
            if contact is None:
                raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
            return _outs(session, [contact])[0]

    @r.patch("/{contact_id}", response_model=ContactOut, dependencies=[require("contacts:write")],
             responses={404: {"description": "no such contact"}})
    def update_contact(contact_id: ContactId, body: ContactFields) -> ContactOut:
        """Change the sent fields; the address is the contact's identity and cannot change."""
        try:
            with transaction(runtime.factory) as session:
                contact = contacts.update_contact(session, contact_id=contact_id, fields=_fields(body))
                if contact is None:
                    raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
                return _outs(session, [contact])[0]
        except contacts.ContactError as exc:
            raise _contact_error(exc) from None

    @r.delete("/{contact_id}", response_model=ErasureOut, dependencies=[require("contacts:erase")],
              responses={404: {"description": "no such contact"}})
    def erase(contact_id: ContactId) -> ErasureOut:
        """Erase the contact (GDPR Art 17): data deleted, the peppered hash kept on the suppression list."""
        with transaction(runtime.factory) as session:
            contact = contacts.get_contact(session, contact_id=contact_id)
            if contact is None:
                raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
            return _erasure_out(erase_contact(session, email=contact.email, pepper=runtime.settings.pepper))

    @r.post("/{contact_id}/unsubscribe", response_model=UnsubscribeOut, dependencies=[require("contacts:write")],
            responses={404: {"description": "no such contact"}})
    def unsubscribe(contact_id: ContactId, request: Request) -> UnsubscribeOut:
        """Opt the contact out of all marketing (method `api`), committed before the answer; idempotent."""
        with transaction(runtime.factory) as session:
            result = unsubscribe_contact(
                session, contact_id=contact_id, method="api",
                ip=request.client.host if request.client else "",
                user_agent=request.headers.get("user-agent", ""),
            )
        if result is None:
            raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
        if result.hand_off_pending:  # a mail to them is in an SMTP hand-off: answer after it (optout/gate.py)
            wait_for_hand_off(runtime.engine, contact_id, window=hand_off_window(runtime.settings.smtp_timeout),
                              stale_after=timedelta(seconds=runtime.settings.heartbeat_timeout))
        return UnsubscribeOut(contact_id=result.contact_id, unsubscribed_at=result.unsubscribed_at,
                              already_unsubscribed=not result.is_new)

    @r.get("/{contact_id}/consents", response_model=list[ConsentOut], dependencies=[require("contacts:read")],
           responses={404: {"description": "no such contact"}})
    def list_consents(contact_id: ContactId) -> list[ConsentOut]:
        """The contact's consent records, withdrawn ones included (they are the proof)."""
        with transaction(runtime.factory) as session:
            if contacts.get_contact(session, contact_id=contact_id) is None:
                raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
            return [ConsentOut.model_validate(c, from_attributes=True)
                    for c in contacts.list_consents(session, contact_id=contact_id)]

    @r.post("/{contact_id}/consents", status_code=201, response_model=ConsentOut,
            dependencies=[require("contacts:write")], responses={404: {"description": "no such contact"}})
    def add_consent(contact_id: ContactId, body: ConsentIn, request: Request) -> ConsentOut:
        """Record proof of consent (GDPR Art 7(1), CASL s13); implied kinds get their CASL expiry."""
        try:
            with transaction(runtime.factory) as session:
                consent = contacts.add_consent(
                    session, contact_id=contact_id, kind=body.kind.value, source=body.source,
                    obtained_at=body.obtained_at, ip=body.ip, wording=body.wording,
                )
                if consent is None:
                    raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
                return ConsentOut.model_validate(consent, from_attributes=True)
        except contacts.ContactError as exc:
            raise _contact_error(exc) from None

    return r
