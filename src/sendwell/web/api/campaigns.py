"""/campaigns: create, list, status, lint, preview, send (plan + queue), schedule, pause, resume, cancel, and their sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from sendwell.access.service import allows
from sendwell.campaigns import service as campaign_service
from sendwell.campaigns.service import CampaignError
from sendwell.contacts.regions import REGIONS
from sendwell.content import service as content
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.db.models import ApiToken, Campaign, CampaignKind, SendState, Topic
from sendwell.db.session import transaction
from sendwell.delivery import progress as delivery_progress
from sendwell.flows import plan_preview, schedule_sending, start_sending
from sendwell.i18n import SUPPORTED as LANGUAGES
from sendwell.runtime import Runtime
from sendwell.segments.expression import SegmentError
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import MAX_ID, After, CampaignId, Limit, Page, bounded, page_of
from sendwell.web.api.topics import SLUG
from sendwell.worker.queue import Queue

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


class SequenceStepOut(BaseModel):
    """The sequence and mail step whose mails a campaign carries (such campaigns are made by the sequence)."""

    sequence_id: int
    sequence: str
    step: str


class CampaignOut(BaseModel):
    id: int
    name: str
    subject: str
    kind: str
    status: str
    segment: str
    topic: str | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    sequence: SequenceStepOut | None = Field(default=None, description="the sequence mail step this campaign sends")


class StatusOut(BaseModel):
    id: int
    name: str
    kind: str
    status: str
    scheduled_at: datetime | None = Field(default=None, description="when a scheduled campaign starts")
    total: int
    states: dict[str, int] = Field(description="sends by state: planned, queued, sending, sent, deferred, failed, skipped")
    skipped: dict[str, int] = Field(description="skipped sends by reason (unsubscribed, no_consent, …)")
    queued_jobs: int | None = Field(default=None, description="jobs handed to the queue by this request (send only)")


class PlanOut(BaseModel):
    """What a send would do now (`dry_run=true`); nothing was written or queued."""

    campaign_id: int
    as_of: datetime = Field(description="the time the plan was made for")
    blocked: bool = Field(description="true when an error finding would refuse the send (422 without dry_run)")
    contacts: int = Field(description="contacts the segment selects: one send each, to go or skipped")
    reachable: int | None = Field(description="the segment's count of contacts not suppressed and with a lawful "
                                              "basis (caps, pauses and topics not applied)")
    recipients: int = Field(description="contacts the campaign would reach: `now` plus every deferred one")
    now: int = Field(description="sends that would be queued at once")
    deferred: dict[str, int] = Field(description="sends that would wait, by reason: send_window, frequency_cap "
                                                 "(over-cap defer mode), warm_up (over today's allowance)")
    skipped: dict[str, int] = Field(description="contacts that would be skipped, by reason (no_consent, "
                                                "frequency_cap, unsubscribed, …; docs/policy.md)")
    skipped_total: int
    by_region: dict[str, int] = Field(description="recipients by region")
    by_language: dict[str, int] = Field(description="recipients by language")
    findings: list[FindingOut] = Field(description="compliance lint and sender-domain findings; errors block")


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="start time with its offset, in the future, e.g. 2026-12-01T09:00:00+08:00")


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


class FindingOut(BaseModel):
    code: str = Field(description="the lint rule id, e.g. `postal-address`, `unsubscribe-link`")
    severity: str = Field(description="`error` (compliance: blocks sending) or `warning` (readability)")
    blocking: bool
    rule: int | None = Field(description="the COMPLIANCE.md checklist row of a compliance finding")
    message: str
    samples: list[str] = Field(description="the region/language samples it was found in")


class LintOut(BaseModel):
    campaign_id: int
    ok: bool = Field(description="true when nothing blocks sending (warnings allowed)")
    errors: int
    warnings: int
    samples: list[str] = Field(description="the region/language labels rendered")
    rendered: int = Field(description="sample recipients rendered")
    findings: list[FindingOut]


class PreviewContactOut(BaseModel):
    id: int | None = Field(description="null for a synthetic stand-in")
    email: str
    region: str
    language: str
    country: str
    synthetic: bool
    consent_kind: str | None
    data_source: str


class PreviewOut(BaseModel):
    label: str = Field(description="region/language")
    contact: PreviewContactOut
    subject: str | None = None
    html: str | None = Field(default=None, description="as sent: CSS inlined, with the compliance footer")
    text: str | None = None
    size: int | None = Field(default=None, description="bytes of the whole message")
    error: str | None = Field(default=None, description="why this sample cannot be rendered")
    findings: list[FindingOut]


class PreviewsOut(BaseModel):
    campaign_id: int
    previews: list[PreviewOut]


def _finding(data: dict[str, Any]) -> FindingOut:
    return FindingOut(blocking=data["severity"] == "error", **data)


def _out(session: Any, campaign: Campaign, steps: dict[int, Any] | None = None) -> CampaignOut:
    topic = session.get(Topic, campaign.topic_id) if campaign.topic_id else None
    if steps is None:
        steps = campaign_service.sequence_steps(session, campaign_ids=[campaign.id])
    step = steps.get(campaign.id)
    return CampaignOut(id=campaign.id, name=campaign.name, subject=campaign.subject, kind=campaign.kind,
                       status=campaign.status, segment=campaign.segment_expr, topic=topic.slug if topic else None,
                       created_at=campaign.created_at, scheduled_at=campaign.scheduled_at, started_at=campaign.started_at,
                       finished_at=campaign.finished_at, sequence=SequenceStepOut(**step) if step else None)


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
            queue.append(Queue(runtime))
        return queue[0]

    @r.get("", response_model=Page[CampaignOut], dependencies=[require("campaigns:read")])
    def list_campaigns(
        after: After = 0, limit: Limit = 50,
        include_sequences: Annotated[bool, Query(description="also the campaigns of sequences' mail steps")] = False,
    ) -> Page[CampaignOut]:
        with transaction(runtime.factory) as session:
            rows = campaign_service.list_campaigns(session, after=after, limit=limit,
                                                   include_sequences=include_sequences)
            steps = campaign_service.sequence_steps(session, campaign_ids=[c.id for c in rows])
            return page_of([_out(session, c, steps) for c in rows], limit)

    @r.post("", status_code=201, response_model=CampaignOut, dependencies=[require("campaigns:write")])
    def create_campaign(body: CampaignIn) -> CampaignOut:
        """Create a draft campaign (the same checks as `sendwell campaigns create`)."""
        try:
            with transaction(runtime.factory) as session:
                campaign = campaign_service.create_campaign(
                    session, settings=runtime.settings, name=body.name, subject=body.subject, html=body.html,
                    text=body.text, segment=body.segment, topic=body.topic, kind=body.kind.value,
                )
                return _out(session, campaign)
        except (SegmentError, RecursionError) as exc:
            raise invalid("segment", str(exc) if isinstance(exc, SegmentError) else "nested too deeply") from None
        except TemplateError as exc:
            raise invalid("html", str(exc)) from None
        except CampaignError as exc:
            field = "name" if "name" in str(exc) else "subject" if "subject" in str(exc) else "kind"
            raise invalid(field, str(exc)) from None

    @r.get("/{campaign_id}", response_model=StatusOut, dependencies=[require("campaigns:read")], responses=NOT_FOUND)
    def campaign_status(campaign_id: CampaignId) -> StatusOut:
        """The campaign's status with counts by send state and by skip reason."""
        with transaction(runtime.factory) as session:
            _existing(session, campaign_id)
            return StatusOut(**delivery_progress.campaign_status(session, campaign_id=campaign_id))

    @r.post("/{campaign_id}/lint", response_model=LintOut, dependencies=[require("campaigns:read")],
            responses={**NOT_FOUND, 409: {"description": "the campaign's segment or template cannot be used"}})
    def lint_campaign(campaign_id: CampaignId) -> LintOut:
        """The compliance (blocking) and readability (warning) lint over the audience's samples; changes nothing."""
        try:
            with transaction(runtime.factory) as session:
                _existing(session, campaign_id)
                report = content.lint_campaign(session, settings=runtime.settings, campaign_id=campaign_id)
        except (SegmentError, RecursionError) as exc:
            raise ApiProblem(409, f"the campaign's segment cannot be evaluated: {exc}", kind="conflict") from None
        data = report.as_dict()
        return LintOut(**{**data, "campaign_id": campaign_id, "findings": [_finding(f) for f in data["findings"]]})

    @r.get("/{campaign_id}/preview", response_model=PreviewsOut,
           responses={403: {"description": "the token lacks `campaigns:read`, or `contacts:read` for `contact_id`"},
                      404: {"description": "no such campaign or contact"},
                      409: {"description": "the campaign's segment or template cannot be used"}})
    def preview_campaign(
        campaign_id: CampaignId,
        region: Annotated[Literal[REGIONS] | None, Query(description="only samples of this region")] = None,  # type: ignore[valid-type]
        language: Annotated[Literal[LANGUAGES] | None, Query(description="only samples in this language")] = None,  # type: ignore[valid-type]
        contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="render for this contact (region and language are then ignored)")] = None,
        token: ApiToken = require("campaigns:read"),
    ) -> PreviewsOut:
        """The mail as recipients get it (subject, HTML, text with the real footer), one per region and language.

        Links in a preview carry no real tokens: clicking one unsubscribes nobody. A preview for one
        `contact_id` shows that person's name and address, so it also needs `contacts:read`.
        """
        if contact_id is not None and not allows(token, "contacts:read"):
            # Checked before the lookup, so the answer does not tell which contact ids exist either.
            raise ApiProblem(403, "a preview for a chosen contact needs the scope 'contacts:read' as well",
                             kind="insufficient-scope",
                             headers={"WWW-Authenticate": 'Bearer realm="sendwell", error="insufficient_scope", '
                                                          'scope="contacts:read"'})
        try:
            with transaction(runtime.factory) as session:
                _existing(session, campaign_id)
                previews = content.preview_campaign(session, settings=runtime.settings, campaign_id=campaign_id,
                                                    contact_id=contact_id, region=region, language=language)
        except content.ContentError as exc:
            raise ApiProblem(404, str(exc), kind="not-found") from None
        except (SegmentError, RecursionError, TemplateError) as exc:
            raise ApiProblem(409, f"the campaign cannot be rendered: {exc}", kind="conflict") from None
        out = []
        for p in previews:
            fields = {k: v for k, v in p.items() if k not in ("eml", "findings", "contact")}
            out.append(PreviewOut(**fields, contact=PreviewContactOut(**p["contact"]),
                                  findings=[_finding(f) for f in p["findings"]]))
        return PreviewsOut(campaign_id=campaign_id, previews=out)

    @r.post("/{campaign_id}/send", response_model=StatusOut | PlanOut, dependencies=[require("campaigns:write")],
            responses={**NOT_FOUND, **CONFLICT, 422: {"description": "the compliance lint blocks sending"},
                       200: {"description": "the campaign's status after queueing; with `dry_run=true` the plan "
                                            "(PlanOut) and nothing changed"}})
    def send_campaign(
        campaign_id: CampaignId,
        dry_run: Annotated[bool, Query(description="only say what a send would do now (recipients, skips by "
                                                   "reason, deferrals, by region and language, findings); "
                                                   "nothing is written or queued")] = False,
    ) -> StatusOut | PlanOut:
        """Lint (blocking findings → 422), plan (one send per contact, eligibility checked) and queue; safe to repeat.

        A campaign with no one to mail now or later finishes at once; its skipped sends say why.
        """
        if dry_run:
            try:
                with transaction(runtime.factory) as session:
                    _existing(session, campaign_id)
                    plan = plan_preview(session, settings=runtime.settings, campaign_id=campaign_id).as_dict()
            except (SegmentError, CampaignError) as exc:
                raise ApiProblem(409, str(exc), kind="conflict") from None
            return PlanOut(**{**plan, "findings": [_finding(f) for f in plan["findings"]]})
        try:
            with transaction(runtime.factory) as session:
                campaign = _existing(session, campaign_id)
                if campaign.status == "paused":
                    raise CampaignError(f"campaign {campaign_id} is paused: resume it instead")
                batches = start_sending(session, settings=runtime.settings, campaign_id=campaign_id)
        except (SegmentError, CampaignError) as exc:
            raise ApiProblem(409, str(exc), kind="conflict") from None
        except ComplianceError as exc:
            # A campaign that fails the compliance lint cannot be sent (COMPLIANCE.md rule numbers).
            raise ApiProblem(422, str(exc), kind="compliance", errors=[
                FieldError(field=f.code, message=f.line()) for f in exc.report.errors]) from None
        # After the commit: a worker that takes a job must find its sends queued.
        jobs = get_queue().enqueue_batches(campaign_id, batches)
        with transaction(runtime.factory) as session:
            return StatusOut(**delivery_progress.campaign_status(session, campaign_id=campaign_id), queued_jobs=jobs)

    @r.post("/{campaign_id}/schedule", response_model=StatusOut, dependencies=[require("campaigns:write")],
            responses={**NOT_FOUND, **CONFLICT, 422: {"description": "the time is not in the future, or the "
                                                          "compliance lint blocks sending"}})
    def schedule_campaign(campaign_id: CampaignId, body: ScheduleIn) -> StatusOut:
        """Lint now (blocking findings → 422) and start the draft at `at`; `unschedule` makes it a draft again."""
        try:
            with transaction(runtime.factory) as session:
                campaign = _existing(session, campaign_id)
                if campaign.status != "draft":
                    raise ApiProblem(409, f"campaign {campaign_id} is {campaign.status}: only a draft can be scheduled",
                                     kind="conflict")
                schedule_sending(session, settings=runtime.settings, campaign_id=campaign_id, at=body.at)
                return StatusOut(**delivery_progress.campaign_status(session, campaign_id=campaign_id))
        except (SegmentError, TemplateError, content.ContentError) as exc:
            raise ApiProblem(409, str(exc), kind="conflict") from None
        except CampaignError as exc:
            raise invalid("at", str(exc).removeprefix("at: ")) from None
        except ComplianceError as exc:
            raise ApiProblem(422, str(exc), kind="compliance", errors=[
                FieldError(field=f.code, message=f.line()) for f in exc.report.errors]) from None

    def control(action: str) -> Any:
        def handler(campaign_id: CampaignId) -> StatusOut:
            try:
                with transaction(runtime.factory) as session:
                    _existing(session, campaign_id)
                    campaign_service.set_campaign_status(session, campaign_id=campaign_id, action=action)
                    return StatusOut(**delivery_progress.campaign_status(session, campaign_id=campaign_id))
            except CampaignError as exc:
                raise ApiProblem(409, str(exc), kind="conflict") from None

        handler.__name__ = f"{action}_campaign"
        handler.__doc__ = f"{action.capitalize()} the campaign (409 if its status does not allow it)."
        return handler

    for action in ("pause", "resume", "unschedule", "cancel"):
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
            rows = delivery_progress.list_sends(session, campaign_id=campaign_id, state=state.value if state else None,
                                       after=after, limit=limit)
            return page_of([SendOut.model_validate(s, from_attributes=True) for s in rows], limit)

    return r
