"""/sequences: create, read, change, pause and resume lifecycle sequences; per-step report and dry run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from sendwell.campaigns.service import CampaignError
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.db.models import Sequence
from sendwell.db.session import transaction
from sendwell.insight.rates import REASONS
from sendwell.insight.sequence_steps import reasons_by_step, step_recommendations
from sendwell.runtime import Runtime
from sendwell.sequences import service
from sendwell.sequences.service import SequenceError
from sendwell.sequences.definition import STEP_KINDS, TRIGGERS, DefinitionError
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import MAX_ID, NO_NUL, After, Limit, Page, bounded, page_of

SequenceId = Annotated[int, Path(ge=1, le=MAX_ID)]
StepId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Text = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
Body = Annotated[str, Field(max_length=200_000, pattern=NO_NUL)]
Amount = Annotated[float, Field(ge=0, le=3650)]

EXAMPLE = {
    "name": "Canton Fair 2026 follow-up",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Thank you for visiting us, {{ first_name }}",
         "html": "<p>Dear {{ first_name }}, thank you for visiting our stand.</p>"},
        {"id": "wait-3d", "kind": "wait", "days": 3},
        {"id": "catalogue", "kind": "mail", "subject": "Our 2026 catalogue",
         "html": "<p>Dear {{ first_name }}, here is our catalogue.</p>"},
    ],
    "exit": {"replied": True},
    "reentry": "never",
}


class TriggerIn(BaseModel):
    """What enrols a contact; each kind takes its own fields (docs/sequences.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # The kinds come from the definition's own table; parse_definition names a wrong one (`trigger.kind`).
    kind: str = Field(max_length=50, json_schema_extra={"enum": list(TRIGGERS)})
    tag: Text | None = None
    source: Text | None = None
    to: Text | None = None
    from_: Text | None = Field(default=None, alias="from")
    topic: Text | None = None
    form_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    name: Text | None = None
    field: Text | None = Field(default=None, description="date: created_at, last_engaged_at, consent_expires_at "
                                                         "or custom.NAME")
    days: int | None = Field(default=None, ge=-36500, le=36500, description="date: days after it (before: negative)")


class StepIn(BaseModel):
    """One step: `mail`, `wait`, `branch`, `set` or `notify`, with the fields of its kind."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(max_length=100, pattern=NO_NUL, description="stable id: lower-case letters, digits, - and _")
    kind: str = Field(max_length=50, json_schema_extra={"enum": list(STEP_KINDS)})
    subject: Text | None = None
    html: Body | None = None
    text: Body | None = None
    topic: Text | None = None
    template_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    days: Amount | None = None
    hours: Amount | None = None
    minutes: Amount | None = None
    until: Text | None = Field(default=None, description="a weekday and time in the contact's zone, e.g. `tue 09:30`")
    if_: dict[Text, Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | bool] | None = Field(
        default=None, alias="if", max_length=1, description="`{clicked: STEP}`, `{opened: STEP}`, `{replied: true}` "
                                                            "or `{segment: EXPRESSION}`")
    then: Text | None = None
    else_: Text | None = Field(default=None, alias="else")
    stage: Text | None = None
    tag: Text | None = None
    field: Text | None = None
    value: Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | int | float | bool | None = None
    url: Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | None = Field(
        default=None, description="notify: the https URL that gets the signed JSON")
    event: Text | None = Field(default=None, description="notify: the event's name in the payload")


class ExitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replied: bool | None = None
    stage_left: Text | None = None
    goal: Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | None = None


class Reentry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_days: int = Field(ge=0, le=36500)


class SequenceIn(BaseModel):
    """A sequence's definition, as `sendwell sequences create` reads it from YAML or JSON."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    name: str = bounded(200, min_length=1)
    trigger: TriggerIn
    steps: list[StepIn] = Field(min_length=1, max_length=100)
    exit: ExitIn | None = None
    reentry: Literal["never"] | Reentry = "never"

    def definition(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class DomainFinding(BaseModel):
    code: str = Field(examples=["sender-domain-spf-missing"])
    severity: Literal["blocking", "warning"] = Field(
        description="`blocking` holds the sequence's mail steps (they wait, never skipped) until it is fixed")
    message: str = Field(description="what is wrong, and the record to publish")


class Created(BaseModel):
    id: int
    findings: list[DomainFinding] = Field(default_factory=list,
                                          description="the sender domain's SPF, DKIM and DMARC findings")


class SequenceOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="`active` or `paused`")
    version: int
    trigger: dict[str, Any]
    enrollments: dict[str, int] = Field(description="contacts per state: active, done, exited")


class StatusOut(SequenceOut):
    findings: list[DomainFinding] = Field(default_factory=list,
                                          description="on resume, the sender domain's findings (as on create)")


class SequenceDetail(SequenceOut):
    definition: dict[str, Any] = Field(description="the current version's definition")


class StepReport(BaseModel):
    """Runs and waits per step; mail steps add sent, distinct contacts per outcome and rates of sent."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    runs: int
    waited: int
    paused: bool | None = None
    sent: int | None = None


class StepAdvice(BaseModel):
    """What to change in the sequence, naming the step, with the numbers that justify it (English text)."""

    code: str = Field(description="the kind of advice: `sequence_step_wait`, `sequence_step_relevance`, "
                                  "`sequence_step_unsubscribes` or `sequence_step_over_cap`")
    step: str | None = Field(description="the id of the step it names")
    title: str
    why: str
    evidence: dict[str, Any] = Field(description="the figures behind it, by name")


class SequenceReportOut(SequenceOut):
    steps: list[StepReport]
    reasons: dict[str, dict[Literal[REASONS], int]] = Field(  # type: ignore[valid-type]
        description="per mail step id (any version): people who left from its mail, counted by their survey answer")
    recommendations: list[StepAdvice]


class WouldEnter(BaseModel):
    id: int
    email: str


class DryRunOut(BaseModel):
    id: int
    as_of: str
    would_enter: int
    contacts: list[WouldEnter] = Field(description="the first 1,000 of them")


class ResumedOut(BaseModel):
    campaigns: list[int] = Field(description="the step's campaigns that send again")


NOT_FOUND = {404: {"description": "no sequence has this id"}}
REFUSED = {**NOT_FOUND, 409: {"description": "a sequence of this name exists, or the step never ran"},
           422: {"description": "a field of the definition is invalid (the problem names it), or a mail step "
                                "fails the compliance lint"}}


def refused(exc: Exception) -> ApiProblem:
    """The problem for a definition or a mail step the service refuses."""
    if isinstance(exc, ComplianceError):
        return ApiProblem(422, str(exc), kind="compliance", errors=[
            FieldError(field=f.code, message=f.line()) for f in exc.report.errors])
    if isinstance(exc, SequenceError):
        return ApiProblem(409, str(exc), kind="conflict")
    field, _, message = str(exc).partition(": ")
    return invalid(field, message) if message else invalid("body", str(exc))


REFUSALS = (DefinitionError, SequenceError, CampaignError, TemplateError, ComplianceError)


def _found(session: Session, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise ApiProblem(404, f"no sequence with id {sequence_id}", kind="not-found")
    return sequence


def _out(session: Session, sequence: Sequence) -> SequenceOut:
    return SequenceOut(**service.describe(session, sequence))


def _detail(session: Session, sequence: Sequence) -> SequenceDetail:
    return SequenceDetail(**service.describe(session, sequence), definition=dict(sequence.definition))


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/sequences", tags=["sequences"])
    read, write = [require("sequences:read")], [require("sequences:write")]

    @r.get("", response_model=Page[SequenceOut], dependencies=read)
    def list_sequences(after: After = 0, limit: Limit = 50) -> Page[SequenceOut]:
        with transaction(runtime.factory) as session:
            rows = service.list_sequences(session, after=after, limit=limit)
            return page_of([_out(session, s) for s in rows], limit)

    @r.post("", status_code=201, response_model=Created, dependencies=write, responses=REFUSED)
    def create(body: SequenceIn) -> Created:
        """Create a sequence; it enrols what happens from now on. Mail steps pass the campaigns' lint first."""
        try:
            with transaction(runtime.factory) as session:
                created = service.create_sequence(session, settings=runtime.settings, data=body.definition())
                return Created(id=created.id, findings=_findings(session))
        except REFUSALS as exc:
            raise refused(exc) from None

    @r.get("/{sequence_id}", response_model=SequenceDetail, dependencies=read, responses=NOT_FOUND)
    def show(sequence_id: SequenceId) -> SequenceDetail:
        with transaction(runtime.factory) as session:
            return _detail(session, _found(session, sequence_id))

    @r.put("/{sequence_id}", response_model=SequenceDetail, dependencies=write, responses=REFUSED)
    def replace(sequence_id: SequenceId, body: SequenceIn) -> SequenceDetail:
        """Store the definition as a new version; contacts on their way keep the version they entered."""
        try:
            with transaction(runtime.factory) as session:
                _found(session, sequence_id)
                sequence = service.update_sequence(session, settings=runtime.settings, sequence_id=sequence_id,
                                                   data=body.definition())
                return _detail(session, sequence)
        except REFUSALS as exc:
            raise refused(exc) from None

    def _findings(session: Session) -> list[DomainFinding]:
        return [DomainFinding(**f) for f in service.sender_domain_findings(session, settings=runtime.settings)]

    def status_route(action: str, status: str) -> None:
        def handler(sequence_id: SequenceId) -> StatusOut:
            with transaction(runtime.factory) as session:
                _found(session, sequence_id)
                sequence = service.set_status(session, sequence_id=sequence_id, status=status)
                return StatusOut(**_out(session, sequence).model_dump(),
                                 findings=_findings(session) if status == "active" else [])

        handler.__doc__ = ("Pause: nobody enters and no step runs; contacts keep their place." if status == "paused"
                           else "Resume a paused sequence.")
        r.add_api_route(f"/{{sequence_id}}/{action}", handler, methods=["POST"], response_model=StatusOut,
                        dependencies=write, responses=NOT_FOUND,
                        name=f"{action}_sequence")

    status_route("pause", "paused")
    status_route("resume", "active")

    @r.post("/{sequence_id}/steps/{step_id}/resume", response_model=ResumedOut, dependencies=write,
            responses=REFUSED)
    def resume_step(sequence_id: SequenceId, step_id: StepId) -> ResumedOut:
        """Resume a mail step an unsubscribe or complaint spike paused; its open alerts are resolved."""
        try:
            with transaction(runtime.factory) as session:
                _found(session, sequence_id)
                return ResumedOut(campaigns=service.resume_step(session, sequence_id=sequence_id, step_id=step_id))
        except SequenceError as exc:
            raise refused(exc) from None

    @r.get("/{sequence_id}/report", response_model=SequenceReportOut, dependencies=read,
           responses=NOT_FOUND)
    def report(sequence_id: SequenceId) -> SequenceReportOut:
        """Per step: runs, waits; mail steps: sent, opened, clicked, replied, unsubscribed, complained, bounced
        (distinct contacts, machine opens and clicks not counted) and each as a rate of sent (null before any);
        then the survey answers of people who left, per step, and the advice that names a step."""
        with transaction(runtime.factory) as session:
            _found(session, sequence_id)
            advice = [StepAdvice(code=r.code, step=r.evidence.get("step"), title=r.title, why=r.why,
                                 evidence=r.evidence) for r in step_recommendations(session, sequence_id=sequence_id)]
            return SequenceReportOut(**service.step_report(session, sequence_id=sequence_id),
                             reasons=reasons_by_step(session, sequence_id=sequence_id), recommendations=advice)

    @r.get("/{sequence_id}/dry-run", response_model=DryRunOut, dependencies=read, responses=NOT_FOUND)
    def dry_run(sequence_id: SequenceId) -> DryRunOut:
        """Who would enter now (the trigger's contacts since the last scan, as re-entry allows); writes nothing."""
        with transaction(runtime.factory) as session:
            _found(session, sequence_id)
            return DryRunOut(**service.dry_run(session, sequence_id=sequence_id))

    return r
