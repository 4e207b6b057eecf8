"""Campaigns: list, editor with live lint and per-region / per-language preview, send / schedule / pause /
resume, report.

Sending goes through flows.start_sending, the CLI's and the REST API's path, so the same
compliance lint blocks it; the live lint is that lint too, run on the unsaved form in a
transaction that is rolled back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from sendwell.campaigns import service as campaign_service
from sendwell.campaigns.service import CampaignError
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError, ContentError, lint_campaign, preview_campaign
from sendwell.db.models import Campaign, CampaignKind, Topic
from sendwell.db.session import transaction
from sendwell.delivery import progress as delivery_progress
from sendwell.delivery.limiter import StoreUnavailable
from sendwell.flows import plan_preview, schedule_sending, send_test, start_sending
from sendwell.i18n.messages import N_, message
from sendwell.insight.alerts import with_messages
from sendwell.insight.clicks import MACHINE_SIGNS as MACHINE_SIGNS  # the report's words, also read by tests
from sendwell.insight.clicks import OTHER_SIGN as OTHER_SIGN
from sendwell.insight.report import build_report
from sendwell.mail.transport import make_transport
from sendwell.policy.eligibility import skip_label
from sendwell.segments.expression import SegmentError
from sendwell.web.admin.pages import Admin, Viewer
from sendwell.web.admin.problems import said
from sendwell.web.recipient.rendering import LANGUAGE_NAMES
from sendwell.worker.queue import Queue

KINDS = [k.value for k in CampaignKind]
FIELDS = ("name", "subject", "html", "text", "segment", "topic", "kind")
LIMITS = {"name": 200, "subject": 500, "html": 1_000_000, "text": 1_000_000, "segment": 2000, "topic": 100,
          "kind": 20}
def _values(form: Any) -> dict[str, str]:
    values = {f: str(form.get(f, ""))[: LIMITS[f]] for f in FIELDS}
    values["kind"] = values["kind"] or CampaignKind.MARKETING.value
    return values


def _of(campaign: Campaign, topic: str) -> dict[str, str]:
    return {"name": campaign.name, "subject": campaign.subject, "html": campaign.html, "text": campaign.text,
            "segment": campaign.segment_expr, "topic": topic, "kind": campaign.kind}


def _problem(exc: Exception) -> Any:
    if isinstance(exc, RecursionError):
        return "segment: nested too deeply"
    if isinstance(exc, SegmentError):
        return message(N_("segment: %(problem)s"), problem=said(exc))
    prefix = "segment: " if isinstance(exc, SegmentError) else "template: " if isinstance(exc, TemplateError) else ""
    return prefix + str(exc)


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/campaigns")
    runtime = admin.runtime
    queue: list[Any] = []

    def get_queue() -> Any:
        if not queue:
            queue.append(Queue(runtime))
        return queue[0]

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    async def marketer(request: Request) -> Viewer:
        return await admin.require(request, "marketer")

    async def admin_only(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    def topic_slug(db: Any, campaign: Campaign) -> str:
        return (db.scalar(select(Topic.slug).where(Topic.id == campaign.topic_id)) or "") if campaign.topic_id else ""

    def campaign_page(request: Request, user: Viewer, campaign_id: int, *, status: int = 200,
                      values: dict[str, str] | None = None, error: str = "", notice: str = "",
                      report: Any = None, test_to: str = "") -> Response:
        with transaction(runtime.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            if campaign is None:
                return admin.render(request, "not_found.html", user, status=404)
            values = values or _of(campaign, topic_slug(db, campaign))
            state = delivery_progress.campaign_status(db, campaign_id=campaign_id)
            archived = campaign_service.is_archived(db, campaign_id=campaign_id)
            confirmed = campaign_service.transactional_confirmation(db, campaign_id=campaign_id)
            if report is None and campaign.status == "draft":
                report = lint_campaign(db, settings=runtime.settings, campaign_id=campaign_id)
            db.expunge_all()
        return admin.render(request, "campaign.html", user, status=status, campaign=campaign, values=values,
                            kinds=KINDS, state=state, lint=report, error=error, notice=notice,
                            test_to=test_to, paces=_paces(state), archived=archived, skip_label=skip_label,
                            confirmed=confirmed)

    def _paces(state: dict[str, Any]) -> list[dict[str, Any]] | None:
        # Each provider group's current pace while the campaign sends (delivery/throttle.py); None: store down.
        if state["status"] not in ("sending", "paused"):
            return []
        try:
            return runtime.throttle.paces()
        except StoreUnavailable:
            return None

    @r.get("")
    def campaigns(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            archived = bool(request.query_params.get("archived"))  # the archive, or everything else
            # A sequence's mail steps each carry a campaign of their own: listed only when asked.
            sequences = bool(request.query_params.get("sequences"))
            rows = campaign_service.recent_campaigns(db, archived=archived, include_sequences=sequences)
            steps = campaign_service.sequence_steps(db, campaign_ids=[c.id for c in rows])
            db.expunge_all()
        return admin.render(request, "campaigns.html", user, campaigns=rows, archived=archived,
                            sequences=sequences, steps=steps)

    @r.get("/new")
    def new_form(request: Request, user: Viewer = Depends(marketer)) -> Response:
        return admin.render(request, "campaign_new.html", user, values=dict.fromkeys(FIELDS, "") | {"kind": "marketing"},
                            kinds=KINDS)

    @r.post("")
    async def create(request: Request, user: Viewer = Depends(marketer)) -> Response:
        values = _values(await request.form())
        try:
            with transaction(runtime.factory) as db:
                campaign = campaign_service.create_campaign(
                    db, settings=runtime.settings, name=values["name"], subject=values["subject"], html=values["html"],
                    text=values["text"], segment=values["segment"], topic=values["topic"] or None, kind=values["kind"])
                campaign_id = campaign.id
        except (SegmentError, TemplateError, CampaignError, RecursionError, ValueError) as exc:
            return admin.render(request, "campaign_new.html", user, status=400, values=values, kinds=KINDS,
                                error=_problem(exc))
        return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)

    @r.get("/{campaign_id}")
    def show(request: Request, campaign_id: int, user: Viewer = Depends(viewer)) -> Response:
        return campaign_page(request, user, campaign_id)

    @r.post("/{campaign_id}")
    async def save(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        values = _values(await request.form())
        try:
            with transaction(runtime.factory) as db:
                campaign_service.update_campaign(db, settings=runtime.settings, campaign_id=campaign_id,
                                                 **_args(values))
        except (SegmentError, TemplateError, CampaignError, RecursionError, ValueError) as exc:
            return campaign_page(request, user, campaign_id, status=400, values=values, error=_problem(exc))
        return campaign_page(request, user, campaign_id, notice="saved")

    @r.post("/{campaign_id}/lint")
    async def live_lint(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        # The send gate's own lint on the form as typed: applied, linted, rolled back.
        values = _values(await request.form())
        db = runtime.factory()
        try:
            campaign_service.update_campaign(db, settings=runtime.settings, campaign_id=campaign_id, **_args(values))
            report, error = lint_campaign(db, settings=runtime.settings, campaign_id=campaign_id), ""
        except (SegmentError, TemplateError, CampaignError, RecursionError, ValueError) as exc:
            report, error = None, _problem(exc)
        finally:
            db.rollback()
            db.close()
        return admin.render(request, "lint.html", user, lint=report, error=error)

    @r.get("/{campaign_id}/preview")
    def preview(request: Request, campaign_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            if campaign is None:
                return admin.render(request, "not_found.html", user, status=404)
            try:
                samples, error = preview_campaign(db, settings=runtime.settings, campaign_id=campaign_id), ""
            except (ContentError, TemplateError) as exc:
                samples, error = [], str(exc)
            db.expunge_all()
        return admin.render(request, "preview.html", user, campaign=campaign, samples=samples, error=error)

    @r.post("/{campaign_id}/send")
    async def send(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        try:
            with transaction(runtime.factory) as db:
                campaign = campaign_service.get_campaign(db, campaign_id=campaign_id)
                if campaign.status == "paused":
                    raise CampaignError(f"campaign {campaign_id} is paused: resume it instead")
                batches = start_sending(db, settings=runtime.settings, campaign_id=campaign_id)
        except ComplianceError as exc:
            return campaign_page(request, user, campaign_id, status=422, report=exc.report,
                                 error="The compliance check blocks sending; fix the errors below.")
        except (SegmentError, CampaignError) as exc:
            return campaign_page(request, user, campaign_id, status=409, error=_problem(exc))
        get_queue().enqueue_batches(campaign_id, batches)  # after the commit, as the API does
        # No batch: everyone skipped or deferred; the page says which (finished to nobody, or waiting).
        return RedirectResponse(f"/admin/campaigns/{campaign_id}" + ("?sent=1" if batches else ""), status_code=303)

    @r.get("/{campaign_id}/send-plan")
    def send_plan(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        # Send and Schedule open this step: what the send would do (the real planner, rolled
        # back), then "Send to N people" posts to /send, or "Schedule" to /schedule.
        at = _start_time(request.query_params) if "at" in request.query_params else None
        if at is not None and not isinstance(at, datetime):
            return campaign_page(request, user, campaign_id, status=400, error=at)
        if at is not None and at <= datetime.now(timezone.utc):
            return campaign_page(request, user, campaign_id, status=400,
                                 error="start time: it is not in the future; send the campaign now instead")
        try:
            with transaction(runtime.factory) as db:
                plan = plan_preview(db, settings=runtime.settings, campaign_id=campaign_id, now=at)
                campaign = campaign_service.get_campaign(db, campaign_id=campaign_id)
                db.expunge_all()
        except (SegmentError, TemplateError, ContentError, CampaignError) as exc:
            return campaign_page(request, user, campaign_id, status=409, error=_problem(exc))
        return admin.render(request, "campaign_confirm.html", user, campaign=campaign, plan=plan, at=at,
                            at_typed=request.query_params.get("at", "")[:40],
                            zone=request.query_params.get("tz", "")[:64] or "UTC", skip_label=skip_label,
                            language_names=LANGUAGE_NAMES)

    @r.post("/{campaign_id}/schedule")
    async def schedule(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        at = _start_time(await request.form())
        if not isinstance(at, datetime):
            return campaign_page(request, user, campaign_id, status=400, error=at)
        try:
            with transaction(runtime.factory) as db:
                schedule_sending(db, settings=runtime.settings, campaign_id=campaign_id, at=at)
        except ComplianceError as exc:
            return campaign_page(request, user, campaign_id, status=422, report=exc.report,
                                 error="The compliance check blocks sending; fix the errors below.")
        except (SegmentError, TemplateError, ContentError, CampaignError) as exc:
            return campaign_page(request, user, campaign_id, status=409, error=_unprefixed(_problem(exc)))
        return RedirectResponse(f"/admin/campaigns/{campaign_id}?scheduled=1", status_code=303)

    @r.post("/{campaign_id}/test")
    async def test_send(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
        to = str((await request.form()).get("to", ""))[:320]
        s = runtime.settings
        transport = make_transport(s.smtp_url, s.capture_dir, timeout=s.smtp_timeout, ca_file=s.smtp_ca_file)
        try:
            transport.open()
            with transaction(runtime.factory) as db:
                result = send_test(db, settings=s, campaign_id=campaign_id, to=to, signer=runtime.signer,
                                   transport=transport)
        except (ValueError, TemplateError, CampaignError) as exc:
            return campaign_page(request, user, campaign_id, status=400, error=_test_mail(said(exc)))
        except Exception as exc:  # the SMTP server is down or refused: say so, change nothing
            return campaign_page(request, user, campaign_id, status=502, error=_test_mail(said(exc)))
        finally:
            transport.close()
        if result["status"] != "sent":
            return campaign_page(request, user, campaign_id, status=502,
                                 error=_test_mail(message(N_("the server answered %(answer)s"),
                                                          answer=result["message"])))
        return campaign_page(request, user, campaign_id, notice="test", test_to=result["to"])

    def control(action: str) -> Any:
        async def handler(request: Request, campaign_id: int, user: Viewer = Depends(marketer)) -> Response:
            try:
                with transaction(runtime.factory) as db:
                    campaign_service.set_campaign_status(db, campaign_id=campaign_id, action=action)
            except CampaignError as exc:
                return campaign_page(request, user, campaign_id, status=409, error=str(exc))
            return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)

        handler.__name__ = f"admin_{action}_campaign"
        return handler

    for action in ("pause", "resume", "unschedule", "cancel"):
        r.add_api_route(f"/{{campaign_id}}/{action}", control(action), methods=["POST"])

    @r.post("/{campaign_id}/confirm-transactional")
    async def confirm_transactional(request: Request, campaign_id: int,
                                    user: Viewer = Depends(admin_only)) -> Response:
        try:
            with transaction(runtime.factory) as db:
                campaign_service.confirm_transactional(db, campaign_id=campaign_id, email=user.email, role=user.role)
        except CampaignError as exc:
            return campaign_page(request, user, campaign_id, status=409, error=str(exc))
        return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)

    @r.get("/{campaign_id}/report")
    def report(request: Request, campaign_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            campaign = db.get(Campaign, campaign_id)
            if campaign is None:
                return admin.render(request, "not_found.html", user, status=404)
            data = build_report(db, campaign_id=campaign_id)
            data["alerts"] = with_messages(db, alerts=data["alerts"])
            db.expunge_all()
        return admin.render(request, "campaign_report.html", user, campaign=campaign, report=data,
                            engagement=data["engagement"])

    return r


def _start_time(values: Any) -> datetime | str | dict[str, Any]:
    """The start time typed, in the browser's own time zone (admin.js fills `tz`); or what is wrong with it."""
    raw, zone = str(values.get("at", ""))[:40], str(values.get("tz", "") or "UTC")[:64]
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return message(N_("time zone: unknown zone %(zone)s"), zone=repr(zone))
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return "start time: enter a date and a time, e.g. 2026-12-01 09:00"
    return at if at.tzinfo else at.replace(tzinfo=tz)


def _unprefixed(problem: Any) -> Any:
    return problem.removeprefix("at: ") if isinstance(problem, str) else problem


def _test_mail(problem: dict[str, Any]) -> dict[str, Any]:
    return message(N_("test mail: %(problem)s"), problem=problem)


def _args(values: dict[str, str]) -> dict[str, Any]:
    return {"name": values["name"], "subject": values["subject"], "html": values["html"], "text": values["text"],
            "segment": values["segment"], "topic": values["topic"] or None, "kind": values["kind"]}
