"""/topics and /contacts/{id}/subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from sendwell.contacts import records as contacts
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import ContactId, bounded

SLUG = r"^[a-z0-9][a-z0-9-]{0,99}$"
Slug = Annotated[str, Path(pattern=SLUG, max_length=100)]


class TopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=SLUG, max_length=100, description="lower-case letters, digits and '-'")
    name: str = bounded(200, default="")
    description: str = bounded(2000, default="")


class TopicOut(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    created_at: datetime


class SubscriptionOut(BaseModel):
    topic: str
    status: str
    created_at: datetime
    updated_at: datetime


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(tags=["topics and subscriptions"])

    @r.get("/topics", response_model=list[TopicOut], dependencies=[require("contacts:read")])
    def list_topics() -> list[TopicOut]:
        with transaction(runtime.factory) as session:
            return [TopicOut.model_validate(t, from_attributes=True) for t in contacts.list_topics(session)]

    @r.post("/topics", status_code=201, response_model=TopicOut, dependencies=[require("contacts:write")],
            responses={409: {"description": "the slug is taken"}})
    def create_topic(body: TopicIn) -> TopicOut:
        try:
            with transaction(runtime.factory) as session:
                topic = contacts.create_topic(session, slug=body.slug, name=body.name, description=body.description)
                return TopicOut.model_validate(topic, from_attributes=True)
        except contacts.ContactExists as exc:
            raise ApiProblem(409, str(exc), kind="conflict", errors=[FieldError(field="slug", message=exc.message)]) from None
        except contacts.ContactError as exc:
            raise invalid(exc.field, exc.message) from None

    @r.get("/contacts/{contact_id}/subscriptions", response_model=list[SubscriptionOut],
           dependencies=[require("contacts:read")], responses={404: {"description": "no such contact"}})
    def list_subscriptions(contact_id: ContactId) -> list[SubscriptionOut]:
        with transaction(runtime.factory) as session:
            if contacts.get_contact(session, contact_id=contact_id) is None:
                raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
            return [SubscriptionOut(topic=t.slug, status=s.status, created_at=s.created_at, updated_at=s.updated_at)
                    for s, t in contacts.list_subscriptions(session, contact_id=contact_id)]

    @r.put("/contacts/{contact_id}/subscriptions/{topic}", response_model=SubscriptionOut,
           dependencies=[require("contacts:write")],
           responses={404: {"description": "no such contact or topic"},
                      409: {"description": "the person unsubscribed from this topic themselves"}})
    def subscribe(contact_id: ContactId, topic: Slug) -> SubscriptionOut:
        """Subscribe the contact to a topic (idempotent). Never undoes the person's own opt-out."""
        try:
            with transaction(runtime.factory) as session:
                sub = contacts.subscribe(session, contact_id=contact_id, topic=topic)
                if sub is None:
                    raise ApiProblem(404, f"no contact with id {contact_id}", kind="not-found")
                return SubscriptionOut(topic=topic, status=sub.status, created_at=sub.created_at,
                                       updated_at=sub.updated_at)
        except contacts.OptedOut as exc:
            raise ApiProblem(409, str(exc), kind="opted-out") from None
        except contacts.ContactError as exc:
            raise ApiProblem(404, str(exc), kind="not-found") from None

    return r
