"""Contacts changed by a person in the admin: add, edit, topic opt-out, erase, bulk changes; each audited.

An edit never resubscribes (COMPLIANCE rule 18): a topic box only subscribes a contact who
has a lawful basis, is not suppressed and has not left that topic; the same rule holds in bulk.
Every change writes an event with method `admin`, the admin's email and, for a person's
request, the reason typed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from sendwell.contacts.lawful_basis import expiry_for, has_lawful_basis, normalise_kind
from sendwell.contacts.records import ContactError, clean_contact_fields, create_contact
from sendwell.contacts.regions import region_for
from sendwell.contacts.service import EXPORT_COLUMNS, ErasureResult, erase_contact
from sendwell.contacts.tabular import neutralise
from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    ConsentSource,
    Contact,
    Event,
    Subscription,
    Suppression,
    Topic,
)

ADMIN_SOURCE = "admin"
# How a consent given to a person (not a file, the API or an undo) was obtained.
CONSENT_SOURCES = (ConsentSource.WEB_FORM.value, ConsentSource.TRADE_FAIR.value, ConsentSource.PURCHASE.value)
BULK_ACTIONS = ("add_tag", "remove_tag", "set_stage", "subscribe", "unsubscribe", "delete")
# Why a topic box cannot subscribe: the person opted out, or there is nothing to send on.
LOCK_SUPPRESSED = "suppressed"
LOCK_LEFT_TOPIC = "left_topic"
LOCK_NO_CONSENT = "no_consent"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def _audit(session: Session, *, kind: str, contact_id: int | None, by: str, now: datetime, **data: Any) -> None:
    session.add(Event(kind=kind, contact_id=contact_id, method=ADMIN_SOURCE, occurred_at=now,
                      data={"admin": by, **data}))


# ------------------------------------------------------------------ one contact
@dataclass(frozen=True)
class TopicBox:
    """A topic as the contact form shows it: ticked or not, and why it cannot be ticked."""

    id: int
    slug: str
    name: str
    subscribed: bool
    lock: str = ""  # "" | suppressed | left_topic | no_consent


def _suppressed(contact_hash: Any) -> ColumnElement[bool]:
    return exists(select(Suppression.id).where(Suppression.email_hash == contact_hash,
                                               Suppression.scope == SCOPE_ALL))


def topic_boxes(session: Session, *, contact_id: int, now: datetime | None = None) -> list[TopicBox]:
    """Every topic with this contact's subscription state and, where it cannot subscribe, the reason."""
    now = _now(now)
    contact = session.get(Contact, contact_id)
    if contact is None:
        return []
    is_suppressed = bool(session.scalar(select(_suppressed(contact.email_hash))))
    has_basis = bool(session.scalar(select(has_lawful_basis(now)).select_from(Contact)
                                    .where(Contact.id == contact_id)))
    status = {topic_id: state for topic_id, state in session.execute(
        select(Subscription.topic_id, Subscription.status).where(Subscription.contact_id == contact_id))}
    boxes = []
    for topic in session.scalars(select(Topic).order_by(Topic.name)):
        on = status.get(topic.id) == "subscribed"
        lock = ""
        if is_suppressed:
            lock = LOCK_SUPPRESSED
        elif status.get(topic.id) == "unsubscribed":
            lock = LOCK_LEFT_TOPIC
        elif not on and not has_basis:
            lock = LOCK_NO_CONSENT
        boxes.append(TopicBox(topic.id, topic.slug, topic.name, on, lock))
    return boxes


def add_contact(
    session: Session, *, pepper: bytes, email: str, fields: dict[str, Any], by: str, consent: str = "",
    consent_source: str = ConsentSource.WEB_FORM.value, consent_date: datetime | None = None, wording: str = "",
    topics: list[int] | None = None, now: datetime | None = None,
) -> Contact:
    """A contact added by hand (source `admin`), with its consent as the import records it; ContactError."""
    now = _now(now)
    if consent:
        try:
            consent = normalise_kind(consent)
        except ValueError as exc:
            raise ContactError("consent", str(exc)) from None
        if consent_source not in CONSENT_SOURCES:
            raise ContactError("consent_source", f"unknown consent source {consent_source!r}")
        if consent_date is not None and consent_date > now:
            raise ContactError("consent_date", "the consent date is in the future")
    contact = create_contact(session, pepper=pepper, email=email, fields=fields, source=ADMIN_SOURCE, now=now)
    if consent:
        obtained = consent_date or now
        text = wording.strip() or f"Added in the admin by {by} ({consent_source})"
        session.add(Consent(contact_id=contact.id, kind=consent, source=f"{ADMIN_SOURCE}:{by}"[:200],
                            source_kind=consent_source, obtained_at=obtained, wording=text,
                            wording_hash=hashlib.sha256(text.encode()).hexdigest(),
                            expires_at=expiry_for(consent, obtained)))
        session.flush()
    _audit(session, kind="contact_added", contact_id=contact.id, by=by, now=now, consent=consent or None)
    if topics:
        _set_topics(session, contact_id=contact.id, wanted=set(topics), now=now)
    session.flush()
    return contact


@dataclass
class EditResult:
    contact: Contact
    changed: dict[str, Any] = field(default_factory=dict)
    refused_topics: list[str] = field(default_factory=list)  # slugs a box asked for but the rules refuse


def edit_contact(
    session: Session, *, contact_id: int, fields: dict[str, Any], by: str, topics: list[int] | None = None,
    now: datetime | None = None,
) -> EditResult | None:
    """Change fields, tags, stage and topics; None if missing. Never resubscribes (see the module docstring)."""
    now = _now(now)
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    cleaned = clean_contact_fields(fields, session=session)
    changed = {k: [getattr(contact, k), v] for k, v in cleaned.items() if getattr(contact, k) != v}
    for key, (_old, value) in changed.items():
        setattr(contact, key, value)
    if "country" in changed:
        contact.region = region_for(contact.country) if contact.country else "other"
    result = EditResult(contact=contact)
    if topics is not None:
        added, removed, refused = _set_topics(session, contact_id=contact_id, wanted=set(topics), now=now)
        if added:
            changed["topics_added"] = added
        if removed:
            changed["topics_removed"] = removed
        result.refused_topics = refused
    if changed:
        contact.updated_at = now
        _audit(session, kind="contact_edited", contact_id=contact_id, by=by, now=now, changes=changed)
    result.changed = changed
    session.flush()
    return result


def _set_topics(session: Session, *, contact_id: int, wanted: set[int], now: datetime) -> tuple[list[str], ...]:
    """Subscribe the wanted topics the rules allow; take the admin's own ticks off the others."""
    boxes = {b.id: b for b in topic_boxes(session, contact_id=contact_id, now=now)}
    rows = {s.topic_id: s for s in session.scalars(select(Subscription).where(Subscription.contact_id == contact_id))}
    added, removed, refused = [], [], []
    for topic_id, box in boxes.items():
        if topic_id in wanted and not box.subscribed:
            if box.lock:
                refused.append(box.slug)
                continue
            session.add(Subscription(contact_id=contact_id, topic_id=topic_id, status="subscribed",
                                     created_at=now, updated_at=now))
            added.append(box.slug)
        elif topic_id not in wanted and box.subscribed:
            # Not the person's opt-out: the row goes, so the topic can be ticked again later.
            session.delete(rows[topic_id])
            removed.append(box.slug)
    session.flush()
    return added, removed, refused


def unsubscribe_from_topic(session: Session, *, contact_id: int, topic_id: int, by: str, reason: str,
                           now: datetime | None = None) -> bool:
    """On the person's request: leave one topic (only their own action brings them back); False if not found."""
    now = _now(now)
    topic = session.get(Topic, topic_id)
    if topic is None or session.get(Contact, contact_id) is None:
        return False
    sub = session.scalar(select(Subscription).where(Subscription.contact_id == contact_id,
                                                    Subscription.topic_id == topic_id))
    if sub is None:
        session.add(Subscription(contact_id=contact_id, topic_id=topic_id, status="unsubscribed",
                                 created_at=now, updated_at=now))
    else:
        sub.status, sub.updated_at = "unsubscribed", now
    session.add(Event(kind="preferences_changed", contact_id=contact_id, method=ADMIN_SOURCE, occurred_at=now,
                      data={"changes": {"topics_removed": [topic_id]}, "admin": by, "reason": reason[:1000]}))
    session.flush()
    return True


def erase_on_request(session: Session, *, contact_id: int, pepper: bytes, by: str, reason: str,
                     now: datetime | None = None) -> ErasureResult | None:
    """GDPR Art 17 erasure asked for by the person, through the CLI's and API's service; None if missing."""
    now = _now(now)
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    result = erase_contact(session, email=contact.email, pepper=pepper, now=now)
    # No contact id and no address: the audit keeps who erased and why, not whom.
    _audit(session, kind="contact_erased", contact_id=None, by=by, now=now, reason=reason[:1000],
           email_hash=result.email_hash)
    session.flush()
    return result


# ------------------------------------------------------------------ many contacts
@dataclass(frozen=True)
class BulkResult:
    matched: int
    changed: int
    skipped: int = 0  # left alone by the rules (a topic the contact left, no consent, suppressed)


def chosen_ids(session: Session, *, where: ColumnElement[bool] | None = None,
               ids: list[int] | None = None) -> list[int]:
    """The ids of the selection: ticked ids, or every contact the filter or segment matches."""
    query = select(Contact.id).order_by(Contact.id)
    if ids is not None:
        query = query.where(Contact.id.in_(ids))
    if where is not None:
        query = query.where(where)
    return list(session.scalars(query))


def bulk_change(session: Session, *, ids: list[int], action: str, value: str = "", by: str,
                now: datetime | None = None) -> BulkResult:
    """One change to many contacts in the caller's transaction, audited as one event; ContactError if invalid."""
    now = _now(now)
    if action not in BULK_ACTIONS:
        raise ContactError("action", f"unknown bulk action {action!r}")
    value = value.strip()
    changed, skipped = 0, 0
    if action in ("add_tag", "remove_tag"):
        if not value:
            raise ContactError("value", "name the tag")
        for contact in _contacts(session, ids):
            tags = set(contact.tags or [])
            new = tags | {value} if action == "add_tag" else tags - {value}
            if new != tags:
                contact.tags, contact.updated_at = sorted(new), now
                changed += 1
    elif action == "set_stage":
        stage = clean_contact_fields({"stage": value}, session=session)["stage"]
        if not stage:
            raise ContactError("value", "choose a stage")
        for chunk in _chunked(ids):
            changed += session.execute(update(Contact).where(Contact.id.in_(chunk), Contact.stage != stage)
                                       .values(stage=stage, updated_at=now)).rowcount or 0
        value = stage
    elif action in ("subscribe", "unsubscribe"):
        topic = session.scalar(select(Topic).where(Topic.slug == value))
        if topic is None:
            raise ContactError("value", f"no topic {value!r}")
        changed, skipped = (_bulk_subscribe if action == "subscribe" else _bulk_unsubscribe)(
            session, ids, topic.id, now)
    else:
        for chunk in _chunked(ids):
            # Consents, subscriptions and sends go with the contact (foreign keys); events and
            # suppressions stay, without the contact id. No suppression: the address may come back.
            changed += session.execute(delete(Contact).where(Contact.id.in_(chunk))
                                       .execution_options(synchronize_session=False)).rowcount or 0
    session.add(Event(kind="contacts_bulk_changed", method=ADMIN_SOURCE, occurred_at=now,
                      data={"admin": by, "action": action, "value": value, "matched": len(ids),
                            "changed": changed, "skipped": skipped, "contact_ids": ids[:10000]}))
    session.flush()
    return BulkResult(matched=len(ids), changed=changed, skipped=skipped)


def _bulk_subscribe(session: Session, ids: list[int], topic_id: int, now: datetime) -> tuple[int, int]:
    """Subscribe those with a lawful basis, not suppressed, who never left the topic: the edit's rule."""
    changed = skipped = 0
    for chunk in _chunked(ids):
        status = {cid: state for cid, state in session.execute(select(Subscription.contact_id, Subscription.status)
                  .where(Subscription.contact_id.in_(chunk), Subscription.topic_id == topic_id))}
        allowed = set(session.scalars(select(Contact.id).where(
            Contact.id.in_(chunk), has_lawful_basis(now), ~_suppressed(Contact.email_hash))))
        for cid in chunk:
            if status.get(cid) == "subscribed":
                continue
            if cid in allowed and cid not in status:
                session.add(Subscription(contact_id=cid, topic_id=topic_id, status="subscribed", created_at=now,
                                         updated_at=now))
                changed += 1
            else:
                skipped += 1
    return changed, skipped


def _bulk_unsubscribe(session: Session, ids: list[int], topic_id: int, now: datetime) -> tuple[int, int]:
    """Take the topic off where it is on (the rows go: not the person's own opt-out)."""
    changed = 0
    for chunk in _chunked(ids):
        changed += session.execute(delete(Subscription).where(
            and_(Subscription.contact_id.in_(chunk), Subscription.topic_id == topic_id,
                 Subscription.status == "subscribed")).execution_options(synchronize_session=False)).rowcount or 0
    return changed, 0


def _contacts(session: Session, ids: list[int]) -> Iterator[Contact]:
    for chunk in _chunked(ids):
        yield from session.scalars(select(Contact).where(Contact.id.in_(chunk)))


def _chunked(ids: list[int], size: int = 900) -> Iterator[list[int]]:
    # SQLite allows 999 bound parameters per statement.
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def export_rows(session: Session, *, where: ColumnElement[bool] | None = None) -> Iterator[list[str]]:
    """The header row, then each matching contact not suppressed (rule 17), formula cells neutralised."""
    yield list(EXPORT_COLUMNS)
    query = select(Contact).where(~_suppressed(Contact.email_hash)).order_by(Contact.id)
    if where is not None:
        query = query.where(where)
    for contact in session.scalars(query.execution_options(yield_per=1000)):
        yield [neutralise(";".join(contact.tags or []) if col == "tags" else str(getattr(contact, col) or ""))
               for col in EXPORT_COLUMNS]
