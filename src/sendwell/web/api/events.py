"""/events: read the event log; post engagement from a website or CRM (never an opt-out)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sendwell.contacts.records import find_contact
from sendwell.db.session import transaction
from sendwell.insight.engagement import list_events, record_engagement
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem
from sendwell.web.api.schemas import MAX_ID, NO_NUL, After, Limit, Page, When, bounded, page_of

DetailKey = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
DetailValue = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]


class EngagementIn(BaseModel):
    """Name the contact by `contact_id` or by `email`."""

    model_config = ConfigDict(extra="forbid")

    # Only positive signals: opt-outs go through POST /contacts/{id}/unsubscribe.
    kind: Literal["clicked", "replied", "engaged"]
    contact_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    email: str | None = bounded(320, default=None, json_schema_extra={"format": "email"})
    campaign_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    occurred_at: When | None = None
    source: str = bounded(30, default="api", min_length=1, description="e.g. `website`, `crm`")
    data: dict[DetailKey, DetailValue] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _one_contact(self) -> EngagementIn:
        if (self.contact_id is None) == (self.email is None):
            raise ValueError("give exactly one of contact_id and email")
        return self


class EventOut(BaseModel):
    id: int
    kind: str
    contact_id: int | None
    campaign_id: int | None
    send_id: int | None
    method: str
    data: dict[str, Any]
    occurred_at: datetime


def _out(event: Any) -> EventOut:
    return EventOut(id=event.id, kind=event.kind, contact_id=event.contact_id, campaign_id=event.campaign_id,
                    send_id=event.send_id, method=event.method, data=dict(event.data or {}),
                    occurred_at=event.occurred_at)


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/events", tags=["events"])

    @r.get("", response_model=Page[EventOut], dependencies=[require("events:read")])
    def get_events(
        after: After = 0, limit: Limit = 50,
        kind: Annotated[str | None, Query(max_length=30, pattern=NO_NUL, description="e.g. unsubscribed, bounced, clicked")] = None,
        contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    ) -> Page[EventOut]:
        with transaction(runtime.factory) as session:
            rows = list_events(session, kind=kind, contact_id=contact_id, campaign_id=campaign_id,
                               after=after, limit=limit)
            return page_of([_out(e) for e in rows], limit)

    @r.post("", status_code=201, response_model=EventOut, dependencies=[require("events:write")],
            responses={404: {"description": "no such contact"}})
    def post_engagement(body: EngagementIn) -> EventOut:
        """Record engagement (`clicked`, `replied`, `engaged`); sets the contact's last_engaged_at."""
        with transaction(runtime.factory) as session:
            contact_id = body.contact_id
            if body.email is not None:
                contact = find_contact(session, pepper=runtime.settings.pepper, email=body.email)
                if contact is None:
                    raise ApiProblem(404, "no contact with this address", kind="not-found")
                contact_id = contact.id
            assert contact_id is not None
            event = record_engagement(session, contact_id=contact_id, kind=body.kind, campaign_id=body.campaign_id,
                                      occurred_at=body.occurred_at, source=body.source, data=body.data)
            if event is None:
                raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
            return _out(event)

    return r
