"""Who may receive a campaign: one SQL expression used when planning and again when sending."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, exists, literal, select
from sqlalchemy.sql.elements import ColumnElement

from sendwell.contacts.lawful_basis import has_expired_basis, has_lawful_basis
from sendwell.db.models import (
    SCOPE_ALL,
    Campaign,
    CampaignKind,
    Contact,
    Subscription,
    Suppression,
    SuppressionReason,
)

# Skip reasons recorded on `sends.skip_reason`, one per suppression reason.
SUPPRESSION_SKIP = {
    SuppressionReason.UNSUBSCRIBE.value: "unsubscribed",
    SuppressionReason.COMPLAINT.value: "complained",
    SuppressionReason.HARD_BOUNCE.value: "hard_bounced",
    SuppressionReason.SOFT_BOUNCE_STREAK.value: "soft_bounce_streak",
    SuppressionReason.SUNSET.value: "sunset",
    SuppressionReason.MANUAL.value: "suppressed_manually",
    SuppressionReason.ERASED.value: "erased",
}
SKIP_PAUSED = "paused"
SKIP_NO_CONSENT = "no_consent"
SKIP_CONSENT_EXPIRED = "consent_expired"
SKIP_NOT_SUBSCRIBED = "not_subscribed_to_topic"


def skip_reason(campaign: Campaign, topic_slug: str | None, now: datetime) -> ColumnElement[str | None]:
    """A column expression over `contacts`: NULL when eligible, else the reason to skip.

    Order matters only for which reason is shown: a suppression (any kind) always wins,
    and no campaign kind can override it (COMPLIANCE rule 19: there is no override).
    """
    scopes = [SCOPE_ALL] + ([topic_slug] if topic_slug else [])
    suppression_reason = (
        select(Suppression.reason)
        .where(Suppression.email_hash == Contact.email_hash, Suppression.scope.in_(scopes))
        .order_by(Suppression.id)
        .limit(1)
        .scalar_subquery()
    )
    is_suppressed = exists(
        select(Suppression.id).where(Suppression.email_hash == Contact.email_hash, Suppression.scope.in_(scopes))
    )
    # A simple CASE evaluates the reason lookup once, not once per reason.
    reason_text = case(SUPPRESSION_SKIP, value=suppression_reason, else_=literal("suppressed"))
    whens: list[tuple[ColumnElement[bool], ColumnElement[str] | str]] = [(is_suppressed, reason_text)]
    if campaign.kind != CampaignKind.TRANSACTIONAL.value:
        # A pause is the recipient's own choice on the unsubscribe page; it holds for all
        # marketing kinds. Transactional mail is exempt from pauses and caps only.
        whens.append((and_(Contact.paused_until.is_not(None), Contact.paused_until > now), literal(SKIP_PAUSED)))
        # Lawful basis per country (contacts/lawful_basis.py); a lapsed CASL implied consent
        # is reported apart from no consent at all, so the operator knows to reconfirm.
        has_basis = has_lawful_basis(now)
        whens.append((and_(~has_basis, has_expired_basis(now)), literal(SKIP_CONSENT_EXPIRED)))
        whens.append((~has_basis, literal(SKIP_NO_CONSENT)))
    if campaign.topic_id is not None:
        subscribed = exists(
            select(Subscription.id).where(
                Subscription.contact_id == Contact.id,
                Subscription.topic_id == campaign.topic_id,
                Subscription.status == "subscribed",
            )
        )
        whens.append((~subscribed, literal(SKIP_NOT_SUBSCRIBED)))
    return case(*whens, else_=None)
