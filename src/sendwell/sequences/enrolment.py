"""Enrolment: the trigger's contacts since the high-water marks, the re-entry rule, events in hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Consent, Contact, Event, Sequence, SequenceEnrollment, Topic
from sendwell.sequences.base import ACTIVE, definition_of, insert_for, now_utc
from sendwell.sequences.definition import Definition


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
        session.execute(insert_for(session)(SequenceEnrollment).values(rows[start:start + 5000])
                        .on_conflict_do_nothing())
    return entered_ids


def _date_contacts(session: Session, sequence: Sequence, trigger: dict[str, Any], now: datetime) -> list[int]:
    """Contacts whose date plus the trigger's days came due since the last scan (or since the sequence began)."""
    since = sequence.dates_seen_until or sequence.created_at
    since = since.replace(tzinfo=since.tzinfo or timezone.utc)
    if now <= since:
        return []
    shift = timedelta(days=int(trigger.get("days", 0)))
    low, high = since - shift, now - shift
    field = trigger["field"]
    if field == "consent_expires_at":
        query = select(Consent.contact_id).where(
            Consent.withdrawn_at.is_(None), Consent.expires_at > low, Consent.expires_at <= high
        ).order_by(Consent.contact_id)
    elif field.startswith("custom."):
        # A custom field holds text: an ISO date (YYYY-MM-DD, a time may follow) compares as text
        # by its first ten characters, on SQLite and PostgreSQL alike; other text never falls
        # between two such dates' bounds. A date is due on its day.
        day = func.substr(Contact.custom[field[7:]].as_string(), 1, 10)
        query = select(Contact.id).where(day > low.date().isoformat(), day <= high.date().isoformat()).order_by(Contact.id)
    else:
        column = getattr(Contact, field)
        query = select(Contact.id).where(column > low, column <= high).order_by(Contact.id)
    return list(session.scalars(query))  # a contact with two consents may come twice: scan and enrol dedupe


def scan(session: Session, *, sequence: Sequence, now: datetime, dry_run: bool = False) -> list[int]:
    """Enrol the contacts the trigger names since the high-water marks, then move the marks on."""
    definition = definition_of(sequence)
    by_date = definition.trigger["kind"] == "date"
    if by_date:
        contacts = _date_contacts(session, sequence, definition.trigger, now)
    else:
        upto_event = session.scalar(select(func.max(Event.id))) or 0
        upto_contact = session.scalar(select(func.max(Contact.id))) or 0
        contacts = _trigger_contacts(session, sequence, definition, upto_event, upto_contact)
    if dry_run:
        return list(dict.fromkeys(contacts))
    entered = enrol(session, sequence=sequence, contact_ids=contacts, now=now)
    if by_date:
        sequence.dates_seen_until = max(now, sequence.dates_seen_until or now)
    else:
        sequence.events_seen, sequence.contacts_seen = upto_event, upto_contact
    session.flush()
    return entered


def enrol_for_event(session: Session, *, kind: str, contact_id: int, form_id: int | str | None = None,
                    name: str | None = None, now: datetime | None = None) -> list[int]:
    """Enrol a contact now in every active sequence whose trigger is this event; returns the sequence ids.

    For events the caller has in hand (a confirmed signup, an API event): no need to wait for
    the scan. `kind` is signup_confirmed (with form_id) or api_event (with name).
    """
    now = now or now_utc()
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
    event = Event(kind="api_event", contact_id=contact_id, method="api", occurred_at=now or now_utc(),
                  data={"name": name, **(data or {})})
    session.add(event)
    session.flush()
    return event

