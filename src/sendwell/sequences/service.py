"""Sequences: create, enrol by scanning events since a high-water mark, exit, and advance due steps.

Every step is done in bulk per (sequence, version, step): one INSERT … SELECT writes the step
runs (UNIQUE (enrollment, step): a step is done once per pass, whoever advances), one UPDATE
moves the enrollments on. A mail step's mails are sends of a hidden campaign per step, planned
with the campaigns' own eligibility (suppression, lawful basis, topic, pauses, stage caps in
defer mode, send windows) and delivered by the same queue, claim and lease path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, literal, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, sessionmaker

from sendwell.campaigns.service import create_campaign, topic_slug
from sendwell.config import Settings
from sendwell.content.service import assert_sendable
from sendwell.db.models import (
    SCOPE_ALL,
    Alert,
    Campaign,
    CampaignStatus,
    Contact,
    Event,
    MailTemplate,
    Send,
    SendState,
    Sequence,
    SequenceEnrollment,
    SequenceStepCampaign,
    SequenceStepRun,
    Suppression,
    SuppressionReason,
    Topic,
)
from sendwell.db.session import transaction
from sendwell.delivery.planning import queue_campaign
from sendwell.policy.caps import FrequencyPolicy
from sendwell.policy.eligibility import skip_reason
from sendwell.policy.service import defer_outside_window, defer_over_cap, lock_planning
from sendwell.policy.windows import zone_for
from sendwell.segments.expression import compile_segment
from sendwell.sequences.definition import (
    Definition,
    DefinitionError,
    parse_definition,
    parse_until,
    wait_delta,
)

ACTIVE, DONE, EXITED = "active", "done", "exited"
STATUSES = ("active", "paused")
SKIP_EXITED = "sequence_exited"  # a step's mail not sent: the contact left the sequence before it went
STEP_PAUSED = "step_paused"  # an enrollment waits: its mail step's spike alert paused the step
METHOD = "sequence"  # the `method` of events a set step records


class SequenceError(ValueError):
    """The sequence cannot be created or changed as asked."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# ------------------------------------------------------------------ definitions
def definition_of(sequence: Sequence) -> Definition:
    return parse_definition(sequence.definition)


def create_sequence(session: Session, *, settings: Settings, data: dict[str, Any],
                    now: datetime | None = None) -> Sequence:
    """Store a sequence; its mail steps are checked by the campaigns' template check and compliance lint.

    The enrolment scan starts after the newest event and contact: a sequence enrols what
    happens from now on, never the whole history.
    """
    definition = parse_definition(data)
    if session.scalar(select(Sequence.id).where(Sequence.name == definition.name)) is not None:
        raise SequenceError(f"a sequence named {definition.name!r} exists")
    for step in definition.steps:
        if step["kind"] == "mail" and step.get("template_id") and session.get(MailTemplate, step["template_id"]) is None:
            raise DefinitionError(f"{step['id']}.template_id: no saved template {step['template_id']}")
    sequence = Sequence(
        name=definition.name, status="active", version=1, definition=definition.raw,
        reentry_days=definition.reentry_days, created_at=now or _now(), updated_at=now or _now(),
        events_seen=session.scalar(select(func.max(Event.id))) or 0,
        contacts_seen=session.scalar(select(func.max(Contact.id))) or 0,
    )
    session.add(sequence)
    session.flush()
    for step in definition.steps:
        if step["kind"] == "mail":
            campaign_id = step_campaign(session, settings=settings, sequence=sequence, step_id=step["id"], round_=1)
            assert_sendable(session, settings=settings, campaign_id=campaign_id)  # ComplianceError blocks
    return sequence


def get_sequence(session: Session, *, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise SequenceError(f"no sequence with id {sequence_id}")
    return sequence


def set_status(session: Session, *, sequence_id: int, status: str) -> Sequence:
    """Pause or resume a sequence: paused, nobody enters and no step runs (enrollments keep their place)."""
    if status not in STATUSES:
        raise SequenceError(f"unknown status {status!r}")
    sequence = get_sequence(session, sequence_id=sequence_id)
    sequence.status = status
    session.flush()
    return sequence


def step_campaign(session: Session, *, settings: Settings, sequence: Sequence, step_id: str, round_: int) -> int:
    """The hidden campaign carrying one mail step's sends (made on first use), reopened to `sending`.

    Kind marketing, over-cap `defer`: over a stage cap the mail waits for the next allowed
    time instead of being skipped. A spike alert pauses it, which pauses only this step.
    """
    found = session.scalar(select(SequenceStepCampaign.campaign_id).where(
        SequenceStepCampaign.sequence_id == sequence.id, SequenceStepCampaign.version == sequence.version,
        SequenceStepCampaign.step_id == step_id, SequenceStepCampaign.round == round_))
    if found is None:
        step = definition_of(sequence).step(step_id)
        subject, html = step.get("subject", ""), step.get("html", "")
        if step.get("template_id"):
            template = session.get(MailTemplate, step["template_id"])
            if template is None:
                raise SequenceError(f"{step_id}: no saved template {step['template_id']}")
            subject, html = subject or template.subject, html or template.html
        campaign = create_campaign(
            session, settings=settings, name=f"{sequence.name} · {step_id}" + (f" · {round_}" if round_ > 1 else ""),
            subject=subject, html=html, text=step.get("text", ""), topic=step.get("topic"), over_cap="defer")
        campaign.policy = FrequencyPolicy.from_settings(settings).to_json()
        campaign.status, campaign.started_at = CampaignStatus.SENDING.value, _now()
        session.add(SequenceStepCampaign(sequence_id=sequence.id, version=sequence.version, step_id=step_id,
                                         round=round_, campaign_id=campaign.id))
        session.flush()
        return campaign.id
    campaign = session.get(Campaign, found)
    assert campaign is not None
    if campaign.status == CampaignStatus.FINISHED.value:  # its earlier mails all went: more come now
        campaign.status, campaign.finished_at = CampaignStatus.SENDING.value, None
        campaign.delivered_rolled_up_at = None  # the insight roll-up counts its deliveries again (replacing)
    return found


# ------------------------------------------------------------------ enrolment
def _trigger_contacts(session: Session, sequence: Sequence, definition: Definition,
                      upto_event: int, upto_contact: int) -> list[int]:
    """Contacts the trigger names among events and new contacts past the high-water marks, in order."""
    trigger = definition.trigger
    kind = trigger["kind"]
    found: list[int] = []
    if kind in ("contact_created", "tag_added"):
        query = select(Contact.id, Contact.source, Contact.tags).where(
            Contact.id > sequence.contacts_seen, Contact.id <= upto_contact).order_by(Contact.id)
        for contact_id, source, tags in session.execute(query):
            if kind == "tag_added" and trigger["tag"] not in (tags or []):
                continue
            if kind == "contact_created" and trigger.get("source") and source != trigger["source"]:
                continue
            if kind == "contact_created" and trigger.get("tag") and trigger["tag"] not in (tags or []):
                continue
            found.append(contact_id)
    if kind == "contact_created":
        return found
    kinds = {"tag_added": ("contact_edited", "contacts_bulk_changed"),
             "stage_changed": ("contact_edited", "contacts_bulk_changed"),
             "topic_subscribed": ("contact_edited", "contacts_bulk_changed", "preferences_changed",
                                  "signup_confirmed"),
             "signup_confirmed": ("signup_confirmed",), "api_event": ("api_event",)}[kind]
    topic_id = None
    if kind == "topic_subscribed":
        topic_id = session.scalar(select(Topic.id).where(Topic.slug == trigger["topic"]))
    rows = session.execute(select(Event.contact_id, Event.kind, Event.data).where(
        Event.id > sequence.events_seen, Event.id <= upto_event, Event.kind.in_(kinds)).order_by(Event.id))
    for contact_id, event_kind, data in rows:
        found.extend(_matches(kind, trigger, topic_id, contact_id, event_kind, data or {}))
    return found


def _matches(kind: str, trigger: dict[str, Any], topic_id: int | None, contact_id: int | None, event_kind: str,
             data: dict[str, Any]) -> list[int]:
    """The contacts one event enrols for this trigger."""
    if event_kind == "contacts_bulk_changed":
        action, value, ids = data.get("action"), data.get("value"), data.get("contact_ids") or []
        hit = ((kind == "tag_added" and action == "add_tag" and value == trigger["tag"])
               or (kind == "stage_changed" and action == "set_stage" and value == trigger["to"]
                   and not trigger.get("from"))
               or (kind == "topic_subscribed" and action == "subscribe" and value == trigger["topic"]))
        return [int(i) for i in ids] if hit else []
    if contact_id is None:
        return []
    changes = data.get("changes") or {}
    if kind == "tag_added":
        old, new = (changes.get("tags") or [[], []])[:2]
        return [contact_id] if trigger["tag"] in (new or []) and trigger["tag"] not in (old or []) else []
    if kind == "stage_changed":
        old, new = (changes.get("stage") or [None, None])[:2]
        ok = new == trigger["to"] and old != new and (not trigger.get("from") or old == trigger["from"])
        return [contact_id] if ok else []
    if kind == "topic_subscribed":
        # The admin's edit records slugs, the preference center topic ids, a confirmed signup its topics.
        added = (data.get("topics") or []) if event_kind == "signup_confirmed" else (changes.get("topics_added") or [])
        return [contact_id] if trigger["topic"] in added or (topic_id is not None and topic_id in added) else []
    if kind == "signup_confirmed":
        wanted = trigger.get("form_id")
        return [contact_id] if wanted is None or str(data.get("form_id")) == str(wanted) else []
    return [contact_id] if data.get("name") == trigger["name"] else []


def enrol(session: Session, *, sequence: Sequence, contact_ids: Iterable[int], now: datetime) -> list[int]:
    """Start the sequence for these contacts, as its re-entry rule allows; returns who entered."""
    wanted = list(dict.fromkeys(contact_ids))
    if not wanted:
        return []
    latest: dict[int, tuple[int, str, datetime]] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start:start + 5000]
        for contact_id, round_, state, entered in session.execute(
                select(SequenceEnrollment.contact_id, SequenceEnrollment.round, SequenceEnrollment.state,
                       SequenceEnrollment.entered_at)
                .where(SequenceEnrollment.sequence_id == sequence.id, SequenceEnrollment.contact_id.in_(chunk))):
            if contact_id not in latest or round_ > latest[contact_id][0]:
                latest[contact_id] = (round_, state, entered)
    existing: set[int] = set()  # a bulk event names contacts that may have been deleted since
    for start in range(0, len(wanted), 5000):
        existing.update(session.scalars(select(Contact.id).where(Contact.id.in_(wanted[start:start + 5000]))))
    first = definition_of(sequence).first
    rows, entered_ids = [], []
    for contact_id in wanted:
        if contact_id not in existing:
            continue
        round_ = 1
        if contact_id in latest:
            last_round, state, entered = latest[contact_id]
            if state == ACTIVE or sequence.reentry_days is None:
                continue
            if entered.replace(tzinfo=entered.tzinfo or timezone.utc) + timedelta(days=sequence.reentry_days) > now:
                continue
            round_ = last_round + 1
        rows.append({"sequence_id": sequence.id, "contact_id": contact_id, "version": sequence.version,
                     "round": round_, "step_id": first, "next_at": now, "state": ACTIVE, "exited_reason": "",
                     "wait_reason": "", "entered_at": now, "updated_at": now})
        entered_ids.append(contact_id)
    for start in range(0, len(rows), 5000):
        session.execute(_insert(session)(SequenceEnrollment).values(rows[start:start + 5000])
                        .on_conflict_do_nothing())
    return entered_ids


def scan(session: Session, *, sequence: Sequence, now: datetime, dry_run: bool = False) -> list[int]:
    """Enrol the contacts the trigger names since the high-water marks, then move the marks on."""
    upto_event = session.scalar(select(func.max(Event.id))) or 0
    upto_contact = session.scalar(select(func.max(Contact.id))) or 0
    contacts = _trigger_contacts(session, sequence, definition_of(sequence), upto_event, upto_contact)
    if dry_run:
        return list(dict.fromkeys(contacts))
    entered = enrol(session, sequence=sequence, contact_ids=contacts, now=now)
    sequence.events_seen, sequence.contacts_seen = upto_event, upto_contact
    session.flush()
    return entered


def enrol_for_event(session: Session, *, kind: str, contact_id: int, form_id: int | str | None = None,
                    name: str | None = None, now: datetime | None = None) -> list[int]:
    """Enrol a contact now in every active sequence whose trigger is this event; returns the sequence ids.

    For events the caller has in hand (a confirmed signup, an API event): no need to wait for
    the scan. `kind` is signup_confirmed (with form_id) or api_event (with name).
    """
    now = now or _now()
    entered = []
    for sequence in session.scalars(select(Sequence).where(Sequence.status == "active").order_by(Sequence.id)):
        trigger = definition_of(sequence).trigger
        if trigger["kind"] != kind or not _matches(kind, trigger, None, contact_id, kind,
                                                  {"form_id": form_id, "name": name}):
            continue
        if enrol(session, sequence=sequence, contact_ids=[contact_id], now=now):
            entered.append(sequence.id)
    session.flush()
    return entered


def record_api_event(session: Session, *, contact_id: int, name: str, data: dict[str, Any] | None = None,
                     now: datetime | None = None) -> Event:
    """Record a named event from an integration (`api_event`); the next scan enrols matching sequences."""
    event = Event(kind="api_event", contact_id=contact_id, method="api", occurred_at=now or _now(),
                  data={"name": name, **(data or {})})
    session.add(event)
    session.flush()
    return event


# ------------------------------------------------------------------ exits
def apply_exits(session: Session, *, sequence: Sequence, now: datetime) -> dict[str, int]:
    """End active enrollments an exit rule matches: suppressed or unsubscribed (always), then the configured ones."""
    definition = definition_of(sequence)
    e = SequenceEnrollment
    rules: list[tuple[str, Any]] = [
        ("unsubscribed", exists(select(Suppression.id).where(
            Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL,
            Suppression.reason == SuppressionReason.UNSUBSCRIBE.value))),
        ("suppressed", exists(select(Suppression.id).where(
            Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL))),
    ]
    if definition.exit.get("replied"):
        rules.append(("replied", exists(select(Event.id).where(
            Event.contact_id == e.contact_id, Event.kind == "replied", Event.occurred_at >= e.entered_at))))
    if definition.exit.get("stage_left"):
        rules.append(("stage_left", Contact.stage != definition.exit["stage_left"]))
    if definition.exit.get("goal"):
        rules.append(("goal_reached", compile_segment(definition.exit["goal"], now=now)))
    counts: dict[str, int] = {}
    campaigns = select(SequenceStepCampaign.campaign_id).where(SequenceStepCampaign.sequence_id == sequence.id)
    for reason, clause in rules:
        leaving = session.execute(select(e.id, e.contact_id).join(Contact, Contact.id == e.contact_id).where(
            e.sequence_id == sequence.id, e.state == ACTIVE, clause)).all()
        for start in range(0, len(leaving), 5000):
            chunk = leaving[start:start + 5000]
            session.execute(update(e).where(e.id.in_([i for i, _ in chunk])).values(
                state=EXITED, exited_reason=reason, next_at=None, updated_at=now)
                .execution_options(synchronize_session=False))
            # Their mails not yet sent (waiting for a cap or a window, or queued) are not sent.
            session.execute(update(Send).where(
                Send.campaign_id.in_(campaigns), Send.contact_id.in_([c for _, c in chunk]),
                Send.state.in_((SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value)))
                .values(state=SendState.SKIPPED.value, skip_reason=SKIP_EXITED, lease_until=None, updated_at=now)
                .execution_options(synchronize_session=False))
        if leaving:
            counts[reason] = len(leaving)
    return counts


# ------------------------------------------------------------------ advancing
def advance(session: Session, *, settings: Settings, now: datetime | None = None,
            sequence_ids: list[int] | None = None) -> dict[str, Any]:
    """Enrol, apply exits and run every due step of the active sequences, as of `now`.

    Returns counts and `batches`: (campaign id, send ids) for the queue. Runs under the
    planning lock (policy.service.lock_planning), so caps see every other plan and two
    advancing processes take turns; the unique step-run row makes a repeat a no-op.
    """
    now = now or _now()
    lock_planning(session)
    report: dict[str, Any] = {"entered": 0, "exited": {}, "steps": defaultdict(int), "batches": []}
    query = select(Sequence).where(Sequence.status == "active").order_by(Sequence.id)
    if sequence_ids is not None:
        query = query.where(Sequence.id.in_(sequence_ids))
    for sequence in list(session.scalars(query)):
        report["entered"] += len(scan(session, sequence=sequence, now=now))
        for reason, count in apply_exits(session, sequence=sequence, now=now).items():
            report["exited"][reason] = report["exited"].get(reason, 0) + count
        definition = definition_of(sequence)
        for _ in range(len(definition.steps) + 1):  # each pass moves every due enrollment one step on
            groups = session.execute(
                select(SequenceEnrollment.version, SequenceEnrollment.step_id, SequenceEnrollment.round)
                .where(*_due(sequence.id, now)).group_by(SequenceEnrollment.version, SequenceEnrollment.step_id,
                                                          SequenceEnrollment.round)).all()
            moved = 0
            for version, step_id, round_ in groups:
                moved += _run_step(session, settings=settings, sequence=sequence, definition=definition,
                                   version=version, step_id=step_id, round_=round_, now=now, report=report)
            if not moved:
                break
        _finish(session, sequence_id=sequence.id, now=now)
    report["steps"] = dict(report["steps"])
    session.flush()
    return report


def advance_due(factory: sessionmaker[Session], *, settings: Settings,
                now: datetime | None = None) -> list[tuple[int, list[int]]]:
    """The worker's periodic advance, in its own transaction; returns (campaign id, send ids) to enqueue."""
    with transaction(factory) as session:
        if session.scalar(select(Sequence.id).where(Sequence.status == "active").limit(1)) is None:
            return []  # no sequence: no planning lock taken
        return advance(session, settings=settings, now=now)["batches"]


def _finish(session: Session, *, sequence_id: int, now: datetime) -> None:
    """Passes past their last step whose last mail's time has come are done."""
    e = SequenceEnrollment
    session.execute(update(e).where(e.sequence_id == sequence_id, e.state == ACTIVE, e.step_id == "",
                                    e.next_at <= now).values(state=DONE, updated_at=now)
                    .execution_options(synchronize_session=False))


def _due(sequence_id: int, now: datetime) -> list[Any]:
    e = SequenceEnrollment
    return [e.sequence_id == sequence_id, e.state == ACTIVE, e.step_id != "", e.next_at <= now]


def _run_step(session: Session, *, settings: Settings, sequence: Sequence, definition: Definition, version: int,
              step_id: str, round_: int, now: datetime, report: dict[str, Any]) -> int:
    """Do one step for every enrollment due at it; returns how many moved on."""
    e = SequenceEnrollment
    due = and_(*_due(sequence.id, now), e.version == version, e.step_id == step_id, e.round == round_)
    if version != sequence.version or step_id not in {s["id"] for s in definition.steps}:
        # Enrolled under another version whose step is gone: they finish the sequence.
        return _move(session, due, next_step="", now=now)
    step = definition.step(step_id)
    kind = step["kind"]
    if kind == "mail":
        moved = _mail_step(session, settings=settings, sequence=sequence, definition=definition, step=step,
                           round_=round_, due=due, now=now, report=report)
    elif kind == "wait":
        _record_runs(session, due, step_id=step_id, kind=kind, outcome=literal("waited"), now=now)
        moved = _wait_step(session, definition=definition, step=step, due=due, now=now)
    elif kind == "branch":
        moved = _branch_step(session, definition=definition, step=step, due=due, now=now)
    else:
        moved = _set_step(session, definition=definition, step=step, due=due, now=now)
    report["steps"][step_id] += moved
    return moved


def _record_runs(session: Session, due: Any, *, step_id: str, kind: str, outcome: Any, now: datetime,
                 send_id: Any = None, wait_reason: Any = None, join: Any = None) -> None:
    """One step-run row per due enrollment; an existing (enrollment, step) row is kept (done once)."""
    e = SequenceEnrollment
    columns = [e.id, literal(step_id), literal(kind), outcome,
               send_id if send_id is not None else literal(None), wait_reason if wait_reason is not None else literal(""),
               literal(now)]
    source: Select[Any] = select(*columns).select_from(e)
    if join is not None:
        source = join(source)
    source = source.where(due, true())
    stmt = _insert(session)(SequenceStepRun).from_select(
        ["enrollment_id", "step_id", "kind", "outcome", "send_id", "wait_reason", "done_at"], source
    ).on_conflict_do_nothing(index_elements=["enrollment_id", "step_id"])
    session.execute(stmt)


def _move(session: Session, due: Any, *, next_step: Any, now: datetime, next_at: Any = None,
          wait_reason: Any = "") -> int:
    """Move the due enrollments to the next step (or done when it is "")."""
    e = SequenceEnrollment
    # Past the last step the pass is done, unless its last mail still waits (a cap, a window):
    # it stays active until then, so an exit rule can still stop that mail (see _finish).
    state: Any = ACTIVE
    if next_step == "":
        state = DONE if next_at is None or isinstance(next_at, datetime) else case((next_at <= now, DONE),
                                                                                    else_=ACTIVE)
    values: dict[str, Any] = {"step_id": next_step, "state": state, "updated_at": now,
                              "next_at": next_at if next_at is not None else now, "wait_reason": wait_reason}
    return session.execute(update(e).where(due).values(**values)
                           .execution_options(synchronize_session=False)).rowcount or 0


def _wait_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    e = SequenceEnrollment
    following = definition.after(step["id"])
    delta = wait_delta(step)
    if delta is not None:
        return _move(session, due, next_step=following, now=now, next_at=now + delta)
    # Until a weekday and time in the contact's own time zone: one UPDATE per zone.
    weekday, hour, minute = parse_until(str(step["until"]))
    moved = 0
    zones = session.execute(select(Contact.timezone, Contact.country, Contact.region)
                            .join(e, e.contact_id == Contact.id).where(due)
                            .group_by(Contact.timezone, Contact.country, Contact.region)).all()
    for tz, country, region in zones:
        local = now.astimezone(zone_for(tz, country, region))
        days = (weekday - local.weekday()) % 7
        target = local.replace(hour=hour, minute=minute, second=0, microsecond=0) + timedelta(days=days)
        if target <= local:
            target += timedelta(days=7)
        in_zone = select(Contact.id).where(Contact.timezone == tz, Contact.country == country,
                                           Contact.region == region)
        moved += _move(session, and_(due, e.contact_id.in_(in_zone)), next_step=following, now=now,
                       next_at=target.astimezone(timezone.utc))
    return moved


def _branch_condition(session: Session, step: dict[str, Any], now: datetime) -> Any:
    """A clause over the enrollment and its contact: True takes `then`, otherwise `else`."""
    e = SequenceEnrollment
    cond = step["if"]
    key, value = next(iter(cond.items()))
    if key in ("clicked", "opened"):
        run = aliased(SequenceStepRun)
        return exists(select(Event.id).join(run, run.send_id == Event.send_id).where(
            run.enrollment_id == e.id, run.step_id == value, Event.kind == key, Event.machine.is_(False)))
    if key == "replied":
        replied = exists(select(Event.id).where(Event.contact_id == e.contact_id, Event.kind == "replied",
                                                Event.occurred_at >= e.entered_at))
        return replied if value else ~replied
    return compile_segment(value, now=now)


def _branch_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    e = SequenceEnrollment
    condition = _branch_condition(session, step, now)
    outcome = case((condition, literal("then")), else_=literal("else"))
    _record_runs(session, due, step_id=step["id"], kind="branch", outcome=outcome, now=now,
                 join=lambda q: q.join(Contact, Contact.id == e.contact_id))
    taken = select(SequenceStepRun.outcome).where(
        SequenceStepRun.enrollment_id == e.id, SequenceStepRun.step_id == step["id"]).scalar_subquery()
    then, other = definition.target(step["id"], step.get("then")), definition.target(step["id"], step.get("else"))
    moved = _move(session, and_(due, taken == "then"), next_step=then, now=now)
    return moved + _move(session, and_(due, taken != "then"), next_step=other, now=now)


def _set_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    """Set a stage, add a tag or set a custom field; recorded as a `contact_edited` event (method sequence)."""
    e = SequenceEnrollment
    _record_runs(session, due, step_id=step["id"], kind="set", outcome=literal("set"), now=now)
    contacts = session.scalars(select(Contact).join(e, e.contact_id == Contact.id).where(due)).all()
    for contact in contacts:
        changes: dict[str, Any] = {}
        if step.get("stage") and contact.stage != step["stage"]:
            changes["stage"] = [contact.stage, step["stage"]]
            contact.stage = step["stage"]
        if step.get("tag") and step["tag"] not in (contact.tags or []):
            changes["tags"] = [list(contact.tags or []), [*(contact.tags or []), step["tag"]]]
            contact.tags = [*(contact.tags or []), step["tag"]]
        if step.get("field") and (contact.custom or {}).get(step["field"]) != step["value"]:
            changes["custom"] = [dict(contact.custom or {}), {**(contact.custom or {}), step["field"]: step["value"]}]
            contact.custom = {**(contact.custom or {}), step["field"]: step["value"]}
        if changes:
            contact.updated_at = now
            session.add(Event(kind="contact_edited", contact_id=contact.id, method=METHOD, occurred_at=now,
                              data={"changes": changes, "step": step["id"]}))
    session.flush()
    return _move(session, due, next_step=definition.after(step["id"]), now=now)


def _mail_step(session: Session, *, settings: Settings, sequence: Sequence, definition: Definition,
               step: dict[str, Any], round_: int, due: Any, now: datetime, report: dict[str, Any]) -> int:
    """Plan one send per due enrollment into the step's campaign, with the campaigns' eligibility."""
    e = SequenceEnrollment
    campaign_id = step_campaign(session, settings=settings, sequence=sequence, step_id=step["id"], round_=round_)
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    if _step_paused(session, campaign):  # by its spike alert (or by hand): the step waits
        session.execute(update(e).where(due).values(wait_reason=STEP_PAUSED)
                        .execution_options(synchronize_session=False))
        return 0
    policy = FrequencyPolicy.from_json(campaign.policy)
    reason = skip_reason(campaign, topic_slug(session, campaign), now, policy=policy)
    source = select(literal(campaign.id).label("campaign_id"), Contact.id.label("contact_id"),
                    reason.label("skip_reason")).join(e, e.contact_id == Contact.id).where(due)
    sub = source.offset(0).subquery()
    state = case((sub.c.skip_reason.is_(None), SendState.PLANNED.value), else_=SendState.SKIPPED.value)
    rows = select(sub.c.campaign_id, sub.c.contact_id, state, sub.c.skip_reason, literal(0), literal(now)).where(true())
    session.execute(_insert(session)(Send).from_select(
        ["campaign_id", "contact_id", "state", "skip_reason", "attempts", "updated_at"], rows
    ).on_conflict_do_nothing(index_elements=["contact_id", "campaign_id"]))
    defer_over_cap(session, campaign=campaign, policy=policy, now=now)
    defer_outside_window(session, campaign=campaign, policy=policy, now=now)
    for batch in queue_campaign(session, campaign=campaign, batch_size=settings.batch_size):
        report["batches"].append((campaign.id, batch))
    send = aliased(Send)
    joined = and_(send.campaign_id == campaign.id, send.contact_id == e.contact_id)
    waiting = case((send.state == SendState.DEFERRED.value, func.coalesce(send.skip_reason, "")), else_="")
    _record_runs(session, due, step_id=step["id"], kind="mail",
                 outcome=case((send.state == SendState.SKIPPED.value, "skipped:" + func.coalesce(send.skip_reason, "")),
                              else_=send.state),
                 now=now, send_id=send.id, wait_reason=waiting, join=lambda q: q.join(send, joined))
    # A deferred mail (stage cap, send window) holds the enrollment until its time, so a
    # following wait counts from when the mail may go; the reason is kept on the enrollment.
    mine = select(Send.retry_at, Send.skip_reason, Send.state).where(
        Send.campaign_id == campaign.id, Send.contact_id == e.contact_id).correlate(e)
    retry_at = mine.with_only_columns(Send.retry_at).where(Send.state == SendState.DEFERRED.value).scalar_subquery()
    why = mine.with_only_columns(Send.skip_reason).where(Send.state == SendState.DEFERRED.value).scalar_subquery()
    return _move(session, due, next_step=definition.after(step["id"]), now=now,
                 next_at=func.coalesce(retry_at, literal(now)), wait_reason=func.coalesce(why, ""))


SPIKES = ("unsubscribe_spike", "complaint_spike")  # insight.alerts' kinds for the thresholds it judges


def _open_spikes(campaign_id: int) -> Any:
    return select(Alert.id).where(Alert.campaign_id == campaign_id, Alert.severity == "critical",
                                  Alert.kind.in_(SPIKES), Alert.resolved_at.is_(None))


def _step_paused(session: Session, campaign: Campaign) -> bool:
    """A step is paused when its campaign is, or when insight.alerts judged its rates critical.

    The breaker pauses a campaign only while it is sending; a step's campaign finishes
    between arrivals, so an open critical unsubscribe or complaint alert pauses it here.
    """
    if campaign.status != CampaignStatus.SENDING.value:
        return True
    if session.scalar(_open_spikes(campaign.id).limit(1)) is not None:
        campaign.status = CampaignStatus.PAUSED.value
        return True
    return False


def resume_step(session: Session, *, sequence_id: int, step_id: str, now: datetime | None = None) -> list[int]:
    """Resume a paused mail step: its open spike alerts are resolved and its campaigns send again."""
    ids = list(session.scalars(select(SequenceStepCampaign.campaign_id).where(
        SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == step_id)))
    if not ids:
        raise SequenceError(f"sequence {sequence_id} has no mail step {step_id!r} that ran")
    for campaign_id in ids:
        session.execute(update(Alert).where(Alert.id.in_(_open_spikes(campaign_id)))
                        .values(resolved_at=now or _now()).execution_options(synchronize_session=False))
        session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                               Campaign.status == CampaignStatus.PAUSED.value)
                        .values(status=CampaignStatus.SENDING.value).execution_options(synchronize_session=False))
    session.expire_all()
    return ids


# ------------------------------------------------------------------ who and how
def dry_run(session: Session, *, sequence_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Who would enter now (the trigger's contacts since the last scan, as the re-entry rule allows); writes nothing."""
    now = now or _now()
    sequence = get_sequence(session, sequence_id=sequence_id)
    savepoint = session.begin_nested()
    try:
        entered = enrol(session, sequence=sequence, contact_ids=scan(session, sequence=sequence, now=now,
                                                                     dry_run=True), now=now)
        emails = dict(session.execute(select(Contact.id, Contact.email).where(Contact.id.in_(entered[:1000]))).all())
    finally:
        savepoint.rollback()
    return {"id": sequence_id, "as_of": now.isoformat(), "would_enter": len(entered),
            "contacts": [{"id": i, "email": emails.get(i, "")} for i in entered[:1000]]}


def describe(session: Session, sequence: Sequence) -> dict[str, Any]:
    counts = dict(session.execute(select(SequenceEnrollment.state, func.count()).where(
        SequenceEnrollment.sequence_id == sequence.id).group_by(SequenceEnrollment.state)).all())
    return {"id": sequence.id, "name": sequence.name, "status": sequence.status, "version": sequence.version,
            "trigger": sequence.definition.get("trigger"), "enrollments": counts}


REPORT_KINDS = ("opened", "clicked", "replied", "unsubscribed", "complained", "bounced")


def step_report(session: Session, *, sequence_id: int) -> dict[str, Any]:
    """Per step: runs; for mail steps sent, opened, clicked, replied, unsubscribed, complained, bounced and rates."""
    sequence = get_sequence(session, sequence_id=sequence_id)
    definition = definition_of(sequence)
    runs = dict(session.execute(
        select(SequenceStepRun.step_id, func.count()).join(SequenceEnrollment,
                                                           SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id).group_by(SequenceStepRun.step_id)).all())
    waiting = dict(session.execute(
        select(SequenceStepRun.step_id, func.count()).join(SequenceEnrollment,
                                                           SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id, SequenceStepRun.wait_reason != "")
        .group_by(SequenceStepRun.step_id)).all())
    steps = []
    for step in definition.steps:
        row: dict[str, Any] = {"id": step["id"], "kind": step["kind"], "runs": runs.get(step["id"], 0),
                               "waited": waiting.get(step["id"], 0)}
        if step["kind"] == "mail":
            campaigns = select(SequenceStepCampaign.campaign_id).where(
                SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == step["id"])
            statuses = list(session.scalars(select(Campaign.status).where(Campaign.id.in_(campaigns))))
            sent = session.scalar(select(func.count()).select_from(Send).where(
                Send.campaign_id.in_(campaigns), Send.state == SendState.SENT.value)) or 0
            by_kind = dict(session.execute(
                select(Event.kind, func.count(func.distinct(Event.contact_id))).where(
                    Event.campaign_id.in_(campaigns), Event.kind.in_(REPORT_KINDS),
                    or_(Event.machine.is_(False), Event.kind.not_in(("opened", "clicked"))))
                .group_by(Event.kind)).all())
            row.update(paused=CampaignStatus.PAUSED.value in statuses, sent=sent)
            for kind in REPORT_KINDS:
                row[kind] = by_kind.get(kind, 0)
                row[f"{kind}_rate"] = round(by_kind.get(kind, 0) / sent, 4) if sent else None
        steps.append(row)
    return {**describe(session, sequence), "steps": steps}


def due_campaigns(session: Session, *, sequence_id: int) -> list[int]:
    """The hidden campaigns of a sequence's mail steps."""
    return list(session.scalars(select(SequenceStepCampaign.campaign_id)
                                .where(SequenceStepCampaign.sequence_id == sequence_id)
                                .order_by(SequenceStepCampaign.id)))


def enrollments(session: Session, *, sequence_id: int) -> list[SequenceEnrollment]:
    return list(session.scalars(select(SequenceEnrollment).where(SequenceEnrollment.sequence_id == sequence_id)
                                .order_by(SequenceEnrollment.id)))


def step_runs(session: Session, *, sequence_id: int) -> list[SequenceStepRun]:
    return list(session.scalars(select(SequenceStepRun).join(
        SequenceEnrollment, SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id).order_by(SequenceStepRun.id)))
