"""/api-events: an integration records a named event for a contact; sequences triggered by `api_event` enrol on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sendwell.contacts.records import find_contact
from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.sequences.service import record_api_event
from sendwell.web.api.problems import ApiProblem, FieldError
from sendwell.web.api.schemas import MAX_ID, NO_NUL, bounded

DataKey = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
DataValue = Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | int | float | bool


class ApiEventIn(BaseModel):
    """Name the contact by `contact` (its id) or by `email`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"email": "anna@importer.example", "name": "quote_requested", "data": {"product": "LED panel 60x60"}},
        {"contact": 42, "name": "order_placed", "data": {"order": "SO-1207", "amount": 1800}}]})

    contact: int | None = Field(default=None, ge=1, le=MAX_ID, description="the contact's id")
    email: str | None = bounded(320, default=None, json_schema_extra={"format": "email"})
    name: str = bounded(100, min_length=1, description="the event's name, as an `api_event` trigger names it")
    data: dict[DataKey, DataValue] = Field(default_factory=dict, max_length=50,
                                           description="details kept with the event")

    @field_validator("data")
    @classmethod
    def _no_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "name" in value:  # the event's own name is kept under that key
            raise ValueError("`name` is the event's name: give it outside data")
        return value

    @model_validator(mode="after")
    def _one_contact(self) -> ApiEventIn:
        if (self.contact is None) == (self.email is None):
            raise ValueError("give exactly one of contact and email")
        return self


class ApiEventOut(BaseModel):
    id: int = Field(description="the recorded event's id (GET /events?kind=api_event)")
    status: str = Field(description="always `accepted`: the next sequence scan enrols on it")


def _unknown(field: str, detail: str) -> ApiProblem:
    return ApiProblem(404, f"{field}: {detail}", kind="not-found", errors=[FieldError(field=field, message=detail)])


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(tags=["events"])

    @r.post("/api-events", status_code=202, response_model=ApiEventOut, dependencies=[require("events:write")],
            responses={404: {"description": "no contact has this id or address (the problem names the field)"}})
    def post_api_event(body: ApiEventIn) -> ApiEventOut:
        """Record a named event (kind `api_event`) for a contact: a quote request, an order, a trial started.
        Sequences whose trigger is `{kind: api_event, name: …}` enrol the contact on their next scan."""
        with transaction(runtime.factory) as session:
            if body.email is not None:
                found = find_contact(session, pepper=runtime.settings.pepper, email=body.email)
                if found is None:
                    raise _unknown("email", "no contact with this address")
                contact_id = found.id
            else:
                assert body.contact is not None
                if session.get(Contact, body.contact) is None:
                    raise _unknown("contact", f"no contact with id {body.contact}")
                contact_id = body.contact
            event = record_api_event(session, contact_id=contact_id, name=body.name, data=body.data)
            return ApiEventOut(id=event.id, status="accepted")

    return r
