"""/campaigns: create, list, status, send (plan + queue), pause, resume, cancel, and their sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.flows import start_sending
from sendwell.db.models import Campaign, CampaignKind, SendState, Topic
from sendwell.db.session import transaction
from sendwell.delivery import service as delivery
from sendwell.runtime import Runtime
from sendwell.segments.expression import SegmentError
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import After, CampaignId, Limit, Page, page_of, bounded
from sendwell.web.api.topics import SLUG

NOT_FOUND = {404: {"description": "no such campaign"}}
CONFLICT = {409: {"description": "the campaign is not in a state that allows this"}}


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = bounded(200, min_length=1)
    subject: str = bounded(500, min_length=1)
    html: str = bounded(1_000_000, min_length=1, description="sandboxed Jinja2; the compliance footer is added")
    text: str = bounded(1_000_000, default="")
    segment: str = bounded(2000, default="", description="segment expression; empty = every contact")
    topic: str | None = Field(default=None, pattern=SLUG, max_length=100)
    kind: CampaignKind = CampaignKind.MARKETING


class CampaignOut(BaseModel):
    id: int
    name: str
    subject: str
    kind: str
    status: str
    segment: str
    topic: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class StatusOut(BaseModel):
    id: int
    name: str
    kind: str
    status: str
    total: int
    states: dict[str, int] = Field(description="sends by state: planned, queued, sending, sent, deferred, failed, skipped")
    skipped: dict[str, int] = Field(description="skipped sends by reason (unsubscribed, no_consent, …)")
    queued_jobs: int | None = Field(default=None, description="jobs handed to the queue by this request (send only)")


class SendOut(BaseModel):
    id: int
    contact_id: int
    state: str
    skip_reason: str | None
    attempts: int
    retry_at: datetime | None
    sent_at: datetime | None
    message_id: str | None
    last_error: str | None
    updated_at: datetime


def _out(session: Any, campaign: Campaign) -> CampaignOut:
    topic = session.get(Topic, campaign.topic_id) if campaign.topic_id else None
    return CampaignOut(id=campaign.id, name=campaign.name, subject=campaign.subject, kind=campaign.kind,
                       status=campaign.status, segment=campaign.segment_expr, topic=topic.slug if topic else None,
                       created_at=campaign.created_at, started_at=campaign.started_at,
                       finished_at=campaign.finished_at)


def _existing(session: Any, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ApiProblem(404, f"no campaign with id {campaign_id}", kind="not-found")
    return campaign


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/campaigns", tags=["campaigns"])
    queue: list[Any] = []  # the queue port, made on first use

    def get_queue() -> Any:
        if not queue:
            from sendwell.worker.queue import Queue

            queue.append(Queue(runtime))
        return queue[0]

    @r.get("", response_model=Page[CampaignOut], dependencies=[require("campaigns:read")])
    def list_campaigns(after: After = 0, limit: Limit = 50) -> Page[CampaignOut]:
        with transaction(runtime.factory) as session:
            return page_of([_out(session, c) for c in delivery.list_campaigns(session, after=after, limit=limit)], limit)

    @r.post("", status_code=201, response_model=CampaignOut, dependencies=[require("campaigns:write")])
    def create_campaign(body: CampaignIn) -> CampaignOut:
        """Create a draft campaign (the same checks as `sendwell campaigns create`)."""
        try:
            with transaction(runtime.factory) as session:
                campaign = delivery.create_campaign(
                    session, settings=runtime.settings, name=body.name, subject=body.subject, html=body.html,
                    text=body.text, segment=body.segment, topic=body.topic, kind=body.kind.value,
                )
                return _out(session, campaign)
        except (SegmentError, RecursionError) as exc:
            raise invalid("segment", str(exc) if isinstance(exc, SegmentError) else "nested too deeply") from None
        except TemplateError as exc:
            raise invalid("html", str(exc)) from None
        except delivery.CampaignError as exc:
            field = "name" if "name" in str(exc) else "subject" if "subject" in str(exc) else "kind"
            raise invalid(field, str(exc)) from None

    @r.get("/{campaign_id}", response_model=StatusOut, dependencies=[require("campaigns:read")], responses=NOT_FOUND)
    def campaign_status(campaign_id: CampaignId) -> StatusOut:
        """The campaign's status with counts by send state and by skip reason."""
        with transaction(runtime.factory) as session:
            _existing(session, campaign_id)
            return StatusOut(**delivery.campaign_status(session, campaign_id=campaign_id))

    @r.post("/{campaign_id}/send", response_model=StatusOut, dependencies=[require("campaigns:write")],
            responses={**NOT_FOUND, **CONFLICT, 422: {"description": "the compliance lint blocks sending"}})
    def send_campaign(campaign_id: CampaignId) -> StatusOut:
        """Lint (blocking findings → 422), plan (one send per contact, eligibility checked) and queue; safe to repeat."""
        try:
            with transaction(runtime.factory) as session:
                campaign = _existing(session, campaign_id)
                if campaign.status == "paused":
                    raise delivery.CampaignError(f"campaign {campaign_id} is paused: resume it instead")
                batches = start_sending(session, settings=runtime.settings, campaign_id=campaign_id)
        except (SegmentError, delivery.CampaignError) as exc:
            raise ApiProblem(409, str(exc), kind="conflict") from None
        except ComplianceError as exc:
            # A campaign that fails the compliance lint cannot be sent (COMPLIANCE.md rule numbers).
            raise ApiProblem(422, str(exc), kind="compliance", errors=[
                FieldError(field=f.code, message=f.line()) for f in exc.report.errors]) from None
        # After the commit: a worker that takes a job must find its sends queued.
        jobs = get_queue().enqueue_batches(campaign_id, batches)
        with transaction(runtime.factory) as session:
            return StatusOut(**delivery.campaign_status(session, campaign_id=campaign_id), queued_jobs=jobs)

    def control(action: str) -> Any:
        def handler(campaign_id: CampaignId) -> StatusOut:
            try:
                with transaction(runtime.factory) as session:
                    _existing(session, campaign_id)
                    delivery.set_campaign_status(session, campaign_id=campaign_id, action=action)
                    return StatusOut(**delivery.campaign_status(session, campaign_id=campaign_id))
            except delivery.CampaignError as exc:
                raise ApiProblem(409, str(exc), kind="conflict") from None

        handler.__name__ = f"{action}_campaign"
        handler.__doc__ = f"{action.capitalize()} the campaign (409 if its status does not allow it)."
        return handler

    for action in ("pause", "resume", "cancel"):
        r.add_api_route(f"/{{campaign_id}}/{action}", control(action), methods=["POST"], response_model=StatusOut,
                        dependencies=[require("campaigns:write")], responses={**NOT_FOUND, **CONFLICT},
                        name=f"{action}_campaign")

    @r.get("/{campaign_id}/sends", response_model=Page[SendOut], dependencies=[require("campaigns:read")],
           responses=NOT_FOUND)
    def list_sends(
        campaign_id: CampaignId, after: After = 0, limit: Limit = 50,
        state: Annotated[SendState | None, Query(description="only sends in this state")] = None,
    ) -> Page[SendOut]:
        with transaction(runtime.factory) as session:
            _existing(session, campaign_id)
            rows = delivery.list_sends(session, campaign_id=campaign_id, state=state.value if state else None,
                                       after=after, limit=limit)
            return page_of([SendOut.model_validate(s, from_attributes=True) for s in rows], limit)

    return r
