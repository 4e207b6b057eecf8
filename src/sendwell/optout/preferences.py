"""What the recipient pages show about a person: who they are, their topics, tier and pause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import Campaign, Contact, Subscription, Topic
from sendwell.i18n import normalise_language
from sendwell.optout.service import FREQUENCY_TIERS, is_unsubscribed


@dataclass(frozen=True)
class Recipient:
    """The contact a signed link names, as the recipient pages see it."""

    contact_id: int
    email: str
    language: str | None
    frequency_tier: str | None
    paused_until: datetime | None
    is_unsubscribed: bool


@dataclass(frozen=True)
class TopicChoice:
    id: int
    name: str


@dataclass(frozen=True)
class Preferences:
    """The preference center's state for one contact."""

    topics: list[TopicChoice]
    subscribed: set[int]
    frequency: str
    paused_until: datetime | None
    language: str  # the language selector's value
    stored_language: str | None  # as stored on the contact, for choosing the page's language
    is_unsubscribed: bool
    campaign: str | None = None  # the subject of the mail the link came in


def get_recipient(session: Session, *, contact_id: int) -> Recipient | None:
    """The contact behind a link; None when it no longer exists."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    return Recipient(contact_id=contact.id, email=contact.email, language=contact.language,
                     frequency_tier=contact.frequency_tier, paused_until=contact.paused_until,
                     is_unsubscribed=is_unsubscribed(session, contact=contact))


def get_preferences(session: Session, *, contact_id: int, campaign_id: int | None = None) -> Preferences | None:
    """Every topic, the ones the contact is subscribed to, tier, pause and language; None if unknown."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    topics = [TopicChoice(t.id, t.name) for t in session.scalars(select(Topic).order_by(Topic.name))]
    on = set(session.scalars(select(Subscription.topic_id).where(
        Subscription.contact_id == contact.id, Subscription.status == "subscribed")))
    campaign = session.get(Campaign, campaign_id) if campaign_id else None
    # A tier outside the person's choices (none yet, or an operator's) shows as the default.
    frequency = contact.frequency_tier if contact.frequency_tier in FREQUENCY_TIERS else "weekly"
    return Preferences(topics=topics, subscribed=on, frequency=frequency, paused_until=contact.paused_until,
                       language=normalise_language(contact.language) or "en", stored_language=contact.language,
                       is_unsubscribed=is_unsubscribed(session, contact=contact),
                       campaign=campaign.subject if campaign else None)  # never the internal name
